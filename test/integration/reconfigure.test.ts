/**
 * `reconfigure` against a real local cluster (scripts/local.ts, temp state dir
 * and stack config): a settings change in the stack config is re-rendered into
 * the node files by `npm run local` without restarting anything, applied node
 * by node (replicas first) by `reconfigure`, checked with CONFIG GET on every
 * node; a rerun skips every node; the --stack path computes maxmemory from the
 * node's memory as the boot script does; port/TLS/engine differences are
 * refused; a killed node stops the run before any change. `down` runs in finally.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { redisAlive, killRedisUnder } from "../helpers/processes";
import { join } from "node:path";
import { nodeSettingsOf, maxmemoryBytesFor, DesiredNodeSettings } from "../../components/bootstrap/nodeSettings";
import type { Topology } from "../../components/topology";
import { down, localNodeSettings, LOCAL_NODE_MEMORY_BYTES, up } from "../../scripts/local";
import { reconfigure } from "../../scripts/commands/reconfigure";
import { capturedOutput } from "../helpers/output";
import { NodePool } from "../../scripts/redis/pool";
import { ConfigError, InterruptedError, RefusedError, StepError, UsageError } from "../../scripts/errors";
import { keyOf } from "../../scripts/plan/topology";
import { parseStackYaml } from "../../components/config";
import { maxmemoryForThisMachine } from "../helpers/bootstrapConfigs";

const ROOT = join(__dirname, "..", "..");

/** An Output whose stdout (JSON documents / NDJSON events) is collected. */
function capture() {
    const { out, stdout } = capturedOutput({ json: true });
    const ac = new AbortController();
    return {
        ctx: { out, signal: ac.signal },
        events: () => stdout().trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)),
        doc: () => JSON.parse(stdout()),
    };
}

const alive = redisAlive;

test("reconfigure: npm run local re-renders, reconfigure applies node by node, a rerun skips, refusals change nothing", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "rct-reconf-"));
    const config = join(tmp, "Pulumi.t.yaml");
    const writeConfig = (extra: Record<string, string | number>) => writeFileSync(config, [
        "config:",
        "  redis-cluster:shards: 3",
        "  redis-cluster:replicasPerShard: 1",
        "  redis-cluster:clusterNodeTimeoutMs: 2000",
        ...Object.entries(extra).map(([k, v]) => `  redis-cluster:${k}: ${v}`),
        "",
    ].join("\n"));
    const state = join(tmp, "state");
    const dir = join(state, "t");
    const topologyFile = join(dir, "topology.json");
    const opts = { stack: "t", config, stateDir: state, basePort: 44000 + Math.floor(Math.random() * 4000), json: true, timeout: 30000 };
    const quiet = () => capturedOutput({ json: true }).out;
    let pids: number[] = [];
    let pool: NodePool | undefined;
    try {
        writeConfig({});
        const first = await up(opts, quiet());
        assert.equal(first.healthy, true);
        const topology = JSON.parse(readFileSync(topologyFile, "utf8")) as Topology;
        const creds = JSON.parse(readFileSync(join(dir, "credentials.json"), "utf8")) as { user: string; password: string };
        pool = new NodePool({ credentials: creds, connectTimeoutMs: 1000 });
        const p = pool;
        const pidOf = (name: string) => Number(readFileSync(join(dir, name, "redis.pid"), "utf8"));
        pids = topology.nodes.map((n) => pidOf(n.name));
        const get = async (key: string, d: string) => ((await p.call(key, "CONFIG", "GET", d)) as string[])[1];
        const everywhere = async (d: string) => Promise.all(topology.nodes.map((n) => get(keyOf(n), d)));
        const six = (v: string) => Array(6).fill(v);

        // Local mode's settings.json and files carry the stack config; maxmemory is 70 % of a local node's memory.
        const local70 = String(maxmemoryBytesFor(LOCAL_NODE_MEMORY_BYTES, 70));
        assert.deepEqual(JSON.parse(readFileSync(join(dir, "settings.json"), "utf8")), JSON.parse(JSON.stringify(localNodeSettings(parseStackYaml(readFileSync(config, "utf8"), "t"), config))));
        assert.deepEqual(await everywhere("maxmemory"), six(local70));
        assert.deepEqual(await everywhere("maxmemory-policy"), six("noeviction"));

        // The operator edits the stack config; npm run local re-renders the files and restarts nothing.
        writeConfig({ maxmemoryPolicy: "allkeys-lru", minReplicasMaxLagSec: 20, maxmemoryPercent: 50 });
        const second = await up(opts, quiet());
        assert.equal(second.alreadyRunning, true);
        assert.deepEqual(second.settingsPending.sort(), topology.nodes.map((n) => n.name).sort());
        assert.deepEqual(topology.nodes.map((n) => pidOf(n.name)), pids, "a server was restarted");
        const local50 = String(maxmemoryBytesFor(LOCAL_NODE_MEMORY_BYTES, 50));
        for (const n of topology.nodes) {
            const conf = readFileSync(join(dir, n.name, "redis.conf"), "utf8");
            assert.match(conf, /^maxmemory-policy allkeys-lru$/m);
            assert.match(conf, new RegExp(`^maxmemory ${local50}$`, "m"));
            assert.match(conf, /^min-replicas-max-lag 20$/m);
        }
        assert.deepEqual(await everywhere("maxmemory-policy"), six("noeviction"), "running servers changed before reconfigure");

        // Dry run: per node current → desired, replicas first; nothing changes.
        const dry = capture();
        assert.equal(await reconfigure({ topology: topologyFile, dryRun: true }, dry.ctx), 0);
        const plan = dry.doc();
        assert.deepEqual(plan.steps.map((s: { role: string }) => s.role), ["replica", "replica", "replica", "master", "master", "master"]);
        for (const s of plan.steps) {
            assert.deepEqual(s.changes, [
                { directive: "maxmemory", from: local70, to: local50 },
                { directive: "maxmemory-policy", from: "noeviction", to: "allkeys-lru" },
                { directive: "min-replicas-max-lag", from: "10", to: "20" },
            ]);
        }
        assert.deepEqual(await everywhere("maxmemory-policy"), six("noeviction"));

        // Apply: one node at a time, replicas first, every node checked with CONFIG GET.
        const t0 = Date.now();
        const run = capture();
        assert.equal(await reconfigure({ topology: topologyFile }, run.ctx), 0);
        const applyMs = Date.now() - t0;
        const nodeEvents = run.events().filter((e) => e.event === "node");
        assert.deepEqual(nodeEvents.map((e) => `${e.role} ${e.action}`), ["replica set", "replica set", "replica set", "master set", "master set", "master set"]);
        assert.deepEqual(await everywhere("maxmemory"), six(local50));
        assert.deepEqual(await everywhere("maxmemory-policy"), six("allkeys-lru"));
        assert.deepEqual(await everywhere("min-replicas-max-lag"), six("20"));
        assert.deepEqual(await everywhere("cluster-node-timeout"), six("2000"));
        assert.deepEqual(topology.nodes.map((n) => pidOf(n.name)), pids);

        // Interrupted after the first node (Ctrl-C): named state, and the rerun changes only the rest.
        writeConfig({ maxmemoryPolicy: "allkeys-lfu", minReplicasMaxLagSec: 20, maxmemoryPercent: 50 });
        await up(opts, quiet());
        const ac = new AbortController();
        const stopAfterOne = capturedOutput({ json: true }).out;
        const emit = stopAfterOne.event.bind(stopAfterOne);
        stopAfterOne.event = (name, fields, human) => { emit(name, fields, human); if (name === "node") ac.abort(); };
        await assert.rejects(reconfigure({ topology: topologyFile }, { out: stopAfterOne, signal: ac.signal }), (e: unknown) =>
            e instanceof InterruptedError && /^1 node\(s\) at the new settings \(\S+-s0-r1 .*; 5 still on the old ones .*Mixed values/.test(e.info.state ?? ""));
        assert.deepEqual((await everywhere("maxmemory-policy")).filter((v) => v === "allkeys-lfu").length, 1);
        const resumed = capture();
        assert.equal(await reconfigure({ topology: topologyFile }, resumed.ctx), 0);
        assert.deepEqual(resumed.events().filter((e) => e.event === "node").map((e) => e.action), ["skip", "set", "set", "set", "set", "set"]);
        assert.deepEqual(await everywhere("maxmemory-policy"), six("allkeys-lfu"));

        // Rerun: every node is already there.
        const again = capture();
        assert.equal(await reconfigure({ topology: topologyFile }, again.ctx), 0);
        const result = again.events().find((e) => e.event === "result");
        assert.deepEqual([result.changed.length, result.skipped.length], [0, 6]);
        assert.ok(again.events().filter((e) => e.event === "node").every((e) => e.action === "skip"));

        // --stack: the stack output has no node memory, so maxmemory is the node's total_system_memory
        // × percent, what the boot script computes from MemTotal on this machine.
        const creds2 = { user: creds.user, password: creds.password };
        const stackOut = (nodeSettings: DesiredNodeSettings) => async () => ({ topology, adminCredentials: creds2, nodeSettings });
        const aws: DesiredNodeSettings = { version: 1, settings: { ...nodeSettingsOf(parseStackYaml(readFileSync(config, "utf8"), "t")), maxmemoryPercent: 60 }, fixed: { tls: false } };
        const viaStack = capture();
        assert.equal(await reconfigure({ stack: "t" }, viaStack.ctx, { readStackOutputs: stackOut(aws) }), 0);
        assert.deepEqual(await everywhere("maxmemory"), six(String(maxmemoryForThisMachine(60))));
        // A user's program that nests the cluster's outputs under one name: --output reads nodeSettings there too.
        const nested = capture();
        const nestedOut = async () => ({ redis: { topology, adminCredentials: creds2, nodeSettings: { ...aws, settings: { ...aws.settings, maxmemoryPercent: 55 } } }, appUrl: "https://app" });
        assert.equal(await reconfigure({ stack: "t", output: "redis" }, nested.ctx, { readStackOutputs: nestedOut }), 0);
        assert.deepEqual(await everywhere("maxmemory"), six(String(maxmemoryForThisMachine(55))));
        // Back to the stack's 60 % for the steps below.
        assert.equal(await reconfigure({ stack: "t" }, capture().ctx, { readStackOutputs: stackOut(aws) }), 0);
        assert.deepEqual(await everywhere("maxmemory"), six(String(maxmemoryForThisMachine(60))));

        // Port, TLS, engine: refused, named, nothing changed.
        const fixed = capture();
        await assert.rejects(
            reconfigure({ stack: "t" }, fixed.ctx, { readStackOutputs: stackOut({ ...aws, settings: { ...aws.settings, maxmemoryPolicy: "volatile-lru" }, fixed: { tls: true, port: 6379, engine: "valkey" } }) }),
            (e: unknown) => e instanceof RefusedError && /tls is off, the settings want it on/.test((e as Error).message) && /serves port \d+, the settings want 6379/.test((e as Error).message) && /the settings want valkey/.test((e as Error).message) && /nothing was changed/.test((e as Error).message),
        );
        assert.deepEqual(await everywhere("maxmemory-policy"), six("allkeys-lfu"));

        // A killed replica: the run stops before the first change, naming it, through the CLI (exit 1).
        const victim = topology.nodes.find((n) => n.name.endsWith("-s1-r1"))!;
        process.kill(pidOf(victim.name), "SIGKILL");
        await new Promise<void>((r) => { const t = setInterval(() => { if (!alive(pidOf(victim.name))) { clearInterval(t); r(); } }, 10); });
        p.drop(keyOf(victim));
        writeConfig({ maxmemoryPolicy: "volatile-lru", minReplicasMaxLagSec: 20, maxmemoryPercent: 50 });
        const cli = spawnSync(process.execPath, ["--import", "tsx", "scripts/cli.ts", "reconfigure", "--topology", topologyFile, "--config", config, "--connect-timeout", "500"], { cwd: ROOT, encoding: "utf8", timeout: 30000 });
        assert.equal(cli.status, 1, cli.stderr + cli.stdout);
        assert.match(cli.stderr, /reconfigure: step "health-check" failed on /);
        assert.match(cli.stderr, new RegExp(`${victim.name} \\(${keyOf(victim).replace(/\./g, "\\.")}\\) is unreachable`));
        const victimLabel = `${victim.name} (${keyOf(victim)})`.replace(/[.()]/g, "\\$&");
        assert.match(cli.stderr, new RegExp(`left behind: no node at the new settings; 5 still on the old ones \\([^)]+-s\\d-r\\d \\([\\d.:]+\\): [^;]*maxmemory-policy;.*; 1 not read, settings unknown \\(${victimLabel}\\)`));
        assert.match(cli.stderr, /to continue: .*run the same command again/);
        const liveOnes = topology.nodes.filter((n) => n !== victim);
        assert.deepEqual(await Promise.all(liveOnes.map((n) => get(keyOf(n), "maxmemory-policy"))), Array(5).fill("allkeys-lfu"));
        // The live nodes have these settings already: the report says so, per node, instead of "old".
        await assert.rejects(reconfigure({ stack: "t", connectTimeout: 500 }, capture().ctx, { readStackOutputs: stackOut(aws) }), (e: unknown) =>
            e instanceof StepError && new RegExp(`^5 node\\(s\\) at the new settings \\([^;]+\\); 1 not read, settings unknown \\(${victimLabel}\\)$`).test(e.info.state ?? ""));
        // A bad --config file is named as given, whatever its name.
        const bad = join(tmp, "settings-v2.yaml");
        writeFileSync(bad, "config:\n  redis-cluster:maxmemoryPolicy: sometimes\n");
        await assert.rejects(reconfigure({ topology: topologyFile, config: bad }, capture().ctx), (e: unknown) =>
            e instanceof ConfigError && (e as Error).message.startsWith(`Invalid ${bad}:`) && /maxmemoryPolicy must be one of/.test((e as Error).message));
        writeFileSync(bad, "config: [unclosed\n");
        await assert.rejects(reconfigure({ topology: topologyFile, config: bad }, capture().ctx), (e: unknown) =>
            e instanceof UsageError && (e as Error).message.startsWith(`${bad} is not a valid stack config`));
        console.log(`reconfigure of 6 local nodes (3 settings each) took ${applyMs} ms`);
    } finally {
        await pool?.close();
        if (existsSync(dir)) await down(opts, quiet());
        for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
        killRedisUnder(tmp);
        rmSync(tmp, { recursive: true, force: true });
    }
});
