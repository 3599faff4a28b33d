import { test, after } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { ClusterFixture, loadKeys, runCli, startCluster } from "../helpers/cluster";
import { killServer, restartServer } from "../helpers/redisServers";
import { parseClusterNodes } from "../../scripts/plan/clusterNodes";

let fx: ClusterFixture | undefined;
after(async () => fx?.stop());

test("replicate reattaches a replaced node (new identity, empty) to its shard", { timeout: 60_000 }, async () => {
    fx = await startCluster({ masters: 3, replicasPerMaster: 1, acl: true });
    await loadKeys(fx.clusterClient(), 2000);
    const node = fx.shards[2][1];
    const oldId = (await fx.client(node).call("CLUSTER", "MYID")) as string;
    // The instance is replaced: same address, empty disk.
    await killServer(node);
    rmSync(join(node.dir, "nodes.conf"), { force: true });
    await restartServer(node);
    const forgot = await runCli(["forget", oldId, "--topology", fx.topologyFile]);
    assert.equal(forgot.code, 0, forgot.stderr);

    const out = await runCli(["replicate", "t-s2-r1", "2", "--topology", fx.topologyFile]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /replicates .* \(in sync, seen by every node\)/);
    const master = fx.shards[2][0];
    const masterId = (await fx.client(master).call("CLUSTER", "MYID")) as string;
    const newId = (await fx.client(node).call("CLUSTER", "MYID")) as string;
    assert.notEqual(newId, oldId);
    for (const s of fx.all) {
        const nodes = parseClusterNodes((await fx.client(s).call("CLUSTER", "NODES")) as string);
        assert.equal(nodes.find((n) => n.id === newId)?.masterId, masterId, `${s.key} sees the new replica`);
    }
    // The data keys, not DBSIZE: the run lease's key (slot 14299, this shard) is deleted on the
    // master when the command ends, and the replica may not have applied that DEL yet (CI saw 666 vs 665).
    const dataKeys = async (s: typeof node) => ((await fx!.client(s).keys("k:*")) as string[]).length;
    assert.equal(await dataKeys(node), await dataKeys(master), "synced");
    assert.equal(await dataKeys(master), 665, "shard 2's share of the 2000 keys");

    const again = await runCli(["replicate", node.key, master.key, "--topology", fx.topologyFile]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /already replicates/);
    const wrong = await runCli(["replicate", fx.shards[0][0].key, "1", "--topology", fx.topologyFile]);
    assert.equal(wrong.code, 1, "a master owning slots is refused");
    assert.match(wrong.stderr, /owning slots/);
});
