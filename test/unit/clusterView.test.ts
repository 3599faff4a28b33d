import { test } from "node:test";
import assert from "node:assert/strict";
import { parseClusterNodes } from "../../scripts/plan/clusterNodes";
import { ClusterView, NodeSample, resolveNodeArg } from "../../scripts/plan/clusterView";
import { Topology } from "../../components/topology";

const ID = (c: string) => c.repeat(40);
const line = (id: string, port: number, flags: string, slots = "") => `${id} 127.0.0.1:${port}@${port + 10000} ${flags} - 0 0 1 connected ${slots}`.trim();

/** A sample of node `port` whose CLUSTER NODES is `lines` (its own line flagged myself). */
function sample(port: number, lines: string[]): NodeSample {
    const nodes = parseClusterNodes(lines.join("\n"));
    return { key: `127.0.0.1:${port}`, reachable: true, nodes, myself: nodes.find((n) => n.myself), clusterInfo: { cluster_state: "ok" }, info: {} };
}

const a = (me: boolean, slots = "0-8191") => line(ID("a"), 7000, me ? "myself,master" : "master", slots);
const b = (me: boolean, slots = "8192-16383") => line(ID("b"), 7001, me ? "myself,master" : "master", slots);

test("ClusterView: a fresh node (knows nobody, owns nothing) is no member; its empty slot map is not a disagreement among members", () => {
    const fresh = sample(7002, [line(ID("c"), 7002, "myself,master")]);
    const v = ClusterView.of([sample(7000, [a(true), b(false)]), sample(7001, [a(false), b(true)]), fresh]);
    assert.deepEqual(v.members().map((s) => s.key), ["127.0.0.1:7000", "127.0.0.1:7001"]);
    assert.equal(v.isMember("127.0.0.1:7002"), false);
    assert.equal(v.isMember("127.0.0.1:7000", ID("a")), true);
    assert.equal(v.isMember("127.0.0.1:7000", ID("b")), false);
    assert.deepEqual(v.disagreeingSlots(v.members()), []);
    assert.equal(v.disagreeingSlots().length, 16384, "every reachable node: the fresh one owns nothing");
    assert.equal(v.slotMapsAgree(), false);
    assert.deepEqual(v.unassignedSlots(v.members()), []);
});

test("ClusterView: disagreement and open slots, skipping what is asked", () => {
    const stale = sample(7001, [a(false, "0-8190"), b(true, "8191-16383")]);
    const v = ClusterView.of([sample(7000, [a(true), b(false)]), stale]);
    assert.deepEqual(v.disagreeingSlots(), [8191]);
    assert.deepEqual(v.disagreeingSlots(undefined, new Set([8191])), []);
    const open = ClusterView.of([sample(7000, [a(true, `0-8191 [8191->-${ID("b")}]`), b(false)])]);
    assert.deepEqual(open.openSlots(), [{ slot: 8191, node: "127.0.0.1:7000", nodeId: ID("a"), state: "migrating", peerId: ID("b") }]);
});

test("resolveNodeArg: topology name, host:port, id prefix; nothing for an unknown word", () => {
    const topology = { clusterName: "t", nodes: [{ name: "t-s0-r0", host: "127.0.0.1", port: 7000, shard: 0, az: "a", weight: 1 }, { name: "t-s1-r0", host: "127.0.0.1", port: 7009, shard: 1, az: "b", weight: 1 }] } as unknown as Topology;
    const v = ClusterView.of([sample(7000, [a(true), b(false)])]);
    assert.equal(resolveNodeArg("t-s0-r0", v, topology)?.known?.id, ID("a"));
    assert.deepEqual(resolveNodeArg("t-s1-r0", v, topology), { key: "127.0.0.1:7009" }, "declared, not known to the cluster yet");
    assert.equal(resolveNodeArg("127.0.0.1:7001", v, topology)?.known?.id, ID("b"));
    assert.equal(resolveNodeArg("bbbbbb", v, topology)?.key, "127.0.0.1:7001");
    assert.deepEqual(resolveNodeArg("10.0.0.9:6379", v, topology), { key: "10.0.0.9:6379" });
    assert.equal(resolveNodeArg("nonsense", v, topology), undefined);
});
