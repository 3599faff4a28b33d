import { test } from "node:test";
import assert from "node:assert/strict";
import { formationProblems } from "../../scripts/redis/health";
import { ClusterView, NodeSample } from "../../scripts/plan/clusterView";
import { parseClusterNodes } from "../../scripts/plan/clusterNodes";

const ID = (c: string) => c.repeat(40);
const nodes = [
    { id: ID("a"), port: 7000, slots: "0-8191" },
    { id: ID("b"), port: 7001, slots: "8192-16383" },
    { id: ID("c"), port: 7002, slots: "" }, // a new, slotless master
];

/** Each node's view: CLUSTER NODES listing `knows` (by port), itself always included. */
function view(knows: Record<number, number[]>): ClusterView {
    const views = new Map<string, NodeSample>();
    for (const self of nodes) {
        const text = nodes.filter((n) => n.id === self.id || knows[self.port].includes(n.port)).map((n) =>
            `${n.id} 127.0.0.1:${n.port}@${n.port + 10000} ${n.id === self.id ? "myself," : ""}master - 0 0 1 connected ${n.slots}`.trim()).join("\n");
        const parsed = parseClusterNodes(text);
        views.set(`127.0.0.1:${self.port}`, { key: `127.0.0.1:${self.port}`, reachable: true, nodes: parsed, myself: parsed.find((n) => n.myself), clusterInfo: { cluster_state: "ok" }, info: {} });
    }
    return new ClusterView(views);
}

const keys = nodes.map((n) => `127.0.0.1:${n.port}`);

test("formation: a member that has not learned a slotless new master yet is not formed (slot maps agree all the same)", () => {
    const v = view({ 7000: [7001, 7002], 7001: [7000], 7002: [7000, 7001] });
    assert.deepEqual(formationProblems(v, { keys }), ["127.0.0.1:7001 does not know 127.0.0.1:7002 yet"]);
});

test("formation: everyone knows everyone and agrees on the slots: formed", () => {
    const v = view({ 7000: [7001, 7002], 7001: [7000, 7002], 7002: [7000, 7001] });
    assert.deepEqual(formationProblems(v, { keys }), []);
});

test("formation: a node that still lists a new replica as a master is not formed (status would call it unhealthy)", () => {
    // 7002 replicates 7000; 7001 has not had a ping from 7002 since, so its line still says master.
    const line = (n: (typeof nodes)[number], self: boolean, asReplica: boolean) =>
        `${n.id} 127.0.0.1:${n.port}@${n.port + 10000} ${self ? "myself," : ""}${asReplica ? `slave ${ID("a")}` : "master -"} 0 0 1 connected ${asReplica ? "" : n.slots}`.trim();
    const sample = (self: (typeof nodes)[number], replicaSeen: boolean): NodeSample => {
        const parsed = parseClusterNodes(nodes.map((n) => line(n, n.id === self.id, n.port === 7002 && (replicaSeen || n.id === self.id))).join("\n"));
        const info: Record<string, string> = self.port === 7002 ? { master_link_status: "up" } : {};
        return { key: `127.0.0.1:${self.port}`, reachable: true, nodes: parsed, myself: parsed.find((n) => n.myself), clusterInfo: { cluster_state: "ok" }, info };
    };
    const judge = (seenBy7001: boolean) => formationProblems(new ClusterView(new Map(nodes.map((n) => [`127.0.0.1:${n.port}`, sample(n, n.port !== 7001 || seenBy7001)]))), { keys, replicas: 1 });
    assert.deepEqual(judge(false), [`127.0.0.1:7001 has not yet learned that 127.0.0.1:7002 replicates ${"a".repeat(8)}`]);
    assert.deepEqual(judge(true), []);
});
