import { test } from "node:test";
import assert from "node:assert/strict";
import { declaredTopology } from "../../scripts/commands/scale";
import { Topology, nodeName } from "../../components/topology";

const topo = (shards: number, replicas: number): Topology => ({
    clusterName: "c", port: 6379, tls: false,
    nodes: Array.from({ length: shards }, (_, s) => Array.from({ length: replicas + 1 }, (_, r) => ({ name: nodeName("c", s, r), shard: s, az: `z${(s + r) % 3}`, host: `10.0.0.${s * 10 + r}`, port: 6379 }))).flat(),
});

test("declaredTopology keeps shards 0..n-1 and replicas r1..rn", () => {
    const t = topo(4, 2);
    assert.equal(declaredTopology(t).nodes.length, 12, "no cut: the whole topology");
    assert.deepEqual([...new Set(declaredTopology(t, 3).nodes.map((n) => n.shard))], [0, 1, 2]);
    assert.equal(declaredTopology(t, 3, 1).nodes.length, 6);
    assert.ok(declaredTopology(t, undefined, 0).nodes.every((n) => n.name.endsWith("-r0")));
});

test("declaring more shards than the topology has nodes for asks for pulumi up first", () => {
    assert.throws(() => declaredTopology(topo(3, 1), 4), /no node for shard\(s\) 3: to scale out, run `pulumi up` first/);
});
