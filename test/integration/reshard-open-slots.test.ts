import { test, after } from "node:test";
import assert from "node:assert/strict";
import Redis from "ioredis";
import { ClusterFixture, runCli, startCluster } from "../helpers/cluster";
import { parseClusterNodes, slotOwners } from "../../scripts/plan/clusterNodes";

let fx: ClusterFixture | undefined;
after(async () => fx?.stop());

/** A hash tag whose slot lies in [lo, hi] and is not in `taken`. */
async function tagIn(c: Redis, lo: number, hi: number, taken: Set<number>): Promise<{ tag: string; slot: number }> {
    for (let i = 0; ; i++) {
        const slot = Number(await c.call("CLUSTER", "KEYSLOT", `t${i}`));
        if (slot >= lo && slot <= hi && !taken.has(slot)) {
            taken.add(slot);
            return { tag: `{t${i}}`, slot };
        }
    }
}

test("open slots left by an interrupted move are finished, rolled back or closed before anything else", { timeout: 60_000 }, async () => {
    fx = await startCluster({ masters: 3 });
    const A = fx.client(fx.shards[0][0]);
    const B = fx.client(fx.shards[1][0]);
    const aId = (await A.call("CLUSTER", "MYID")) as string;
    const bId = (await B.call("CLUSTER", "MYID")) as string;
    const b = fx.shards[1][0];
    const taken = new Set<number>();
    const open = async (slot: number) => {
        await B.call("CLUSTER", "SETSLOT", String(slot), "IMPORTING", aId);
        await A.call("CLUSTER", "SETSLOT", String(slot), "MIGRATING", bId);
    };
    const migrate = (keys: string[], ...flags: string[]) => A.call("MIGRATE", b.host, String(b.port), "", "0", "5000", ...flags, "KEYS", ...keys);

    // finish: some keys already on B
    const fin = await tagIn(A, 0, 5460, taken);
    for (const k of ["1", "2", "3"]) await A.set(`${fin.tag}${k}`, `fin-${k}`);
    await open(fin.slot);
    await migrate([`${fin.tag}1`]);

    // roll back: nothing on B yet
    const back = await tagIn(A, 0, 5460, taken);
    await A.set(`${back.tag}x`, "back");
    await open(back.slot);

    // close: B was told it owns the slot, A was not
    const close = await tagIn(A, 0, 5460, taken);
    await A.set(`${close.tag}x`, "close");
    await open(close.slot);
    await migrate([`${close.tag}x`]);
    await B.call("CLUSTER", "SETSLOT", String(close.slot), "NODE", bId);

    // BUSYKEY: an interrupted MIGRATE left a copy on B (COPY keeps it on A), then a client updated A's copy
    const busy = await tagIn(A, 0, 5460, taken);
    await A.set(`${busy.tag}k`, "old");
    await A.set(`${busy.tag}other`, "other");
    await open(busy.slot);
    await migrate([`${busy.tag}k`], "COPY");
    await A.set(`${busy.tag}k`, "new"); // A still has the key, so A serves it
    await migrate([`${busy.tag}other`]);

    // importing only, nothing on B: B's flag is cleared
    const imp = await tagIn(A, 0, 5460, taken);
    await B.call("CLUSTER", "SETSLOT", String(imp.slot), "IMPORTING", aId);

    const r = await runCli(["rebalance", "--topology", fx.topologyFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /found 5 open slot\(s\)/);
    assert.match(r.stderr, /open slots: 2 finished, 2 rolled back, 1 closed/);
    assert.match(r.stderr, new RegExp(`slot ${busy.slot}: keys already on .* are replaced`));

    const views = await Promise.all(fx.all.map(async (s) => parseClusterNodes((await fx!.client(s).call("CLUSTER", "NODES")) as string)));
    for (const v of views) {
        const me = v.find((n) => n.myself)!;
        assert.equal(me.migrating.size + me.importing.size, 0, `${me.key}: no open slot left`);
        const owners = slotOwners(v);
        assert.equal(owners[fin.slot], bId, "finished slot owned by B");
        assert.equal(owners[busy.slot], bId, "slot with a leftover key finished on B");
        assert.equal(owners[close.slot], bId, "closed slot owned by B everywhere");
        assert.equal(owners[back.slot], aId, "rolled-back slot stays with A");
        assert.equal(owners[imp.slot], aId);
    }
    const data = fx.clusterClient();
    assert.deepEqual(await Promise.all(["1", "2", "3"].map((k) => data.get(`${fin.tag}${k}`))), ["fin-1", "fin-2", "fin-3"]);
    assert.equal(await data.get(`${back.tag}x`), "back");
    assert.equal(await data.get(`${close.tag}x`), "close");
    assert.equal(await data.get(`${busy.tag}k`), "new", "the source's copy, the one clients were served, wins");
    assert.equal(await data.get(`${busy.tag}other`), "other");
    assert.equal(Number(await A.call("CLUSTER", "COUNTKEYSINSLOT", String(busy.slot))), 0);
});

test("a dry run reports open slots and leaves them alone", { timeout: 30_000 }, async () => {
    assert.ok(fx);
    const A = fx.client(fx.shards[0][0]);
    const B = fx.client(fx.shards[1][0]);
    const aId = (await A.call("CLUSTER", "MYID")) as string;
    const slot = 100;
    await B.call("CLUSTER", "SETSLOT", String(slot), "IMPORTING", aId);
    const r = await runCli(["rebalance", "--topology", fx.topologyFile, "--dry-run"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /1 slot\(s\) are open/);
    const me = parseClusterNodes((await B.call("CLUSTER", "NODES")) as string).find((n) => n.myself)!;
    assert.equal(me.importing.get(slot), aId, "still open after the dry run");
    await B.call("CLUSTER", "SETSLOT", String(slot), "STABLE");
});
