/**
 * Issue 9, defects 3, 4 and 6: crashes and silent acceptances that must be refusals,
 * each compared before/after (CLUSTER NODES of every node).
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ClusterFixture, runCli, startCluster } from "../helpers/cluster";
import type { Topology } from "../../components/topology";

let fx: ClusterFixture;
let other: ClusterFixture;
before(async () => {
    [fx, other] = await Promise.all([startCluster({ masters: 3, spare: 1 }), startCluster({ masters: 3, clusterName: "other" })]);
});
after(async () => {
    await Promise.all([fx?.stop(), other?.stop()]);
});

const snapshot = async (f: ClusterFixture) => Promise.all(f.all.map(async (s) => {
    const text = (await f.client(s).call("CLUSTER", "NODES")) as string;
    // id, address, flags minus transient failure marks, master, epoch, slots
    return text.split("\n").filter(Boolean).map((l) => {
        const p = l.split(" ");
        return [p[0], p[1], p[2].replace(/,?fail\??/, ""), p[3], p[6], ...p.slice(8)].join(" ");
    }).sort().join("\n");
}));

test("a wrong --nat-map is refused: the node reached reports another address", { timeout: 30_000 }, async () => {
    const [a, b] = [fx.shards[0][0], fx.shards[1][0]];
    for (const map of [`${a.key}=${b.key}`, `${a.key}=${b.key},${b.key}=${a.key}`]) {
        const r = await runCli(["status", "--topology", fx.topologyFile, "--nat-map", map]);
        assert.equal(r.code, 1, r.stderr);
        // With the two swapped, whichever node is reached first is named.
        const named = (x: string, y: string) => `${x} is not the node that answered at ${y}: it reports itself as ${y} .*--nat-map sends ${x} to ${y}, check that mapping`;
        assert.match(r.stderr, new RegExp(`${named(a.key, b.key)}|${named(b.key, a.key)}`));
        assert.doesNotMatch(r.stdout + r.stderr, /HEALTHY/);
    }
    const before = await snapshot(fx);
    const r = await runCli(["rebalance", "--topology", fx.topologyFile, "--nat-map", `${a.key}=${b.key},${b.key}=${a.key}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /is not the node that answered/);
    assert.deepEqual(await snapshot(fx), before);
    // The right map (here: the identity) is accepted.
    const ok = await runCli(["status", "--topology", fx.topologyFile, "--nat-map", `${a.key}=${a.key}`]);
    assert.equal(ok.code, 0, ok.stderr);
});

test("scale refuses another cluster's masters declared as a new shard, as create does", { timeout: 30_000 }, async () => {
    const topo = JSON.parse(readFileSync(fx.topologyFile, "utf8")) as Topology;
    const file = join(fx.dir, "with-other.json");
    writeFileSync(file, JSON.stringify({ ...topo, nodes: [...topo.nodes, fx.nodeOf(other.shards[0][0], 3, 0), fx.nodeOf(other.shards[1][0], 3, 1)] }));
    const [b1, b2] = [await snapshot(fx), await snapshot(other)];
    for (const args of [["scale", "--yes"], ["scale", "--dry-run"]]) {
        const r = await runCli([...args, "--topology", file]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /belong to 2 different clusters .*nothing was changed/);
        assert.doesNotMatch(r.stderr, /internal error|drain/);
    }
    assert.deepEqual(await snapshot(fx), b1);
    assert.deepEqual(await snapshot(other), b2);
});

test("duplicate node names and scale --shards 2 are caught before anything runs", { timeout: 30_000 }, async () => {
    const topo = JSON.parse(readFileSync(fx.topologyFile, "utf8")) as Topology;
    const file = join(fx.dir, "dup.json");
    writeFileSync(file, JSON.stringify({ ...topo, nodes: topo.nodes.map((n, i) => (i === 1 ? { ...n, name: topo.nodes[0].name } : n)) }));
    const dup = await runCli(["status", "--topology", file]);
    assert.equal(dup.code, 2, dup.stderr);
    assert.match(dup.stderr, new RegExp(`node name "${topo.nodes[0].name}" is used by nodes\\[0\\] and nodes\\[1\\]`));

    const two = await runCli(["scale", "--topology", fx.topologyFile, "--shards", "2", "--dry-run"]);
    assert.equal(two.code, 0, two.stderr);
    assert.match(two.stderr, /warning: only 2 shard\(s\) declared: Redis Cluster needs a majority of at least 3 masters/);
});

test("the open-slot repair refuses, naming the node, when the importing node is dead", { timeout: 40_000 }, async () => {
    // A scale-out cut short: the spare joined (no slots), slot 5 MIGRATING to it; then it died.
    const A = fx.client(fx.shards[0][0]);
    const spare = fx.spare[0];
    const S = fx.client(spare);
    await A.call("CLUSTER", "MEET", spare.host, String(spare.port));
    const sId = (await S.call("CLUSTER", "MYID")) as string;
    const aId = (await A.call("CLUSTER", "MYID")) as string;
    const deadline = Date.now() + 10_000;
    const know = async () => ((await A.call("CLUSTER", "NODES")) as string).includes(`${sId} ${spare.key}`) && ((await S.call("CLUSTER", "NODES")) as string).includes(aId);
    while (!(await know()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await S.call("CLUSTER", "SETSLOT", "5", "IMPORTING", aId);
    await A.call("CLUSTER", "SETSLOT", "5", "MIGRATING", sId);
    spare.proc.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    fx.writeTopology([...fx.shards, [spare]]);
    // Each live node's own line (slots, open slots): gossip about the dead node may still spread.
    const own = async () => Promise.all(fx.all.filter((s) => s !== spare).map(async (s) => ((await fx.client(s).call("CLUSTER", "NODES")) as string).split("\n").find((l) => l.includes("myself"))!.split(" ").filter((_, i) => i !== 4 && i !== 5).join(" ")));
    const before = await own();
    const r = await runCli(["rebalance", "--topology", fx.topologyFile]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`\\(slot 5\\)[\\s\\S]*the target ${sId} \\(${spare.key}\\) is not reachable.*Bring that node back`));
    assert.doesNotMatch(r.stderr, /internal error/);
    assert.deepEqual(await own(), before, "nothing changed");

    // The repair for a node gone for good is not blocked by the slot it left open.
    fx.writeTopology(fx.shards);
    const forgot = await runCli(["forget", sId, "--topology", fx.topologyFile]);
    assert.equal(forgot.code, 0, forgot.stderr);
    assert.match(forgot.stderr, /open slots left as they are for now/);
    const after = await runCli(["rebalance", "--topology", fx.topologyFile]);
    assert.equal(after.code, 0, after.stderr);
    const me = ((await A.call("CLUSTER", "NODES")) as string).split("\n").find((l) => l.includes("myself"))!;
    assert.doesNotMatch(me, /\[/, "no open slot left on the source");
});
