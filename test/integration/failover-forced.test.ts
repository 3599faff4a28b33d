/**
 * `failover --force` and `--takeover` for real: shards whose replicas will not fail
 * over by themselves (cluster-replica-no-failover yes), masters killed.
 *  1. one master of three dead, flagged fail: --force promotes its replica (majority votes);
 *  2. two masters of three dead (no majority): --force is refused before anything is sent,
 *     --takeover promotes without votes, after which a majority exists again and --force
 *     works for the last shard.
 * Data written before each kill is acknowledged by the replica (WAIT) and must be readable after.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Cluster } from "ioredis";
import { ClusterFixture, missingKeys, runCli, startCluster, waitFor } from "../helpers/cluster";
import { killServer, TestServer } from "../helpers/redisServers";
import { ClusterNodeInfo, parseClusterNodes, SlotRange } from "../../scripts/plan/clusterNodes";

let fx: ClusterFixture | undefined;
const clients: Cluster[] = [];
after(async () => {
    for (const c of clients) c.disconnect();
    await fx?.stop();
});

const nodesOf = async (f: ClusterFixture, s: TestServer): Promise<ClusterNodeInfo[]> => parseClusterNodes((await f.client(s).call("CLUSTER", "NODES")) as string);
const stateOf = async (f: ClusterFixture, s: TestServer): Promise<string> => /cluster_state:(\w+)/.exec((await f.client(s).call("CLUSTER", "INFO")) as string)![1];
const rangesText = (r: SlotRange[]) => r.map((x) => `${x.start}-${x.end}`).join(",");

/** Writes `count` keys on each shard's master through one connection, then WAITs for its replica. */
async function writeAcknowledged(f: ClusterFixture, count: number): Promise<Map<string, string>> {
    const want = new Map<string, string>();
    const probe = f.client(f.shards[0][0]);
    const candidates = Array.from({ length: count * 3 }, (_, i) => `acked:${i}`);
    const p = probe.pipeline();
    for (const k of candidates) p.call("CLUSTER", "KEYSLOT", k);
    const slots = (await p.exec())!.map(([, v]) => Number(v));
    const owned = new Map((await nodesOf(f, f.shards[0][0])).map((x) => [x.key, x.slots]));
    for (let i = 0; i < f.shards.length; i++) {
        const master = f.client(f.shards[i][0]);
        const ranges = owned.get(f.shards[i][0].key)!;
        const mine = candidates.filter((_, j) => ranges.some((r) => slots[j] >= r.start && slots[j] <= r.end));
        assert.ok(mine.length > count / 2, `shard ${i} gets keys (${mine.length})`);
        const w = master.pipeline();
        for (const k of mine) w.set(k, `v-${k}`);
        await w.exec();
        for (const k of mine) want.set(k, `v-${k}`);
        assert.equal(await master.call("WAIT", "1", "5000"), 1, `shard ${i}: its replica acknowledged the writes`);
    }
    return want;
}

async function flaggedByAll(f: ClusterFixture, live: TestServer[], dead: TestServer, flag: "fail" | "fail?") {
    await waitFor(async () => {
        const views = await Promise.all(live.map((s) => nodesOf(f, s)));
        return views.every((v) => v.find((x) => x.key === dead.key)?.flags.includes(flag));
    }, 15000, `${dead.key} flagged ${flag} by every live node`);
}

/** Every live node sees `promoted` as a master owning exactly `slots`, and reports cluster_state ok. */
async function assertPromoted(f: ClusterFixture, live: TestServer[], promoted: TestServer, slots: SlotRange[]) {
    for (const s of live) {
        const me = (await nodesOf(f, s)).find((x) => x.key === promoted.key)!;
        assert.equal(me.role, "master", `${s.key} sees ${promoted.key} as a master`);
        assert.equal(rangesText(me.slots), rangesText(slots), `${s.key} sees ${promoted.key} owning the shard's slots`);
    }
    // The promotion is seen everywhere when the command returns; cluster_state follows at the next cron tick.
    await waitFor(async () => (await Promise.all(live.map((s) => stateOf(f, s)))).every((x) => x === "ok"), 5000, "cluster_state:ok on every live node");
}

function freshClient(live: TestServer[]): Cluster {
    const c = new Cluster(live.map((s) => ({ host: s.host, port: s.port })), { enableReadyCheck: true });
    c.on("error", () => undefined);
    clients.push(c);
    return c;
}

test("failover --force after a master died, and --takeover when no majority of masters is left", { timeout: 90_000 }, async (t) => {
    fx = await startCluster({ masters: 3, replicasPerMaster: 1, clusterNodeTimeoutMs: 1000 });
    const f = fx;
    const [[m0, r0], [m1, r1], [m2, r2]] = f.shards;
    for (const r of [r0, r1, r2]) await f.client(r).call("CONFIG", "SET", "cluster-replica-no-failover", "yes");
    const want = await writeAcknowledged(f, 300);
    const slotsOf = new Map<string, SlotRange[]>((await nodesOf(f, m0)).filter((x) => x.role === "master").map((x) => [x.key, x.slots]));

    // --- 1. shard 1's master dies; its replica stays a replica
    await killServer(m1);
    let live = [m0, r0, r1, m2, r2];
    await flaggedByAll(f, live, m1, "fail");
    assert.equal((await nodesOf(f, r1)).find((x) => x.myself)!.role, "replica", "no automatic failover (cluster-replica-no-failover)");
    assert.equal(await stateOf(f, m0), "fail", "shard 1's slots are down");

    const forced = await runCli(["failover", "--topology", f.topologyFile, "--shard", "1", "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /warning: FORCE does not wait for the old master: writes it acknowledged but had not yet replicated are lost/);
    assert.match(forced.stderr, new RegExp(`shard 1: promoting t-s1-r1 \\(${r1.key}\\).* \\[FORCE\\]`));
    assert.match(forced.stdout, new RegExp(`shard 1: t-s1-r1 \\(${r1.key}\\) is the master, seen by every node after`));
    t.diagnostic(forced.stdout.trim());
    await assertPromoted(f, live, r1, slotsOf.get(m1.key)!);
    assert.deepEqual(await missingKeys(freshClient(live), want), [], "every acknowledged write of every shard is readable");

    // --- 2. shards 0 and 2 lose their masters: one master of three is left, no majority
    await Promise.all([killServer(m0), killServer(m2)]);
    live = [r0, r1, r2];
    for (const dead of [m0, m2]) await flaggedByAll(f, live, dead, "fail?");
    await waitFor(async () => (await stateOf(f, r1)) === "fail", 5000, "the last master to see it is in a minority");

    const refused = await runCli(["failover", "--topology", f.topologyFile, "--shard", "0", "--force"]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`failover --force: a forced promotion still needs the votes of a majority of the masters that own slots \\(2 of 3\\), and only 1 answers from here \\(t-s1-r1 \\(${r1.key}\\)\\); nothing was sent\\. If the other masters are really gone, rerun with --takeover`));
    assert.equal((await nodesOf(f, r0)).find((x) => x.myself)!.role, "replica", "the refused --force sent nothing");

    const takeover = await runCli(["failover", "--topology", f.topologyFile, "--shard", "0", "--takeover"]);
    assert.equal(takeover.code, 0, takeover.stderr);
    assert.match(takeover.stderr, /warning: TAKEOVER skips the vote of the other masters: the replica raises the epoch on its own\. If the old master is in fact alive/);
    assert.match(takeover.stdout, new RegExp(`shard 0: t-s0-r1 \\(${r0.key}\\) is the master, seen by every node after`));
    t.diagnostic(takeover.stdout.trim());
    for (const s of live) {
        const me = (await nodesOf(f, s)).find((x) => x.key === r0.key)!;
        assert.equal(me.role, "master", `${s.key} sees ${r0.key} as a master`);
        assert.equal(rangesText(me.slots), rangesText(slotsOf.get(m0.key)!));
    }

    // Two live masters of three now: a majority again, so --force works for shard 2.
    const last = await runCli(["failover", "--topology", f.topologyFile, "--shard", "2", "--force"]);
    assert.equal(last.code, 0, last.stderr);
    t.diagnostic(last.stdout.trim());
    await assertPromoted(f, live, r0, slotsOf.get(m0.key)!);
    await assertPromoted(f, live, r2, slotsOf.get(m2.key)!);
    assert.deepEqual(await missingKeys(freshClient(live), want), [], "every acknowledged write is readable after the takeover and the second force");
});
