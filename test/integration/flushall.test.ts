import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ClusterFixture, loadKeys, runCli, startCluster } from "../helpers/cluster";

let fx: ClusterFixture | undefined;
after(async () => fx?.stop());

test("flushall is refused without the cluster name and empties every master with it", { timeout: 60_000 }, async () => {
    fx = await startCluster({ masters: 3, clusterName: "orders-dev" });
    const data = fx.clusterClient();
    await loadKeys(data, 1000);
    const dbsize = async () => (await Promise.all(fx!.shards.map(async (sh) => Number(await fx!.client(sh[0]).dbsize())))).reduce((a, b) => a + b, 0);

    // A slot left open by an interrupted move: a refused flushall must not repair it either.
    const aId = (await fx.client(fx.shards[0][0]).call("CLUSTER", "MYID")) as string;
    const B = fx.client(fx.shards[1][0]);
    await B.call("CLUSTER", "SETSLOT", "100", "IMPORTING", aId);
    const importing = async () => ((await B.call("CLUSTER", "NODES")) as string).split("\n").find((l) => l.includes("myself"))!.includes(`[100-<-${aId}]`);
    assert.ok(await importing());

    const none = await runCli(["flushall", "--topology", fx.topologyFile]);
    assert.equal(none.code, 1, "no terminal and no --confirm: refused");
    assert.match(none.stderr, /confirm with --confirm orders-dev/);
    const wrong = await runCli(["flushall", "--topology", fx.topologyFile, "--confirm", "orders-prod"]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /does not match the cluster name "orders-dev"; nothing was deleted/);
    assert.equal(await dbsize(), 1000, "nothing deleted by the refusals");
    assert.ok(await importing(), "the open slot is left as it was by the refusals");

    const ok = await runCli(["flushall", "--topology", fx.topologyFile, "--confirm", "orders-dev"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /1000 key\(s\) deleted on 3 master\(s\)/);
    assert.equal(await dbsize(), 0);
});
