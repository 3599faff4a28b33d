import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ClusterFixture, runCli, startCluster } from "../helpers/cluster";
import { killServer } from "../helpers/redisServers";
import { parseClusterNodes } from "../../scripts/plan/clusterNodes";

let fx: ClusterFixture | undefined;
after(async () => fx?.stop());

test("forget refuses a live member and removes a killed node from every table", { timeout: 60_000 }, async () => {
    fx = await startCluster({ masters: 3, replicasPerMaster: 1 });
    const victim = fx.shards[0][1];
    const victimId = (await fx.client(victim).call("CLUSTER", "MYID")) as string;

    const live = await runCli(["forget", "t-s0-r1", "--topology", fx.topologyFile]);
    assert.equal(live.code, 1);
    assert.match(live.stderr, /is alive and still a member of the cluster; nothing was changed/);

    const liveMaster = await runCli(["forget", fx.shards[1][0].key, "--topology", fx.topologyFile]);
    assert.equal(liveMaster.code, 1);

    const unknown = await runCli(["forget", "deadbeef00", "--topology", fx.topologyFile]);
    assert.equal(unknown.code, 2, "an unknown node is a usage error");

    await killServer(victim);
    const out = await runCli(["forget", victimId, "--topology", fx.topologyFile, "--json"]);
    assert.equal(out.code, 0, out.stderr);
    // NDJSON: the result is the last line.
    const doc = JSON.parse(out.stdout.trim().split("\n").at(-1)!);
    assert.equal(doc.id, victimId);
    assert.equal(doc.nodes, 5);
    assert.ok(doc.ms < 5000, `fast enough for the 60 s ban window (${doc.ms} ms)`);
    for (const s of fx.all.filter((x) => x !== victim)) {
        const nodes = parseClusterNodes((await fx.client(s).call("CLUSTER", "NODES")) as string);
        assert.ok(!nodes.some((n) => n.id === victimId), `${s.key} forgot it`);
    }
});
