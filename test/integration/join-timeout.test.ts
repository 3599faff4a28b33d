/**
 * The join's short cluster-node-timeout (scripts/redis/joinTimeout.ts), against real
 * servers: joining masters run 500 ms only until they serve; every node ends with its
 * configured value, also when the tool is SIGKILLed inside that window and run again
 * (the configured value then comes from the other nodes, or from settings.json beside
 * the topology when every node was shortened); no failover happens during the join.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServers, stopAll, TestServer } from "../helpers/redisServers";
import { ClusterFixture, CliRun, runCli, spawnCli, startCluster } from "../helpers/cluster";
import { nodeName, Topology } from "../../components/topology";
import { zoneOf } from "../../components/plan/placement";
import { parseStackConfig } from "../../components/config";
import { desiredNodeSettingsOf } from "../../components/bootstrap/nodeSettings";
import { NodePool } from "../../scripts/redis/pool";
import { parseInfo } from "../../scripts/plan/clusterView";
import { parseClusterNodes } from "../../scripts/plan/clusterNodes";
import { checkFormation } from "../../scripts/redis/health";
import { JOIN_NODE_TIMEOUT_MS } from "../../scripts/redis/joinTimeout";

const CONFIGURED = 3000;
const started: TestServer[] = [];
const fixtures: ClusterFixture[] = [];
const pools: NodePool[] = [];
const dirs: string[] = [];
after(async () => {
    await Promise.all(pools.map((p) => p.close()));
    await Promise.all(fixtures.map((f) => f.stop()));
    await stopAll(started);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function pool(): NodePool {
    const p = new NodePool({ connectTimeoutMs: 1000 });
    pools.push(p);
    return p;
}

/** Shard s: servers s (r0) and s + shards (r1). */
function topologyFile(s: TestServer[], shards: number, settings?: number): string {
    const dir = mkdtempSync(join(tmpdir(), "join-timeout-"));
    dirs.push(dir);
    const t: Topology = {
        clusterName: "t", port: 0, tls: false,
        nodes: s.map((x, i) => {
            const shard = i % shards;
            const r = Math.floor(i / shards);
            return { name: nodeName("t", shard, r), shard, az: `local-${"abc"[zoneOf(shard, r, 3)]}`, host: x.host, port: x.port };
        }),
    };
    writeFileSync(join(dir, "topology.json"), JSON.stringify(t));
    if (settings !== undefined) {
        // What local mode writes beside its topology (scripts/local.ts).
        const cfg = parseStackConfig((k) => (k === "clusterNodeTimeoutMs" ? settings : undefined), { project: "redis-cluster", stack: "t" });
        writeFileSync(join(dir, "settings.json"), JSON.stringify(desiredNodeSettingsOf(cfg)));
    }
    return join(dir, "topology.json");
}

async function timeouts(p: NodePool, keys: string[]): Promise<number[]> {
    return Promise.all(keys.map(async (k) => Number(((await p.call(k, "CONFIG", "GET", "cluster-node-timeout")) as string[])[1])));
}

/** FAIL messages or failover votes asked for anywhere: the bus counters of every node (CLUSTER INFO lists those above 0). */
async function failoverTraces(p: NodePool, keys: string[]): Promise<string[]> {
    const out: string[] = [];
    for (const k of keys) {
        const info = parseInfo((await p.call(k, "CLUSTER", "INFO")) as string);
        for (const [name, v] of Object.entries(info)) if (/^cluster_stats_messages_(fail|auth-req|auth-ack)_/.test(name)) out.push(`${k} ${name}:${v}`);
    }
    return out;
}

/** Starts the tool with --json and SIGKILLs it as soon as it reports the joining masters shortened. */
async function killInWindow(args: string[], step: "step" | "join-step"): Promise<CliRun> {
    const run = spawnCli([...args, "--json"]);
    let out = "";
    await new Promise<void>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`no join-timeout event within 30 s:\n${out}\n${run.stderrSoFar()}`)), 30000);
        run.proc.stdout!.on("data", (d) => {
            out += d;
            if (out.split("\n").some((l) => l.includes(`"event":"${step}"`) && l.includes(`"step":"join-timeout"`))) {
                clearTimeout(timer);
                run.proc.kill("SIGKILL");
                res();
            }
        });
        run.proc.once("exit", () => {
            clearTimeout(timer);
            res();
        });
    });
    return run.done;
}

const events = (r: CliRun, name: string, step: string) => r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)).filter((e) => e.event === name && e.step === step);

test("create: masters join with 500 ms and get their configured cluster-node-timeout back; killed in that window, a rerun restores it; no failover", { timeout: 120_000 }, async () => {
    const s = await startServers(6, { clusterNodeTimeoutMs: CONFIGURED });
    started.push(...s);
    const keys = s.map((x) => x.key);
    const file = topologyFile(s, 3);
    const p = pool();

    const killed = await killInWindow(["create", "--topology", file], "step");
    assert.equal(killed.signal, "SIGKILL", `create ended before the kill: ${killed.stderr}`);
    // Killed inside the window: the masters still run the join value, the replicas were never touched.
    assert.deepEqual(await timeouts(p, keys), [JOIN_NODE_TIMEOUT_MS, JOIN_NODE_TIMEOUT_MS, JOIN_NODE_TIMEOUT_MS, CONFIGURED, CONFIGURED, CONFIGURED]);
    // status names each node left there.
    const st = await runCli(["status", "--topology", file, "--json"]);
    assert.equal(st.code, 1, st.stderr);
    assert.deepEqual((JSON.parse(st.stdout) as { cluster: { joinTimeoutLeft: string[] } }).cluster.joinTimeoutLeft.sort(), keys.slice(0, 3).sort());

    const rerun = await runCli(["create", "--topology", file, "--json"]);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stderr, /left by an interrupted join/);
    assert.deepEqual(events(rerun, "step", "restore-node-timeout").map((e) => e.node).sort(), keys.slice(0, 3).sort());
    assert.deepEqual(await timeouts(p, keys), keys.map(() => CONFIGURED));

    const { problems, view } = await checkFormation(p, { keys, replicas: 3 });
    assert.deepEqual(problems, []);
    for (let shard = 0; shard < 3; shard++) {
        assert.equal(view.self(keys[shard])?.role, "master", `${keys[shard]} (r0) is still master`);
        assert.equal(view.self(keys[shard + 3])?.masterId, view.self(keys[shard])?.id, `${keys[shard + 3]} still replicates r0`);
    }
    assert.deepEqual(await failoverTraces(p, keys), []);
});

test("create of masters only, killed in the window: every node was shortened, so the value comes from settings.json beside the topology", { timeout: 60_000 }, async () => {
    const s = await startServers(3, { clusterNodeTimeoutMs: CONFIGURED });
    started.push(...s);
    const keys = s.map((x) => x.key);
    const file = topologyFile(s, 3, CONFIGURED);
    const p = pool();
    const killed = await killInWindow(["create", "--topology", file], "step");
    assert.equal(killed.signal, "SIGKILL", `create ended before the kill: ${killed.stderr}`);
    assert.deepEqual(await timeouts(p, keys), keys.map(() => JOIN_NODE_TIMEOUT_MS));
    const rerun = await runCli(["create", "--topology", file]);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.deepEqual(await timeouts(p, keys), keys.map(() => CONFIGURED));
});

test("scale: the new master joins with 500 ms, then its configured value, before any slot moves; killed in the window, a rerun restores it; no failover", { timeout: 120_000 }, async () => {
    const fx = await startCluster({ masters: 3, replicasPerMaster: 1, spare: 2, clusterNodeTimeoutMs: CONFIGURED });
    fixtures.push(fx);
    const p = pool();
    const [newMaster, newReplica] = fx.spare;
    fx.writeTopology([...fx.shards, [newMaster, newReplica]]);
    const keys = fx.all.map((x) => x.key);
    const rolesBefore = new Map(await Promise.all(fx.shards.flat().map(async (x) => [x.key, parseClusterNodes((await p.call(x.key, "CLUSTER", "NODES")) as string).find((n) => n.myself)!.role] as const)));

    const killed = await killInWindow(["scale", "--topology", fx.topologyFile, "--yes"], "join-step");
    assert.equal(killed.signal, "SIGKILL", `scale ended before the kill: ${killed.stderr}`);
    // Only the joining master was shortened: never a member, never a replica.
    const during = await timeouts(p, keys);
    assert.deepEqual(during.map((v, i) => [keys[i], v]).filter(([, v]) => v !== CONFIGURED), [[newMaster.key, JOIN_NODE_TIMEOUT_MS]]);

    const rerun = await runCli(["scale", "--topology", fx.topologyFile, "--yes", "--take-over-lease", "--json"]); // the killed run left its lease
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.deepEqual(await timeouts(p, keys), keys.map(() => CONFIGURED));
    // Restored before the first slot moved.
    const lines = rerun.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    const restoredAt = lines.findIndex((e) => e.step === "restore-node-timeout");
    const movedAt = lines.findIndex((e) => e.event === "plan" || e.event === "progress");
    assert.ok(restoredAt >= 0 && movedAt > restoredAt, `restore (${restoredAt}) before the move (${movedAt}):\n${rerun.stdout}`);

    for (const [k, role] of rolesBefore) {
        assert.equal(parseClusterNodes((await p.call(k, "CLUSTER", "NODES")) as string).find((n) => n.myself)!.role, role, `${k} kept its role`);
    }
    assert.equal(parseClusterNodes((await p.call(newMaster.key, "CLUSTER", "NODES")) as string).find((n) => n.myself)!.role, "master");
    assert.deepEqual(await failoverTraces(p, keys), []);
});
