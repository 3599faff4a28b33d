import { test } from "node:test";
import assert from "node:assert/strict";
import { planTopology, splitSlots, PlanError, TopologyPlan } from "../../scripts/plan/topology";
import { Topology, TopologyNode, nodeName } from "../../components/topology";
import { zoneOf } from "../../components/plan/placement";
import { countSlots, SLOT_COUNT } from "../../scripts/plan/clusterNodes";
import { nodeKey } from "../../scripts/plan/node";

/** A topology laid out by the stack's own rule: node (s, r) in zone (s + r) % zones. */
function topo(shards: number, replicas: number, zones: number): Topology {
    const nodes: TopologyNode[] = [];
    let port = 7000;
    for (let s = 0; s < shards; s++) {
        for (let r = 0; r <= replicas; r++) {
            nodes.push({ name: nodeName("c", s, r), shard: s, az: `z${zoneOf(s, r, zones)}`, host: "127.0.0.1", port: port++ });
        }
    }
    return { clusterName: "c", port: 7000, tls: false, nodes };
}

const masterNames = (p: TopologyPlan) => p.shards.map((s) => s.master.name);

function assertSlotsCoveredOnce(p: TopologyPlan) {
    const owner = new Array<number>(SLOT_COUNT).fill(-1);
    for (const s of p.shards) for (const r of s.slots) for (let i = r.start; i <= r.end; i++) {
        assert.equal(owner[i], -1, `slot ${i} owned twice`);
        owner[i] = s.shard;
    }
    assert.equal(owner.indexOf(-1), -1, "every slot owned");
}

function masterZoneSpread(p: TopologyPlan): number {
    const per = new Map<string, number>();
    for (const s of p.shards) per.set(s.master.az, (per.get(s.master.az) ?? 0) + 1);
    const zones = new Set(p.shards.flatMap((s) => [s.master.az, ...s.replicas.map((r) => r.az)]));
    const counts = [...zones].map((z) => per.get(z) ?? 0);
    return Math.max(...counts) - Math.min(...counts);
}

test("plan: 3 shards × 1 replica over 3 zones: r0 masters, one per zone, replicas elsewhere", () => {
    const p = planTopology(topo(3, 1, 3));
    assert.deepEqual(masterNames(p), ["c-s0-r0", "c-s1-r0", "c-s2-r0"]);
    assert.deepEqual(p.shards.map((s) => s.master.az), ["z0", "z1", "z2"]);
    assert.deepEqual(p.shards.map((s) => s.replicas.map((r) => r.name)), [["c-s0-r1"], ["c-s1-r1"], ["c-s2-r1"]]);
    assert.deepEqual(p.shards.map((s) => s.slots), [[{ start: 0, end: 5461 }], [{ start: 5462, end: 10922 }], [{ start: 10923, end: 16383 }]]);
    assert.deepEqual(p.warnings, []);
});

test("plan: table of shapes: slots covered once, no replica in master's zone when zones allow, masters spread", () => {
    for (const zones of [1, 2, 3, 4, 6]) {
        for (const replicas of [0, 1, 2, 5]) {
            for (const shards of [3, 4, 7, 12]) {
                const t = topo(shards, replicas, zones);
                const p = planTopology(t);
                const what = `${shards} shards × ${replicas} replicas over ${zones} zones`;
                assert.equal(p.shards.length, shards, what);
                assertSlotsCoveredOnce(p);
                assert.equal(p.shards.reduce((n, s) => n + 1 + s.replicas.length, 0), t.nodes.length, what);
                // Every shard's master has as few shard-mates in its zone as any of its nodes.
                for (const s of p.shards) {
                    const members = [s.master, ...s.replicas];
                    const mates = (n: TopologyNode) => members.filter((m) => m !== n && m.az === n.az).length;
                    assert.equal(mates(s.master), Math.min(...members.map(mates)), `${what}: shard ${s.shard}`);
                    if (1 + replicas <= zones) assert.ok(s.replicas.every((r) => r.az !== s.master.az), `${what}: shard ${s.shard} replica in master zone`);
                }
                if (zones > 1 && 1 + replicas <= zones) assert.ok(masterZoneSpread(p) <= Math.ceil(shards / zones), `${what}: spread`);
                if (zones <= shards && 1 + replicas <= zones) assert.ok(masterZoneSpread(p) <= 1, `${what}: masters evenly over zones`);
                if (1 + replicas <= zones) assert.deepEqual(p.warnings, [], what);
                if (zones === 1 && replicas > 0) assert.equal(p.warnings.length, shards * replicas, what);
                // Deterministic: same input, same plan; order of nodes in the file does not matter.
                const shuffled = { ...t, nodes: [...t.nodes].reverse() };
                assert.deepEqual(masterNames(planTopology(shuffled)), masterNames(p), what);
            }
        }
    }
});

test("plan: more replicas than zones: master is the node alone in its zone", () => {
    // 2 zones, 2 replicas: r0 and r2 share zone (s % 2); r1 is alone, so r1 leads.
    const p = planTopology(topo(4, 2, 2));
    assert.deepEqual(masterNames(p), ["c-s0-r1", "c-s1-r1", "c-s2-r1", "c-s3-r1"]);
    for (const s of p.shards) assert.ok(s.replicas.every((r) => r.az !== s.master.az));
    assert.deepEqual(p.warnings, []);
    // 2 zones, 3 replicas: some replica must share the master's zone; the plan says so.
    const q = planTopology(topo(3, 3, 2));
    assert.equal(q.warnings.filter((w) => w.includes("in its master's zone")).length, 3);
    assert.match(q.warnings[0], /shard 0: replica c-s0-r\d is in its master's zone z\d \(the shard's 4 nodes are spread over only 2 zones\)/);
});

test("plan: one zone: r0 masters, warns that replicas share the zone", () => {
    const p = planTopology(topo(3, 1, 1));
    assert.deepEqual(masterNames(p), ["c-s0-r0", "c-s1-r0", "c-s2-r0"]);
    assert.equal(p.warnings.length, 3);
    assert.match(p.warnings[0], /replica c-s0-r1 is in its master's zone z0 .*over only 1 zone\)/);
});

test("plan: zones not laid out by the stack's rule still get masters spread", () => {
    // All r0 in zone a: the plan moves masters to other zones where the shard has nodes.
    const nodes: TopologyNode[] = [];
    for (let s = 0; s < 3; s++) {
        nodes.push({ name: nodeName("c", s, 0), shard: s, az: "a", host: "10.0.0.1", port: 7000 + s });
        nodes.push({ name: nodeName("c", s, 1), shard: s, az: ["b", "c", "b"][s], host: "10.0.0.2", port: 7000 + s });
    }
    const p = planTopology({ clusterName: "c", port: 7000, tls: false, nodes });
    assert.deepEqual(p.shards.map((s) => s.master.az), ["a", "c", "b"]);
});

test("plan: live state pins masters, unreachable nodes never lead, current replicas are avoided", () => {
    const t = topo(3, 1, 3);
    const k = (name: string) => nodeKey(t.nodes.find((n) => n.name === name)!);
    const p = planTopology(t, { pinnedMasters: [k("c-s1-r1")], unavailable: [k("c-s0-r0")], currentReplicas: [k("c-s2-r0")] });
    assert.deepEqual(masterNames(p), ["c-s0-r1", "c-s1-r1", "c-s2-r1"]);
    assert.throws(() => planTopology(t, { pinnedMasters: [k("c-s1-r0"), k("c-s1-r1")] }), (e: unknown) => {
        assert.ok(e instanceof PlanError);
        assert.match(e.message, /^shard 1: c-s1-r0 \(127\.0\.0\.1:7002\) and c-s1-r1 \(127\.0\.0\.1:7003\) both own slots/);
        return true;
    });
    assert.throws(() => planTopology(t, { unavailable: [k("c-s2-r0"), k("c-s2-r1")] }), /shard 2: none of its nodes .* can take slots: all are unreachable/);
});

test("splitSlots: proportional, contiguous, weight 0 gets nothing", () => {
    assert.deepEqual(splitSlots([1, 1, 1]).map((r) => countSlots(r)), [5462, 5461, 5461]);
    const w = splitSlots([1, 2, 0, 1]);
    assert.deepEqual(w.map((r) => countSlots(r)), [4096, 8192, 0, 4096]);
    assert.deepEqual(w[3], [{ start: 12288, end: 16383 }]);
    assert.throws(() => splitSlots([0, 0]), /at least one shard needs a weight above 0/);
    for (const n of [3, 7, 60, 500]) {
        const r = splitSlots(new Array(n).fill(1));
        const counts = r.map(countSlots);
        assert.equal(counts.reduce((a, b) => a + b, 0), SLOT_COUNT);
        assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `${n} shards even`);
        for (let i = 1; i < n; i++) assert.equal(r[i][0].start, r[i - 1][0].end + 1);
    }
});
