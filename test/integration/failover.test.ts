import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ClusterFixture, loadKeys, missingKeys, runCli, startCluster } from "../helpers/cluster";
import { killServer } from "../helpers/redisServers";
import { parseClusterNodes } from "../../scripts/plan/clusterNodes";

let fx: ClusterFixture | undefined;
after(async () => fx?.stop());

async function rolesEverywhere(f: ClusterFixture, keys = f.all.map((s) => s.key)) {
    return Promise.all(f.all.filter((s) => keys.includes(s.key)).map(async (s) => parseClusterNodes((await f.client(s).call("CLUSTER", "NODES")) as string)));
}

test("failover: a shard, refusals, and a zone evacuation that names the shard that cannot move", { timeout: 90_000 }, async () => {
    // zones by (shard + replica) % 3: s0 a/b, s1 b/c, s2 c/a
    fx = await startCluster({ masters: 3, replicasPerMaster: 1 });
    const data = fx.clusterClient();
    const keys = await loadKeys(data, 3000);
    const want = new Map(keys.map((k) => [k, `v-${k}`]));
    const [m1, r1] = fx.shards[1];
    const r1Id = (await fx.client(r1).call("CLUSTER", "MYID")) as string;

    const forced = await runCli(["failover", "--topology", fx.topologyFile, "--shard", "1", "--force"]);
    assert.equal(forced.code, 1);
    assert.match(forced.stderr, /is alive; a forced promotion could lose writes/);

    const out = await runCli(["failover", "--topology", fx.topologyFile, "--shard", "1"]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, new RegExp(`shard 1: t-s1-r1 \\(${r1.key}\\) is the master, seen by every node`));
    for (const view of await rolesEverywhere(fx)) {
        assert.equal(view.find((n) => n.id === r1Id)?.role, "master", "every node sees the promotion");
        assert.equal(view.find((n) => n.key === m1.key)?.masterId, r1Id, "the old master follows the new one");
    }
    assert.deepEqual(await missingKeys(data, want), []);

    // Zone local-c holds shard 1's new master (its replica, the old master, is in local-b) and shard 2's
    // master, whose only replica (local-a) is down: shard 1 moves, shard 2 cannot.
    await killServer(fx.shards[2][1]);
    const zone = await runCli(["failover", "--topology", fx.topologyFile, "--zone", "local-c"]);
    assert.equal(zone.code, 1, "not every master could leave the zone");
    assert.match(zone.stdout, /zone local-c: 1 master\(s\) moved out, 1 shard\(s\) could not move:/);
    assert.match(zone.stdout, /shard 2: no healthy replica outside local-c: t-s2-r1 .* is down/);
    const alive = fx.all.filter((s) => s !== fx!.shards[2][1]).map((s) => s.key);
    for (const view of await rolesEverywhere(fx, alive)) {
        assert.equal(view.find((n) => n.key === m1.key)?.role, "master", "shard 1 is back on its local-b node");
    }
    assert.deepEqual(await missingKeys(data, want), []);
});
