/**
 * The restore follows MOVED and ASK instead of trusting the slot map it read at the start:
 * a backup restored with a stale view into a 2-master cluster where, after the view was read,
 * one slot was handed to the other master (MOVED) and another is being migrated (ASK: the
 * keys must land on the importing master, sent with ASKING). Every key arrives, with its
 * value and TTL, and the counts match the manifest.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClusterFixture, runCli, startCluster } from "../helpers/cluster";
import { capturedOutput } from "../helpers/output";
import { NodePool } from "../../scripts/redis/pool";
import { ClusterView } from "../../scripts/redis/clusterView";
import { keySlot } from "../../scripts/redis/keySlot";
import { openStore } from "../../scripts/backup/store";
import { loadBackup } from "../../scripts/backup/catalog";
import { ownerKeys, restoreBackup } from "../../scripts/backup/restore";

let src: ClusterFixture, dst: ClusterFixture;
let tmp: string;
const PER_TAG = 300;

before(async () => {
    tmp = mkdtempSync(join(tmpdir(), "restore-redirects-"));
    [src, dst] = await Promise.all([startCluster({ masters: 2, clusterName: "rdsrc" }), startCluster({ masters: 2, clusterName: "rddst" })]);
    const c = src.clusterClient();
    for (const tag of ["moved", "asked", "plain"]) {
        await Promise.all(Array.from({ length: PER_TAG }, (_, i) => c.set(`{${tag}}:${i}`, `value-${tag}-${i}`, "PX", 3_600_000)));
    }
    const r = await runCli(["backup", "--topology", src.topologyFile, "--to", join(tmp, "store"), "-q"]);
    assert.equal(r.code, 0, r.stderr);
});

after(async () => {
    await Promise.all([src?.stop(), dst?.stop()]);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test("restore: a slot moved after the view was read (MOVED) and a slot mid-migration (ASK) both end on the right master", async () => {
    const [a, b] = dst.shards.map((sh) => sh[0]);
    const ca = dst.client(a);
    const cb = dst.client(b);
    const pool = new NodePool();
    try {
        const view = await ClusterView.read(pool, [a.key, b.key]);
        const idOf = async (c: typeof ca) => String(await c.call("CLUSTER", "MYID"));
        const [idA, idB] = await Promise.all([idOf(ca), idOf(cb)]);
        const owners = ownerKeys(view);
        // Both tagged slots must be A's in the view for the redirects to happen: hand them to A first if needed.
        const moved = keySlot(Buffer.from("{moved}"));
        const asked = keySlot(Buffer.from("{asked}"));
        for (const slot of [moved, asked]) assert.equal(owners[slot], a.key, `slot ${slot} is A's at start (test setup)`);

        // MOVED: the slot (empty) is B's now; A answers MOVED.
        await cb.call("CLUSTER", "SETSLOT", String(moved), "NODE", idB);
        await ca.call("CLUSTER", "SETSLOT", String(moved), "NODE", idB);
        // ASK: A migrates the slot to B; a key A does not hold is answered with ASK.
        await cb.call("CLUSTER", "SETSLOT", String(asked), "IMPORTING", idA);
        await ca.call("CLUSTER", "SETSLOT", String(asked), "MIGRATING", idB);

        const store = openStore(join(tmp, "store"));
        const loaded = await loadBackup(store, { clusterName: "rdsrc" });
        const { out } = capturedOutput();
        const r = await restoreBackup(pool, view, store, loaded, { replace: false, out, batch: 64 });
        assert.deepEqual(r.problems, []);
        assert.ok(r.ok);
        assert.equal(r.shards.reduce((n, sh) => n + sh.restored, 0), 3 * PER_TAG);

        assert.equal(Number(await cb.call("CLUSTER", "COUNTKEYSINSLOT", String(moved))), PER_TAG, "MOVED keys are on B");
        assert.equal(Number(await cb.call("CLUSTER", "COUNTKEYSINSLOT", String(asked))), PER_TAG, "ASK keys are on the importing B");
        assert.equal(Number(await ca.call("CLUSTER", "COUNTKEYSINSLOT", String(asked))), 0, "none of them stayed on the migrating A");
        const total = Number(await ca.dbsize()) + Number(await cb.dbsize());
        assert.equal(total, 3 * PER_TAG);
        // Value and TTL carried through the redirects (the migration finished first, so B serves the slot).
        await cb.call("CLUSTER", "SETSLOT", String(asked), "NODE", idB);
        await ca.call("CLUSTER", "SETSLOT", String(asked), "NODE", idB);
        assert.equal(await cb.get("{asked}:7"), "value-asked-7");
        const ttl = await cb.pttl("{asked}:7");
        assert.ok(ttl > 3_500_000, `TTL kept (${ttl})`);
        assert.equal(await cb.get("{moved}:9"), "value-moved-9");
    } finally {
        await pool.close();
    }
});
