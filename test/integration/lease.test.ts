/**
 * The cluster lease (docs/lease.md, issue 9 defect 2): a second changing run refuses and
 * names the first; an expired lease is taken over only with --take-over-lease; the lease
 * is released on success and on failure.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { ClusterFixture, loadKeys, missingKeys, runCli, spawnCli, startCluster } from "../helpers/cluster";
import { capturedOutput } from "../helpers/output";
import { acquireLease, LEASE_KEY, readLease } from "../../scripts/redis/lease";
import { NodePool } from "../../scripts/redis/pool";

let fx: ClusterFixture;
before(async () => {
    fx = await startCluster({ masters: 3, spare: 1 });
});
after(async () => fx?.stop());

const nodesOf = async () => Promise.all(fx.all.map(async (s) => ((await fx.client(s).call("CLUSTER", "NODES")) as string).split("\n").map((l) => l.split(" ").slice(0, 3).join(" ") + " " + l.split(" ").slice(8).join(" ")).sort().join("\n")));

test("a second run refuses while a lease is held, naming the holder, and changes nothing", { timeout: 90_000 }, async () => {
    const pool = new NodePool();
    const cap = capturedOutput();
    const seeds = fx.shards.map((s) => s[0].key);
    const lease = await acquireLease(pool, seeds, { command: "scale", out: cap.out });
    try {
        // Leave a slot open as a live move would: the refused run must not touch it either.
        const aId = (await fx.client(fx.shards[0][0]).call("CLUSTER", "MYID")) as string;
        await fx.client(fx.shards[1][0]).call("CLUSTER", "SETSLOT", "7", "IMPORTING", aId);
        const before = await nodesOf();
        fx.writeTopology([...fx.shards, [fx.spare[0]]]);
        for (const cmd of [["scale"], ["rebalance"], ["flushall", "--confirm", fx.clusterName], ["forget", "0123456789abcdef"]]) {
            const r = await runCli([...cmd, "--topology", fx.topologyFile]);
            assert.equal(r.code, 1, `${cmd[0]}: ${r.stderr}`);
            assert.match(r.stderr, new RegExp(`the cluster is leased to scale by .*@.*:${process.pid} since .*nothing was changed`), cmd[0]);
            assert.doesNotMatch(r.stderr, /open slot/);
        }
        // --take-over-lease never takes a live lease.
        const r = await runCli(["rebalance", "--topology", fx.topologyFile, "--take-over-lease"]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /leased to scale/);
        assert.deepEqual(await nodesOf(), before, "CLUSTER NODES unchanged on every node");
        await fx.client(fx.shards[1][0]).call("CLUSTER", "SETSLOT", "7", "STABLE");
        // status names the holder too.
        const held = await readLease(pool, seeds);
        assert.equal(held?.command, "scale");
        const st = await runCli(["status", "--topology", fx.topologyFile]);
        assert.match(st.stdout, new RegExp(`lease: scale by .*:${process.pid} since .*a changing command is running`));
    } finally {
        await lease.release();
        await pool.close();
        fx.writeTopology(fx.shards);
    }
    const p2 = new NodePool();
    assert.equal(await readLease(p2, fx.shards.map((s) => s[0].key)).finally(() => p2.close()), undefined, "released");
});

test("two concurrent scale runs: the second refuses naming the first, which completes with every key", { timeout: 90_000 }, async () => {
    const data = fx.clusterClient();
    const keys = await loadKeys(data, 20000, "c");
    const want = new Map(keys.map((k) => [k, `v-${k}`]));
    fx.writeTopology([...fx.shards, [fx.spare[0]]]);
    // Small batches, one stream: the first run is still moving when the second starts.
    const first = spawnCli(["scale", "--topology", fx.topologyFile, "--batch", "5", "--parallel", "1"]);
    const deadline = Date.now() + 20_000;
    while (!/scale: \d+\/\d+ slots/.test(first.stderrSoFar()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.match(first.stderrSoFar(), /scale: \d+\/\d+ slots/, "the first run is moving slots");
    const second = await runCli(["scale", "--topology", fx.topologyFile]);
    const one = await first.done;
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`leased to scale by .*:${first.proc.pid} since`));
    assert.doesNotMatch(second.stderr, /open slot|join|moved/);
    assert.equal(one.code, 0, `the first run was not disturbed: ${one.stderr}`);
    assert.deepEqual(await missingKeys(data, want), []);
    assert.equal(await data.exists(LEASE_KEY), 0, "released on success");
});

test("an expired lease is reported and taken over only with --take-over-lease; released on failure", { timeout: 60_000 }, async () => {
    const data = fx.clusterClient();
    const t = await fx.client(fx.shards[0][0]).call("TIME") as string[];
    const now = Number(t[0]) * 1000;
    await data.hset(LEASE_KEY, { token: "dead", owner: "bob@old-box:4242", command: "rebalance", started: String(now - 600_000), expires: String(now - 300_000) });
    const refused = await runCli(["rebalance", "--topology", fx.topologyFile]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /the cluster lease of rebalance by bob@old-box:4242 since .* expired 5 min ago: that run probably died; nothing was changed\. .*--take-over-lease/);
    assert.equal(await data.hget(LEASE_KEY, "token"), "dead", "left in place without the flag");

    const taken = await runCli(["rebalance", "--topology", fx.topologyFile, "--take-over-lease"]);
    assert.equal(taken.code, 0, taken.stderr);
    assert.match(taken.stderr, /taking it over \(--take-over-lease\)/);
    assert.equal(await data.exists(LEASE_KEY), 0, "released on success");

    // A run that fails after taking the lease releases it: a new node that cannot be reached.
    fx.writeTopology([...fx.shards, [{ ...fx.spare[0], port: 1 } as typeof fx.spare[0]]]);
    const failed = await runCli(["scale", "--topology", fx.topologyFile]);
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stderr, /cannot be reached/);
    assert.equal(await data.exists(LEASE_KEY), 0, "released on failure");
    fx.writeTopology(fx.shards);
});

test("without scripting (an ACL without @scripting) the lease works by WATCH/MULTI", { timeout: 30_000 }, async () => {
    await Promise.all(fx.all.map((s) => fx.client(s).call("ACL", "SETUSER", "ops", "on", ">ops-pw-0123456789", "~*", "&*", "+@all", "-@scripting")));
    const pool = new NodePool({ credentials: { user: "ops", password: "ops-pw-0123456789" } });
    const cap = capturedOutput();
    const seeds = fx.shards.map((s) => s[0].key);
    try {
        const lease = await acquireLease(pool, seeds, { command: "roll", out: cap.out });
        const r = await runCli(["rebalance", "--topology", fx.topologyFile]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, new RegExp(`leased to roll by .*:${process.pid}`));
        const before = Number((await readLease(pool, seeds))!.expires);
        await new Promise((res) => setTimeout(res, 20));
        await lease.renew();
        assert.ok(lease.record!.expires > before, "renewed");
        await assert.rejects(acquireLease(pool, seeds, { command: "scale", out: cap.out }), /leased to roll/);
        await lease.release();
        assert.equal(await fx.clusterClient().exists(LEASE_KEY), 0, "released");
    } finally {
        await pool.close();
    }
});

test("the lease survives a move of its own slot: renewed through ASK while MIGRATING and MOVED after", { timeout: 30_000 }, async () => {
    const pool = new NodePool();
    const cap = capturedOutput();
    const seeds = fx.shards.map((s) => s[0].key);
    try {
        const lease = await acquireLease(pool, seeds, { command: "roll", out: cap.out });
        const slot = String(await fx.client(fx.shards[0][0]).call("CLUSTER", "KEYSLOT", LEASE_KEY));
        const masters = fx.shards.map((sh) => sh[0]);
        const holders = await Promise.all(masters.map(async (s) => Number(await fx.client(s).call("CLUSTER", "COUNTKEYSINSLOT", slot))));
        const a = masters[holders.indexOf(1)];
        const b = masters.find((s) => s !== a)!;
        const [A, B] = [fx.client(a), fx.client(b)];
        const [aId, bId] = [(await A.call("CLUSTER", "MYID")) as string, (await B.call("CLUSTER", "MYID")) as string];
        await B.call("CLUSTER", "SETSLOT", slot, "IMPORTING", aId);
        await A.call("CLUSTER", "SETSLOT", slot, "MIGRATING", bId);
        await A.call("MIGRATE", b.host, String(b.port), LEASE_KEY, "0", "5000");
        const e1 = lease.record!.expires;
        await new Promise((r) => setTimeout(r, 5));
        await lease.renew(); // on A: the key is gone, the slot MIGRATING: ASK, then ASKING + the script on B
        assert.ok(lease.record!.expires > e1, "renewed on the importing side");
        const other = new NodePool();
        await assert.rejects(acquireLease(other, seeds, { command: "scale", out: cap.out }).finally(() => other.close()), /leased to roll/, "another run still sees it");
        await B.call("CLUSTER", "SETSLOT", slot, "NODE", bId);
        await A.call("CLUSTER", "SETSLOT", slot, "NODE", bId);
        const e2 = lease.record!.expires;
        await new Promise((r) => setTimeout(r, 5));
        await lease.renew(); // MOVED to B
        assert.ok(lease.record!.expires > e2, "renewed on the new owner");
        assert.equal(lease.lost, undefined);
        assert.equal(Number(await B.call("CLUSTER", "COUNTKEYSINSLOT", slot)), 1);
        await lease.release();
        assert.equal(Number(await B.call("CLUSTER", "COUNTKEYSINSLOT", slot)), 0, "released on the new owner");
        assert.doesNotMatch(cap.stderr(), /could not renew/);
    } finally {
        await pool.close();
    }
});
