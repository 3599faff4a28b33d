import { test } from "node:test";
import assert from "node:assert/strict";
import { evaluateStatus, StatusInput } from "../../scripts/plan/status";
import { NodeSample } from "../../scripts/plan/clusterView";
import { parseClusterNodes } from "../../scripts/plan/clusterNodes";
import { renderStatus } from "../../scripts/commands/status";
import { Topology } from "../../components/topology";

interface FakeNode {
    id: string;
    port: number;
    master?: string; // id of the master, for a replica
    slots?: string;
    extra?: string; // "[5461->-<id>]" on its own line
}

const ID = (c: string) => c.repeat(40);
const M0 = ID("a"), M1 = ID("b"), M2 = ID("c"), R0 = ID("d"), R1 = ID("e"), R2 = ID("f");
const healthyNodes: FakeNode[] = [
    { id: M0, port: 7000, slots: "0-5461" },
    { id: M1, port: 7001, slots: "5462-10922" },
    { id: M2, port: 7002, slots: "10923-16383" },
    { id: R0, port: 7003, master: M0 },
    { id: R1, port: 7004, master: M1 },
    { id: R2, port: 7005, master: M2 },
];

const topology: Topology = {
    clusterName: "t", port: 7000, tls: false,
    nodes: [
        { name: "t-s0-r0", shard: 0, az: "a", host: "127.0.0.1", port: 7000 },
        { name: "t-s1-r0", shard: 1, az: "b", host: "127.0.0.1", port: 7001 },
        { name: "t-s2-r0", shard: 2, az: "c", host: "127.0.0.1", port: 7002 },
        { name: "t-s0-r1", shard: 0, az: "b", host: "127.0.0.1", port: 7003 },
        { name: "t-s1-r1", shard: 1, az: "c", host: "127.0.0.1", port: 7004 },
        { name: "t-s2-r1", shard: 2, az: "a", host: "127.0.0.1", port: 7005 },
    ],
};

/** Builds every node's sample as it would read: its CLUSTER NODES, INFO fields. */
function samples(nodes: FakeNode[], o: { down?: string[]; flagged?: Record<string, string>; linkDown?: string[]; state?: string; offsets?: Record<string, number> } = {}): NodeSample[] {
    return nodes.filter((n) => !o.down?.includes(n.id)).map((self): NodeSample => {
        const text = nodes.map((n) => {
            const role = n.master ? "slave" : "master";
            const flags = [n.id === self.id ? "myself" : "", role, n.id !== self.id && o.flagged?.[n.id] ? o.flagged[n.id] : ""].filter(Boolean).join(",");
            return `${n.id} 127.0.0.1:${n.port}@${n.port + 10000} ${flags} ${n.master ?? "-"} 0 0 1 connected ${n.slots ?? ""} ${n.id === self.id ? self.extra ?? "" : ""}`.trim();
        }).join("\n");
        const parsed = parseClusterNodes(text);
        const off = o.offsets?.[self.id] ?? 100;
        return {
            key: `127.0.0.1:${self.port}`,
            reachable: true,
            nodes: parsed,
            myself: parsed.find((n) => n.myself),
            clusterInfo: { cluster_state: o.state ?? "ok" },
            info: {
                ...(self.master
                    ? { role: "slave", master_link_status: o.linkDown?.includes(self.id) ? "down" : "up", slave_repl_offset: String(off) }
                    : { role: "master", connected_slaves: "1", master_repl_offset: String(off) }),
                used_memory: "1048576",
            },
            dbsize: 10,
        };
    }).concat((o.down ?? []).map((id): NodeSample => ({ key: `127.0.0.1:${nodes.find((n) => n.id === id)!.port}`, reachable: false, error: "connect ECONNREFUSED", nodes: [], clusterInfo: {}, info: {} })));
}

const input = (s: NodeSample[], reports: [string, number][] = []): StatusInput => ({ topology, samples: s, failureReports: new Map(reports) });

test("status: a healthy cluster: one group per shard, lag, no problems", () => {
    const r = evaluateStatus(input(samples(healthyNodes, { offsets: { [M1]: 500, [R1]: 380 } })));
    assert.deepEqual(r.problems, []);
    assert.equal(r.healthy, true);
    assert.deepEqual(r.shards.map((g) => `${g.label}:${g.nodes.map((n) => `${n.name}/${n.role}`).join(",")}`), [
        "shard 0:t-s0-r0/master,t-s0-r1/replica", "shard 1:t-s1-r0/master,t-s1-r1/replica", "shard 2:t-s2-r0/master,t-s2-r1/replica",
    ]);
    const r1 = r.shards[1].nodes[1];
    assert.equal(r1.lagBytes, 120);
    assert.equal(r1.masterLinkStatus, "up");
    assert.equal(r.cluster.slotsAssigned, 16384);
    assert.match(renderStatus(r), /HEALTHY$/);
    assert.match(renderStatus(r), /shard 1 {2}slots 5461 \(5462-10922\)/);
});

test("status: a killed master is named: unreachable, flagged fail, its shard left without a replica after the failover", () => {
    // R0 took over M0's slots; M0 is down and flagged fail by everyone.
    const after = healthyNodes.map((n) => n.id === M0 ? { ...n, slots: undefined, master: undefined } : n.id === R0 ? { ...n, master: undefined, slots: "0-5461" } : n);
    const r = evaluateStatus(input(samples(after, { down: [M0], flagged: { [M0]: "fail" } }), [[M0, 2]]));
    assert.equal(r.healthy, false);
    assert.ok(r.problems.includes("t-s0-r0 (127.0.0.1:7000) is unreachable: connect ECONNREFUSED"), r.problems.join("\n"));
    assert.ok(r.problems.includes("t-s0-r0 (127.0.0.1:7000) is flagged fail by 5 node(s)"));
    assert.ok(r.problems.some((p) => /^shard 0 \(master t-s0-r1 \(127\.0\.0\.1:7003\)\) has no working replica \(1 declared\)/.test(p)));
    assert.deepEqual(r.cluster.failing, [{ node: "127.0.0.1:7000", flaggedBy: ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004", "127.0.0.1:7005"], flag: "fail" }]);
    const down = r.shards[0].nodes.find((n) => n.name === "t-s0-r0")!;
    assert.equal(down.failureReports, 2);
    assert.match(renderStatus(r), /master\(down\)! +t-s0-r0/);
});

test("status: open slots, a replica link down, a replica in its master's zone, strangers and stragglers", () => {
    const nodes: FakeNode[] = [
        { ...healthyNodes[0], extra: `[5461->-${M1}]` },
        { ...healthyNodes[1], extra: `[5461-<-${M0}]` },
        healthyNodes[2],
        healthyNodes[3],
        { ...healthyNodes[4], master: M1 },
        { id: ID("9"), port: 7999, master: M2 }, // not in the topology
    ];
    const topo2: Topology = { ...topology, nodes: topology.nodes.map((n) => (n.port === 7005 ? { ...n, az: "c" } : n)) };
    const s = samples(nodes, { linkDown: [R1] });
    // t-s2-r1 (7005) runs but never joined: it knows only itself.
    const alone = parseClusterNodes(`${R2} :7005@17005 myself,master - 0 0 0 connected`);
    s.push({ key: "127.0.0.1:7005", reachable: true, nodes: alone, myself: alone[0], clusterInfo: { cluster_state: "fail" }, info: { role: "master", connected_slaves: "0", master_repl_offset: "0" }, dbsize: 0 });
    const r = evaluateStatus({ topology: topo2, samples: s, failureReports: new Map() });
    assert.equal(r.healthy, false);
    assert.deepEqual(r.cluster.openSlots.map((o) => `${o.slot} ${o.state} ${o.node} ${o.peer}`), ["5461 migrating 127.0.0.1:7000 127.0.0.1:7001", "5461 importing 127.0.0.1:7001 127.0.0.1:7000"]);
    assert.ok(r.problems.some((p) => p.startsWith("2 open slot(s): 5461 migrating on t-s0-r0 (127.0.0.1:7000)")));
    assert.ok(r.problems.includes("t-s1-r1 (127.0.0.1:7004): link to its master t-s1-r0 (127.0.0.1:7001) is down"));
    assert.ok(r.problems.includes("t-s2-r1 (127.0.0.1:7005) is in the topology but not in the cluster (run create, or scale)"));
    assert.ok(r.problems.includes("127.0.0.1:7999 is in the cluster but not in the topology"));
    assert.ok(r.problems.some((p) => p.startsWith("cluster_state is not ok on t-s2-r1 (127.0.0.1:7005)")));
    assert.deepEqual(r.cluster.notInTopology, ["127.0.0.1:7999"]);
    assert.deepEqual(r.cluster.notInCluster, ["127.0.0.1:7005"]);
    assert.deepEqual(evaluateStatus(input(samples(healthyNodes))).warnings, []);
    const sameZone: Topology = { ...topology, nodes: topology.nodes.map((n) => (n.port === 7003 ? { ...n, az: "a" } : n)) };
    const w = evaluateStatus({ topology: sameZone, samples: samples(healthyNodes), failureReports: new Map() });
    assert.equal(w.healthy, true, "a zone warning alone does not make the cluster unhealthy");
    assert.deepEqual(w.cluster.replicaInMasterZone, ["t-s0-r1 (127.0.0.1:7003) in a"]);
    assert.match(w.warnings[0], /t-s0-r1 \(127\.0\.0\.1:7003\) is in its master's zone a: losing that zone loses shard 0/);
});

test("status: nodes that disagree on which master a replica follows are a problem naming who says what", () => {
    // t-s1-r1 (R1) was just re-pointed to M0 (CLUSTER REPLICATE): it and M0 know, the others still say M1.
    const moved = healthyNodes.map((n) => (n.id === R1 ? { ...n, master: M0 } : n));
    const before = samples(healthyNodes);
    const afterChange = samples(moved);
    const mixed = before.map((s) => ([R1, M0].some((id) => s.myself!.id === id) ? afterChange.find((x) => x.key === s.key)! : s));
    const r = evaluateStatus(input(mixed));
    assert.equal(r.healthy, false);
    assert.deepEqual(r.cluster.replicaMasterDisagreements, [{
        replica: "127.0.0.1:7004",
        views: [
            { master: "127.0.0.1:7001", seenBy: ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7005"] },
            { master: "127.0.0.1:7000", seenBy: ["127.0.0.1:7000", "127.0.0.1:7004"] },
        ],
    }]);
    const p = r.problems.find((x) => x.startsWith("nodes disagree on which master t-s1-r1 (127.0.0.1:7004) follows: "));
    assert.ok(p, r.problems.join("\n"));
    assert.match(p, /t-s1-r0 \(127\.0\.0\.1:7001\), t-s2-r0 \(127\.0\.0\.1:7002\), t-s0-r1 \(127\.0\.0\.1:7003\), t-s2-r1 \(127\.0\.0\.1:7005\) say it follows t-s1-r0 \(127\.0\.0\.1:7001\); t-s0-r0 \(127\.0\.0\.1:7000\), t-s1-r1 \(127\.0\.0\.1:7004\) say it follows t-s0-r0 \(127\.0\.0\.1:7000\)/);
    assert.match(p, /rerun status\)$/);

    // One node still sees a promoted replica as a replica: also a disagreement ("it is a master").
    const promoted = healthyNodes.map((n) => (n.id === R2 ? { ...n, master: undefined } : n));
    const stale = samples(promoted).map((s) => (s.myself!.id === M0 ? samples(healthyNodes).find((x) => x.key === s.key)! : s));
    const r2 = evaluateStatus(input(stale));
    assert.deepEqual(r2.cluster.replicaMasterDisagreements.map((d) => d.views.map((v) => `${v.master}:${v.seenBy.length}`)), [["(none: it is a master):5", "127.0.0.1:7002:1"]]);

    // A replica flagged failing by an observer is not compared (a node that met it only through gossip never learned its master).
    const flagged = evaluateStatus(input(samples(healthyNodes, { flagged: { [R1]: "fail?" } })));
    assert.deepEqual(flagged.cluster.replicaMasterDisagreements, []);
    assert.deepEqual(evaluateStatus(input(samples(healthyNodes))).cluster.replicaMasterDisagreements, []);
});

test("status: the engine each node runs, from server_name/valkey_version; mixed engines are a warning", () => {
    const valkey = { name: "valkey" as const, version: "8.0.2", compatVersion: "7.2.4" };
    const all = samples(healthyNodes).map((s) => ({ ...s, engine: valkey }));
    const r = evaluateStatus(input(all));
    assert.deepEqual(r.cluster.engines, ["valkey 8.0.2"]);
    assert.equal(r.shards[0].nodes[0].engine, "valkey 8.0.2");
    assert.match(renderStatus(r), /^cluster t \(valkey 8\.0\.2\): 6\/6 nodes reachable/m);
    assert.deepEqual(r.warnings, []);
    const mixed = evaluateStatus(input(all.map((s, i) => (i === 0 ? { ...s, engine: { name: "redis" as const, version: "6.2.14", compatVersion: "6.2.14" } } : s))));
    assert.deepEqual(mixed.cluster.engines, ["redis 6.2.14", "valkey 8.0.2"]);
    assert.match(mixed.warnings.join("\n"), /nodes run different engines or releases .*redis 6\.2\.14 on t-s0-r0/);
    assert.equal(mixed.healthy, true);
});

test("status: a node left at the join's 500 ms cluster-node-timeout is a problem naming it; one that refuses CONFIG is not judged", () => {
    const configured = samples(healthyNodes).map((s) => ({ ...s, config: { "cluster-node-timeout": "5000" } }));
    assert.equal(evaluateStatus(input(configured)).healthy, true);
    assert.deepEqual(evaluateStatus(input(configured)).cluster.joinTimeoutLeft, []);
    const left = configured.map((s) => (s.key === "127.0.0.1:7001" ? { ...s, config: { "cluster-node-timeout": "500" } } : s));
    const r = evaluateStatus(input(left));
    assert.equal(r.healthy, false);
    assert.deepEqual(r.cluster.joinTimeoutLeft, ["127.0.0.1:7001"]);
    assert.deepEqual(r.problems, ["t-s1-r0 (127.0.0.1:7001) runs cluster-node-timeout 500 ms, the value a join sets for a moment (a create or scale was stopped in its join window): it can start failovers on a one-second stall. Rerun that command, or `reconfigure`, to restore the configured value"]);
    const refused = configured.map((s) => (s.key === "127.0.0.1:7001" ? { ...s, config: {} } : s));
    assert.equal(evaluateStatus(input(refused)).healthy, true);
});
