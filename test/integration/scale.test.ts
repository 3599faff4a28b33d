import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ClusterFixture, clusterCheck, loadKeys, missingKeys, retiredState, runCli, startCluster, startTraffic } from "../helpers/cluster";
import { parseClusterNodes } from "../../scripts/plan/clusterNodes";
import { countSlots } from "../../scripts/plan/clusterNodes";

let fx: ClusterFixture | undefined;
after(async () => fx?.stop());

async function nodesOf(fx: ClusterFixture, s: { host: string; port: number; key: string }) {
    return parseClusterNodes((await fx.client(fx.all.find((x) => x.key === s.key)!).call("CLUSTER", "NODES")) as string);
}

test("scale 3 → 4 → 3 shards with data and a client writing and reading throughout", { timeout: 120_000 }, async () => {
    // ACLs on as in production: MIGRATE must authenticate (AUTH2) to the target.
    fx = await startCluster({ masters: 3, replicasPerMaster: 1, spare: 2, acl: true });
    const data = fx.clusterClient();
    const keys = await loadKeys(data, 20000);
    const want = new Map(keys.map((k) => [k, `v-${k}`]));
    const traffic = startTraffic(fx.clusterClient());
    try {
        // --- scale out: the fourth shard (master + replica) is declared
        const [newMaster, newReplica] = fx.spare;
        fx.writeTopology([...fx.shards, [newMaster, newReplica]]);

        const dry = await runCli(["scale", "--topology", fx.topologyFile, "--dry-run", "--json"]);
        assert.equal(dry.code, 0, dry.stderr);
        const planEvent = dry.stdout.split("\n").filter((l) => l.startsWith("{\"event\"")).map((l) => JSON.parse(l)).find((e) => e.event === "plan" && e.op === "scale");
        assert.ok(planEvent, dry.stdout);
        assert.equal(planEvent.slots, 4096, "a quarter of the slots would move to the new master");
        assert.ok(planEvent.keys > 4000, `key count from COUNTKEYSINSLOT (a quarter of 20000 preloaded keys plus the client's): ${planEvent.keys}`);
        assert.equal((await nodesOf(fx, newMaster)).length, 1, "dry run changed nothing: the new node knows only itself");

        const out = await runCli(["scale", "--topology", fx.topologyFile, "--yes"]);
        assert.equal(out.code, 0, out.stderr);
        assert.match(out.stdout, /2 node\(s\) joined, 0 removed, 4096 slot\(s\)/);
        const after4 = await nodesOf(fx, fx.shards[0][0]);
        const masters4 = after4.filter((n) => n.role === "master");
        assert.equal(masters4.length, 4);
        for (const m of masters4) assert.equal(countSlots(m.slots), 4096, `${m.key} holds an even share`);
        const nm = after4.find((n) => n.key === newMaster.key)!;
        assert.equal(after4.find((n) => n.key === newReplica.key)?.masterId, nm.id, "the new replica follows the new master");
        assert.deepEqual((await clusterCheck(fx.shards[0][0], fx.auth)).problems, []);

        // --- scale in: shard 1 (an original one, with its replica) is no longer declared
        const removed = fx.shards[1];
        const removedIds = (await Promise.all(removed.map(async (s) => (await fx!.client(s).call("CLUSTER", "MYID")) as string)));
        fx.writeTopology([fx.shards[0], fx.shards[2], [newMaster, newReplica]], undefined, [0, 2, 3]);
        const refused = await runCli(["scale", "--topology", fx.topologyFile]);
        assert.equal(refused.code, 1, "draining needs --yes without a terminal");
        assert.match(refused.stderr, /needs confirmation/);

        const inn = await runCli(["scale", "--topology", fx.topologyFile, "--yes"]);
        assert.equal(inn.code, 0, inn.stderr);
        assert.match(inn.stdout, /0 node\(s\) joined, 2 removed/);
        assert.match(inn.stdout, /safe to run the smaller `pulumi up`/);
        for (const s of [fx.shards[0][0], fx.shards[2][0], newMaster, newReplica, fx.shards[0][1]]) {
            const known = await nodesOf(fx, s);
            assert.ok(!known.some((n) => removedIds.includes(n.id)), `${s.key} forgot the removed nodes`);
            assert.equal(known.length, 6);
        }
        const masters3 = (await nodesOf(fx, fx.shards[0][0])).filter((n) => n.role === "master");
        assert.deepEqual(masters3.map((m) => countSlots(m.slots)).sort(), [5461, 5461, 5462]);
        assert.match(inn.stderr, /fenced and reset 2 leaving node\(s\)/);
        for (const s of removed) assert.deepEqual(await retiredState(s, fx.auth), { knownNodes: 1, fenced: true }, `${s.key} was reset (knows only itself) and fenced`);
        assert.deepEqual((await clusterCheck(fx.shards[0][0], fx.auth)).problems, []);
    } finally {
        await traffic.stop();
    }
    assert.deepEqual(traffic.errors, [], "the client saw no error it could not retry");
    assert.ok(traffic.acked.size > 100, `the client kept writing (${traffic.acked.size} writes acknowledged)`);
    assert.deepEqual(await missingKeys(data, traffic.acked), [], "every acknowledged write is readable");
    assert.deepEqual(await missingKeys(data, want), [], "every preloaded key is there");
});
