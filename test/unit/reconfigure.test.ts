/**
 * `reconfigure`'s pure part: desired vs live, per-node maxmemory, order
 * (replicas first), what cannot change in place, what is refused without
 * --force; and where the desired settings come from.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../components/config";
import { DesiredNodeSettings, NodeSettings } from "../../components/bootstrap/nodeSettings";
import type { Topology } from "../../components/topology";
import {
    desiredConfig, diffNode, fixedMismatches, LiveNode, orderForReconfigure, planReconfigure, risksOf, RUNTIME_DIRECTIVES,
} from "../../scripts/plan/reconfigure";
import { loadDesired } from "../../scripts/commands/reconfigure";
import { UsageError } from "../../scripts/errors";
import type { Target } from "../../scripts/inventory";

const SETTINGS: NodeSettings = { maxmemoryPercent: 70, maxmemoryPolicy: "noeviction", clusterNodeTimeoutMs: 5000, clusterReplicaValidityFactor: 10, minReplicasToWrite: 1, minReplicasMaxLagSec: 10 };
const GiB = 1024 ** 3;
const desired = (extra: Partial<DesiredNodeSettings> = {}, settings: Partial<NodeSettings> = {}): DesiredNodeSettings =>
    ({ version: 1, settings: { ...SETTINGS, ...settings }, fixed: { port: 6379, tls: true, engine: "redis6" }, ...extra });

/** A live node already at SETTINGS on an 8 GiB machine. */
function live(name: string, role: LiveNode["role"], extra: Partial<LiveNode> = {}, config: Record<string, string> = {}): LiveNode {
    const shard = Number(/-s(\d+)-/.exec(name)![1]);
    return {
        key: `10.0.0.${shard}:6379`, name, shard, role,
        config: {
            maxmemory: String(Math.floor((8 * GiB * 70) / 100)), "maxmemory-policy": "noeviction", "cluster-node-timeout": "5000",
            "cluster-replica-validity-factor": "10", "min-replicas-to-write": "1", "min-replicas-max-lag": "10", ...config,
        },
        totalSystemMemory: 8 * GiB, usedMemory: 100 * 1024 * 1024, connectedReplicas: role === "master" ? 1 : undefined,
        engine: "redis", version: "6.2.14", tls: true, port: 6379, ...extra,
    };
}

describe("reconfigure plan", () => {
    test("maxmemory per node: the share of the node's own total_system_memory, or of the fixed local node memory", () => {
        assert.equal(desiredConfig(desired(), { totalSystemMemory: 8 * GiB }).maxmemory, "6012954214");
        assert.equal(desiredConfig(desired(), { totalSystemMemory: 16 * GiB }).maxmemory, "12025908428");
        assert.equal(desiredConfig(desired({ nodeMemoryBytes: 384 * 1024 * 1024 }, { maxmemoryPercent: 50 }), { totalSystemMemory: 8 * GiB }).maxmemory, String(192 * 1024 * 1024));
        assert.deepEqual(Object.keys(desiredConfig(desired(), { totalSystemMemory: GiB })), [...RUNTIME_DIRECTIVES]);
        assert.deepEqual(desiredConfig(desired({}, { maxmemoryPolicy: "allkeys-lru", minReplicasMaxLagSec: 20 }), { totalSystemMemory: GiB }), {
            maxmemory: "751619276", "maxmemory-policy": "allkeys-lru", "cluster-node-timeout": "5000", "cluster-replica-validity-factor": "10",
            "min-replicas-to-write": "1", "min-replicas-max-lag": "20",
        });
    });

    test("desired vs live: only what differs, current → desired; nothing for a node at the desired values", () => {
        const n = live("c-s0-r1", "replica");
        assert.deepEqual(diffNode(desiredConfig(desired(), n), n.config), []);
        const want = desiredConfig(desired({}, { maxmemoryPolicy: "allkeys-lfu", clusterNodeTimeoutMs: 15000 }), n);
        assert.deepEqual(diffNode(want, n.config), [
            { directive: "maxmemory-policy", from: "noeviction", to: "allkeys-lfu" },
            { directive: "cluster-node-timeout", from: "5000", to: "15000" },
        ]);
        assert.deepEqual(diffNode(want, { ...n.config, maxmemory: undefined as never }).map((c) => `${c.directive} ${c.from}`).slice(0, 1), ["maxmemory (unset)"]);
    });

    test("replicas first, then masters, each by shard then name", () => {
        const nodes = [live("c-s1-r0", "master"), live("c-s0-r1", "replica"), live("c-s0-r0", "master"), live("c-s1-r2", "replica"), live("c-s1-r1", "replica"), live("c-s0-r2", "master")];
        assert.deepEqual(orderForReconfigure(nodes).map((n) => n.name), ["c-s0-r1", "c-s1-r1", "c-s1-r2", "c-s0-r0", "c-s0-r2", "c-s1-r0"]);
        // A failed-over shard: the live role decides, not the replica index.
        const plan = planReconfigure(desired({}, { maxmemoryPolicy: "allkeys-lru" }), [live("c-s0-r0", "replica"), live("c-s0-r1", "master")]);
        assert.deepEqual(plan.steps.map((s) => `${s.node.name} ${s.changes.length}`), ["c-s0-r0 1", "c-s0-r1 1"]);
    });

    test("port, TLS and engine are compared, never changed: each difference is named", () => {
        const n = live("c-s0-r0", "master");
        assert.deepEqual(fixedMismatches(desired(), n), []);
        assert.deepEqual(fixedMismatches(desired({ fixed: { port: 6380, tls: false, engine: "valkey" } }), n), [
            "c-s0-r0 (10.0.0.0:6379): tls is on, the settings want it off",
            "c-s0-r0 (10.0.0.0:6379): serves port 6379, the settings want 6380",
            "c-s0-r0 (10.0.0.0:6379): runs redis 6.2.14, the settings want valkey",
        ]);
        // redis6 and redis are both Redis (local mode runs what is installed); absent facts are not checked.
        assert.deepEqual(fixedMismatches(desired({ fixed: { engine: "redis" } }), n), []);
        assert.deepEqual(fixedMismatches(desired({ fixed: {} }), live("c-s0-r0", "master", { tls: false, port: 7001, engine: "valkey" })), []);
        const plan = planReconfigure(desired({ fixed: { tls: false } }), [n, live("c-s0-r1", "replica")]);
        assert.equal(plan.fixedMismatches.length, 2);
    });

    test("refused without --force: maxmemory below used memory, min-replicas-to-write above a master's connected replicas", () => {
        const full = live("c-s0-r0", "master", { usedMemory: 5 * GiB });
        const lower = planReconfigure(desired({}, { maxmemoryPercent: 50 }), [full]);
        assert.deepEqual(lower.risks, ["c-s0-r0 (10.0.0.0:6379): maxmemory 4294967296 is below the 5368709120 bytes it uses: it would at once refuse writes (noeviction)"]);
        assert.match(planReconfigure(desired({}, { maxmemoryPercent: 50, maxmemoryPolicy: "allkeys-lru" }), [full]).risks[0], /evict keys \(allkeys-lru\)$/);
        // Unchanged maxmemory is no new risk (the node is there already).
        assert.deepEqual(risksOf(planReconfigure(desired(), [full]).steps[0]), []);

        const lonely = live("c-s1-r0", "master", { connectedReplicas: 0 }, { "min-replicas-to-write": "0" });
        assert.deepEqual(planReconfigure(desired(), [lonely]).risks, ["c-s1-r0 (10.0.0.1:6379): min-replicas-to-write 1, but the master has 0 connected replica(s): it would refuse every write"]);
        assert.deepEqual(planReconfigure(desired(), [live("c-s1-r1", "replica", {}, { "min-replicas-to-write": "0" })]).risks, [], "replicas take no writes");
        assert.deepEqual(planReconfigure(desired(), [live("c-s1-r0", "master", { connectedReplicas: 1 }, { "min-replicas-to-write": "0" })]).risks, []);
    });
});

describe("where the desired settings come from", () => {
    const topology: Topology = { clusterName: "c", port: 7000, tls: false, nodes: [{ name: "c-s0-r0", shard: 0, az: "local-a", host: "127.0.0.1", port: 7000 }] };
    const dir = mkdtempSync(join(tmpdir(), "rct-reconf-"));
    const target = (stateDir?: string): Target => ({ topology, credentials: {}, source: "test", stateDir });
    const local: DesiredNodeSettings = { version: 1, settings: SETTINGS, fixed: { tls: false }, nodeMemoryBytes: 384 * 1024 * 1024, source: "Pulumi.t.yaml" };
    const throwsUsage = async (p: Promise<unknown>, re: RegExp) => assert.rejects(p, (e: unknown) => e instanceof UsageError && re.test((e as Error).message));

    test("--stack: the stack output nodeSettings; missing: say to run pulumi up", async () => {
        const out = { nodeSettings: desired({ parameterName: "/redis-cluster/c/config/node-settings" }) };
        assert.deepEqual((await loadDesired({ stack: "prod" }, target(), out)).settings, SETTINGS);
        await throwsUsage(loadDesired({ stack: "prod" }, target(), {}), /stack "prod" has no "nodeSettings" output: run pulumi up with this version of the project first, or pass --config Pulumi.prod.yaml/);
        await assert.rejects(loadDesired({ stack: "prod" }, target(), { nodeSettings: { version: 1, settings: { ...SETTINGS, maxmemoryPercent: 99 }, fixed: {} } }),
            (e: unknown) => e instanceof ConfigError && /Invalid stack prod output "nodeSettings":\n - redis-cluster:maxmemoryPercent must be an integer from 10 to 90/.test((e as Error).message));
    });

    test("--topology: settings.json beside it; missing: say what to pass", async () => {
        await throwsUsage(loadDesired({ topology: join(dir, "topology.json") }, target(dir), undefined), /no settings.json beside .*topology.json \(npm run local writes one\): pass --config Pulumi.<stack>.yaml/);
        writeFileSync(join(dir, "settings.json"), JSON.stringify(local));
        assert.deepEqual(await loadDesired({ topology: join(dir, "topology.json") }, target(dir), undefined), local);
        writeFileSync(join(dir, "settings.json"), "{ nope");
        await throwsUsage(loadDesired({ topology: join(dir, "topology.json") }, target(dir), undefined), /settings.json: not valid JSON/);
    });

    test("--config: the stack config's settings; beside a local topology, local mode's facts (no TLS, node memory)", async () => {
        const cfg = join(dir, "Pulumi.staging.yaml");
        writeFileSync(cfg, "config:\n  redis-cluster:tls: true\n  redis-cluster:maxmemoryPolicy: allkeys-lru\n  redis-cluster:minReplicasMaxLagSec: 20\n");
        const aws = await loadDesired({ stack: "staging", config: cfg }, target(), { nodeSettings: desired() });
        assert.deepEqual(aws.fixed, { port: 6379, tls: true, engine: "valkey" });
        assert.equal(aws.settings.maxmemoryPolicy, "allkeys-lru");
        assert.equal(aws.nodeMemoryBytes, undefined);
        writeFileSync(join(dir, "settings.json"), JSON.stringify(local));
        const loc = await loadDesired({ topology: join(dir, "topology.json"), config: cfg }, target(dir), undefined);
        assert.deepEqual([loc.fixed, loc.nodeMemoryBytes, loc.settings.minReplicasMaxLagSec, loc.source], [{ tls: false }, 384 * 1024 * 1024, 20, cfg]);
        writeFileSync(cfg, "config:\n  redis-cluster:maxmemoryPercent: 5\n");
        await assert.rejects(loadDesired({ topology: join(dir, "topology.json"), config: cfg }, target(dir), undefined), (e: unknown) =>
            (e as Error).message.startsWith(`Invalid ${cfg}:\n - redis-cluster:maxmemoryPercent must be an integer from 10 to 90`));
        await throwsUsage(loadDesired({ topology: "t", config: join(dir, "nope.yaml") }, target(dir), undefined), /--config .*nope.yaml: no such file/);
    });

    test("cleanup", () => {
        chmodSync(dir, 0o700);
        rmSync(dir, { recursive: true, force: true });
    });
});
