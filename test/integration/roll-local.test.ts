/**
 * `npm run local -- roll` on a real 3×1 local cluster:
 * - refusals (a replica's link down, an open slot, a shard without a replica,
 *   a BGSAVE running, an older engine binary) change nothing: no pid changes, no roll state written;
 * - under a client that writes with WAIT 1 and reads continuously, the roll
 *   restarts all six servers (every pid changes); afterwards every WAIT-acknowledged
 *   write reads back, the client saw no error it could not retry, node ids are
 *   unchanged and the cluster is healthy. Client errors, the longest write pause
 *   and the pause around each failover are printed;
 * - a roll killed (SIGKILL) in the middle of a node's restart and run again
 *   completes, each node restarted once over the two runs.
 * `down` always runs in `finally`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Redis, { Cluster } from "ioredis";
import { Topology } from "../../components/topology";
import { redisAlive, killRedisUnder } from "../helpers/processes";
import { NodePool } from "../../scripts/redis/pool";
import { collectStatus } from "../../scripts/redis/healthReport";
import { evaluateStatus } from "../../scripts/plan/status";
import { waitUntil } from "../../scripts/redis/clusterView";
import { localBasePort } from "../helpers/redisServers";

const ROOT = join(__dirname, "..", "..");
const tmp = mkdtempSync(join(tmpdir(), "rct-roll-"));
const config = join(tmp, "Pulumi.t.yaml");
const state = join(tmp, "state");
const dir = join(state, "t");
const common = ["--stack", "t", "--config", config, "--state-dir", state];

interface Creds { user: string; password: string; app: { user: string; password: string }; replication: { user: string; password: string } }
let topology: Topology;
let creds: Creds;
let pool: NodePool;
const started: number[] = [];

function localSync(...args: string[]) {
    return spawnSync(process.execPath, ["--import", "tsx", "scripts/cli.ts", "local", ...args], { cwd: ROOT, encoding: "utf8", timeout: 120000 });
}

/** `local roll --json` as a child process (the client keeps running meanwhile); NDJSON events as they come. */
function rollAsync(extra: string[] = [], onEvent: (e: any, child: ReturnType<typeof spawn>) => void = () => undefined) {
    const child = spawn(process.execPath, ["--import", "tsx", "scripts/cli.ts", "local", "roll", ...common, "--json", ...extra], { cwd: ROOT });
    let out = "";
    let err = "";
    const events: any[] = [];
    let buf = "";
    child.stdout.on("data", (d) => {
        out += d;
        buf += d;
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            try {
                const e = JSON.parse(line);
                if (e.event) {
                    events.push(e);
                    onEvent(e, child);
                }
            } catch { /* the final pretty-printed document spans lines */ }
        }
    });
    child.stderr.on("data", (d) => (err += d));
    return new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string; events: any[] }>((res) => {
        child.on("close", (code, signal) => res({ code, signal, out, err, events }));
    });
}

const pidOf = (name: string) => Number(readFileSync(join(dir, name, "redis.pid"), "utf8"));
const pids = () => topology.nodes.map((n) => pidOf(n.name));
const key = (name: string) => {
    const n = topology.nodes.find((x) => x.name === name)!;
    return `${n.host}:${n.port}`;
};
async function ids(): Promise<string[]> {
    return Promise.all(topology.nodes.map(async (n) => String(await pool.call(`${n.host}:${n.port}`, "CLUSTER", "MYID"))));
}
async function waitHealthy(): Promise<void> {
    let last: string[] = [];
    await waitUntil(async () => {
        const r = evaluateStatus(await collectStatus(pool, topology));
        last = r.problems;
        return r.healthy;
    }, { timeoutMs: 30000, intervalMs: 100, maxIntervalMs: 500, what: "the cluster to be healthy" }, () => last.join("; "));
}

/** A client writing SET + WAIT 1 and reading back what was acknowledged, continuously. */
class Workload {
    readonly acked = new Map<string, string>();
    readonly writes: number[] = []; // completion times of successful SETs
    readonly errors = new Map<string, number>();
    readonly fatal: string[] = [];
    reads = 0;
    private stop = false;
    private readonly loops: Promise<void>[] = [];
    constructor(private readonly c: Cluster) {}

    private note(e: unknown) {
        const msg = (e as Error).message ?? String(e);
        // What a cluster client retries: redirections, a shard briefly without a master, a restarting node,
        // and a WAIT unblocked because its master became a replica in the failover (UNBLOCKED: the write
        // was not acknowledged, so it is not counted, and the client writes it again).
        const retryable = /CLUSTERDOWN|TRYAGAIN|LOADING|READONLY|MASTERDOWN|UNBLOCKED|MOVED|ASK|ECONNREFUSED|ECONNRESET|EPIPE|Connection is closed|redirections|refresh slots|timed? ?out/i.test(msg);
        const k = msg.replace(/\d+/g, "N").slice(0, 80);
        this.errors.set(k, (this.errors.get(k) ?? 0) + 1);
        if (!retryable) this.fatal.push(msg);
    }

    start() {
        this.loops.push((async () => {
            for (let i = 0; !this.stop; i++) {
                const k = `roll:${i}`;
                const v = `v${i}`;
                try {
                    // SET and WAIT on the same connection: WAIT counts the replicas that have this write.
                    const res = await this.c.pipeline().set(k, v).call("WAIT", "1", "100").exec();
                    const [setErr] = res![0];
                    const [waitErr, n] = res![1];
                    if (setErr) throw setErr;
                    this.writes.push(Date.now());
                    if (waitErr) throw waitErr;
                    if (Number(n) >= 1) this.acked.set(k, v);
                } catch (e) {
                    this.note(e);
                    await new Promise((r) => setTimeout(r, 10));
                }
            }
        })());
        this.loops.push((async () => {
            while (!this.stop) {
                const keys = [...this.acked.keys()];
                if (keys.length === 0) {
                    await new Promise((r) => setTimeout(r, 10));
                    continue;
                }
                const k = keys[Math.floor(Math.random() * keys.length)];
                try {
                    const got = await this.c.get(k);
                    this.reads++;
                    if (got !== this.acked.get(k)) this.fatal.push(`read ${k}: got ${got}, acknowledged ${this.acked.get(k)}`);
                } catch (e) {
                    this.note(e);
                    await new Promise((r) => setTimeout(r, 10));
                }
            }
        })());
    }

    async finish() {
        this.stop = true;
        await Promise.all(this.loops);
    }

    /** Longest gap between two successful writes inside [from, to] (ms). */
    pause(from = 0, to = Infinity): number {
        let max = 0;
        for (let i = 1; i < this.writes.length; i++) {
            if (this.writes[i] < from || this.writes[i - 1] > to) continue;
            max = Math.max(max, this.writes[i] - this.writes[i - 1]);
        }
        return max;
    }
}

test("roll (local): set up a 3×1 cluster", async () => {
    writeFileSync(config, ["config:", "  redis-cluster:shards: 3", "  redis-cluster:replicasPerShard: 1", "  redis-cluster:zones: 3", "  redis-cluster:clusterNodeTimeoutMs: 1000", ""].join("\n"));
    const up = localSync("up", ...common, "--base-port", String(localBasePort()));
    assert.equal(up.status, 0, up.stderr + up.stdout);
    topology = JSON.parse(readFileSync(join(dir, "topology.json"), "utf8")) as Topology;
    creds = JSON.parse(readFileSync(join(dir, "credentials.json"), "utf8")) as Creds;
    pool = new NodePool({ credentials: { user: creds.user, password: creds.password }, connectTimeoutMs: 1000, commandTimeoutMs: 5000 });
    started.push(...pids());
});

test("roll (local): refusals change nothing (replica link down, open slot, shard without replica, backup running, older engine)", async () => {
    const before = pids();
    const refused = async (why: RegExp, extra: string[] = []) => {
        const r = await rollAsync(extra);
        assert.equal(r.code, 1, r.err + r.out);
        assert.match(r.err, /roll refused; nothing was changed/);
        assert.match(r.err, why);
        assert.deepEqual(pids(), before, "a refused roll restarted a node");
        assert.ok(!existsSync(join(dir, "roll.json")), "a refused roll left roll state behind");
        return r;
    };
    const s0r0 = "redis-cluster-t-s0-r0";
    const s0r1 = "redis-cluster-t-s0-r1";
    const s1r0 = "redis-cluster-t-s1-r0";

    // A replica whose link is down: status is unhealthy.
    await pool.call(key(s0r1), "CONFIG", "SET", "masterauth", "wrong-password");
    await pool.call(key(s0r1), "CLIENT", "KILL", "TYPE", "master");
    await waitUntil(async () => /master_link_status:down/.test(String(await pool.call(key(s0r1), "INFO", "replication"))), { timeoutMs: 10000, what: "the link to go down" });
    await refused(/the cluster is not healthy: .*link to its master/);
    await pool.call(key(s0r1), "CONFIG", "SET", "masterauth", creds.replication.password);
    await waitHealthy();

    // An open slot.
    const [id0, id1] = [String(await pool.call(key(s0r0), "CLUSTER", "MYID")), String(await pool.call(key(s1r0), "CLUSTER", "MYID"))];
    await pool.call(key(s0r0), "CLUSTER", "SETSLOT", "100", "MIGRATING", id1);
    await refused(/slot\(s\) are open .*100 migrating on redis-cluster-t-s0-r0/);
    await pool.call(key(s0r0), "CLUSTER", "SETSLOT", "100", "STABLE");
    await waitHealthy();

    // Shard 0 without a replica (its replica follows shard 1's master).
    await pool.call(key(s0r1), "CLUSTER", "REPLICATE", id1);
    await waitUntil(async () => /master_link_status:up/.test(String(await pool.call(key(s0r1), "INFO", "replication"))), { timeoutMs: 15000, what: "the moved replica to sync" });
    await refused(/shard 0 has no in-sync replica to take over from its master redis-cluster-t-s0-r0.*--allow-unavailable-shard/);
    const accepted = await rollAsync(["--dry-run", "--allow-unavailable-shard"]);
    assert.equal(accepted.code, 0, accepted.err);
    assert.match(accepted.err, /while redis-cluster-t-s0-r0 restarts, every key of its slots is unavailable/);
    assert.deepEqual(pids(), before);
    await pool.call(key(s0r1), "CLUSTER", "REPLICATE", id0);
    await waitHealthy();

    // A backup running: BGSAVE slowed down by rdb-key-save-delay (µs per key) on shard 0's master.
    const app = new Redis.Cluster([{ host: "127.0.0.1", port: topology.nodes[0].port }], { redisOptions: { username: creds.app.user, password: creds.app.password } });
    app.on("error", () => undefined);
    try {
        let tag = 0;
        while (Number(await pool.call(key(s0r0), "CLUSTER", "KEYSLOT", `{t${tag}}`)) > 5460) tag++;
        for (let i = 0; i < 40; i++) await app.set(`{t${tag}}:${i}`, "x");
        // The full sync of the REPLICATE above forks too: start ours after it ("Background save already in progress").
        await waitUntil(async () => /rdb_bgsave_in_progress:0/.test(String(await pool.call(key(s0r0), "INFO", "persistence"))), { timeoutMs: 20000, what: "the full sync's fork to end" });
        await pool.call(key(s0r0), "CONFIG", "SET", "rdb-key-save-delay", "200000");
        await pool.call(key(s0r0), "BGSAVE");
        // roll waits up to --node-timeout for a BGSAVE to end (this one takes 8 s): 1 s, so it is still running then.
        await refused(/a backup is running \(BGSAVE in progress\) on redis-cluster-t-s0-r0/, ["--node-timeout", "1000"]);
        await pool.call(key(s0r0), "CONFIG", "SET", "rdb-key-save-delay", "0");
        await waitUntil(async () => /rdb_bgsave_in_progress:0/.test(String(await pool.call(key(s0r0), "INFO", "persistence"))), { timeoutMs: 20000, what: "the BGSAVE to end" });
        for (let i = 0; i < 40; i++) await app.del(`{t${tag}}:${i}`);
    } finally {
        app.disconnect();
    }

    // An older engine binary: a downgrade has no safe order. Not even the node files change.
    const fake = join(tmp, "redis-server-6.2");
    writeFileSync(fake, "#!/bin/sh\necho 'Redis server v=6.2.14 sha=00000000:0 malloc=jemalloc-5.1.0 bits=64 build=0'\n", { mode: 0o755 });
    const conf = readFileSync(join(dir, s0r0, "redis.conf"), "utf8");
    await refused(/engine 6\.2\.14 is older than what .* run: a downgrade has no safe rolling order/, ["--engine-binary", fake]);
    assert.equal(readFileSync(join(dir, s0r0, "redis.conf"), "utf8"), conf);
});

test("roll (local): restarts all six servers under WAIT-ed writes and reads; nothing acknowledged is lost", async () => {
    const before = pids();
    const idsBefore = await ids();
    const client = new Redis.Cluster([{ host: "127.0.0.1", port: topology.nodes[0].port }], {
        redisOptions: { username: creds.app.user, password: creds.app.password, connectTimeout: 1000 },
        retryDelayOnFailover: 20, retryDelayOnClusterDown: 20, retryDelayOnTryAgain: 20, maxRedirections: 32,
    });
    client.on("error", () => undefined);
    const w = new Workload(client);
    try {
        w.start();
        await waitUntil(async () => w.acked.size > 50, { timeoutMs: 10000, what: "the client to write" });
        const t0 = Date.now();
        const r = await rollAsync();
        const total = Date.now() - t0;
        await new Promise((res) => setTimeout(res, 300));
        await w.finish();
        assert.equal(r.code, 0, r.err + r.out);

        const after = pids();
        after.forEach((p, i) => {
            assert.notEqual(p, before[i], `${topology.nodes[i].name} was not restarted`);
            assert.ok(redisAlive(p), `${topology.nodes[i].name} is not running`);
        });
        assert.deepEqual(await ids(), idsBefore, "a node came back with another id");
        await waitHealthy();
        assert.ok(!existsSync(join(dir, "roll.json")), "roll state left after a complete roll");

        // Every WAIT-acknowledged write reads back.
        const lost: string[] = [];
        const entries = [...w.acked];
        for (let i = 0; i < entries.length; i += 200) {
            const got = await Promise.all(entries.slice(i, i + 200).map(([k]) => client.get(k)));
            got.forEach((g, j) => { if (g !== entries[i + j][1]) lost.push(entries[i + j][0]); });
        }
        const failovers = r.events.filter((e) => e.event === "failover");
        const perFailover = failovers.map((f) => {
            const end = Date.parse(f.ts);
            return { shard: f.shard, failoverMs: f.ms, writePauseMs: w.pause(end - f.ms - 200, end + 1000) };
        });
        const backs = r.events.filter((e) => e.event === "node-back").map((e) => e.ms);
        console.log(`roll of 6 nodes: ${total} ms wall (${backs.join(", ")} ms per node); ` +
            `${w.writes.length} writes, ${w.acked.size} WAIT-acknowledged, ${w.reads} reads; longest write pause ${w.pause()} ms; ` +
            `per failover ${JSON.stringify(perFailover)}; client errors ${JSON.stringify(Object.fromEntries(w.errors))}`);
        assert.deepEqual(lost, [], `${lost.length} acknowledged write(s) lost`);
        assert.deepEqual(w.fatal, [], "the client saw errors it could not retry");
        assert.equal(failovers.length, 3);
        assert.ok(w.acked.size > 100, `only ${w.acked.size} acknowledged writes: the client did not run during the roll`);
    } finally {
        await w.finish();
        client.disconnect();
    }
});

test("roll (local): killed in the middle of a restart, run again, completes; each node restarted once", async () => {
    const before = pids();
    const idsBefore = await ids();
    // Not a measurement: spare the running masters Redis' default 5 s wait before each full resync
    // (a restarted server reads its redis.conf again, so the nodes restarted here wait as usual).
    await Promise.all(topology.nodes.map((n) => pool.call(`${n.host}:${n.port}`, "CONFIG", "SET", "repl-diskless-sync-delay", "0")));
    let killedAt: string | undefined;
    const first = await rollAsync([], (e, child) => {
        // The third node's restart has begun: kill the tool in the middle of it.
        if (e.event === "node" && e.index === 3 && !killedAt) {
            killedAt = e.node;
            child.kill("SIGKILL");
        }
    });
    assert.equal(first.signal, "SIGKILL", first.err);
    assert.ok(existsSync(join(dir, "roll.json")), "the killed roll left its state for the rerun");
    const restartedFirst = first.events.filter((e) => e.event === "node-back").map((e) => e.node);
    assert.equal(restartedFirst.length, 2);

    // The killed run's cluster lease is still there: the rerun is refused without --take-over-lease.
    const refusedRerun = await rollAsync();
    assert.equal(refusedRerun.code, 1, refusedRerun.err);
    assert.match(refusedRerun.err, /roll: the cluster lease of .* no longer runs on this host.*rerun with --take-over-lease/);
    const second = await rollAsync(["--take-over-lease"]);
    assert.equal(second.code, 0, second.err + second.out);
    assert.match(second.err, /taking it over \(--take-over-lease\)/);
    assert.match(second.err, /resuming the roll started earlier/);
    const restartedSecond = second.events.filter((e) => e.event === "node").map((e) => e.node);
    for (const n of restartedFirst) assert.ok(!restartedSecond.includes(n), `${n} was restarted again`);
    assert.equal(restartedFirst.length + restartedSecond.length + (restartedSecond.includes(killedAt) ? 0 : 1), 6);

    pids().forEach((p, i) => assert.notEqual(p, before[i], `${topology.nodes[i].name} was not restarted`));
    assert.deepEqual(await ids(), idsBefore);
    await waitHealthy();
    assert.ok(!existsSync(join(dir, "roll.json")));
});

test("roll (local): tear down", async () => {
    await pool?.close();
    if (existsSync(dir)) {
        const d = localSync("down", ...common);
        assert.equal(d.status, 0, d.stderr);
    }
    for (const p of started) if (redisAlive(p)) process.kill(p, "SIGKILL");
    killRedisUnder(tmp);
    rmSync(tmp, { recursive: true, force: true });
});

process.on("exit", () => {
    // A failed test above must not leave servers behind.
    if (existsSync(dir)) localSync("down", ...common);
    killRedisUnder(tmp);
    rmSync(tmp, { recursive: true, force: true });
});
