import { test } from "node:test";
import assert from "node:assert/strict";
import { compareVersions, describePlan, engineCompatVersion, engineOf, failoverCandidates, planRoll, RollInput, RollNode, RollStep } from "../../scripts/plan/roll";

/** shards × (1 + replicas) nodes, r0 masters, zones as the stack places them ((shard + replica) mod 3). */
function cluster(shards: number, replicas: number, version = "7.0.15"): RollNode[] {
    const out: RollNode[] = [];
    for (let s = 0; s < shards; s++) {
        for (let r = 0; r <= replicas; r++) {
            out.push({
                name: `c-s${s}-r${r}`, key: `127.0.0.1:${7000 + s * 10 + r}`, id: `id${s}${r}`, shard: s, az: `z${(s + r) % 3}`,
                role: r === 0 ? "master" : "replica", master: r === 0 ? undefined : `c-s${s}-r0`, healthy: true, linkUp: r === 0 ? undefined : true, version,
            });
        }
    }
    return out;
}
const input = (nodes: RollNode[], pending: string[] = nodes.map((n) => n.name), extra: Partial<RollInput> = {}): RollInput => ({
    nodes, pending: new Map(pending.map((p) => [p, ["instanceType r7g.large → r7g.xlarge"]])), unhealthy: [], openSlots: [], backups: [], ...extra,
});
const order = (steps: RollStep[]) => steps.map((s) => (s.kind === "failover" ? `failover s${s.shard}→${s.candidates[0]}` : s.node));

test("roll plan: 3×1, everything pending: the replicas, then per shard failover and the old master", () => {
    const p = planRoll(input(cluster(3, 1)));
    assert.ok(p.ok);
    assert.deepEqual(order(p.steps), [
        "c-s0-r1", "c-s1-r1", "c-s2-r1",
        "failover s0→c-s0-r1", "c-s0-r0", "failover s1→c-s1-r1", "c-s1-r0", "failover s2→c-s2-r1", "c-s2-r0",
    ]);
    assert.deepEqual(p.warnings, []);
    assert.match(describePlan(p.steps).join("\n"), / 1\/6 c-s0-r1 \(replica\): instanceType r7g.large → r7g.xlarge/);
});

test("roll plan: 3×2 goes round-robin over the shards' replicas", () => {
    const p = planRoll(input(cluster(3, 2)));
    assert.ok(p.ok);
    assert.deepEqual(order(p.steps).slice(0, 6), ["c-s0-r1", "c-s1-r1", "c-s2-r1", "c-s0-r2", "c-s1-r2", "c-s2-r2"]);
    // Every node once; each master after its shard's failover.
    const updates = p.steps.filter((s) => s.kind === "update").map((s) => (s as { node: string }).node);
    assert.equal(new Set(updates).size, 9);
    for (const s of [0, 1, 2]) {
        assert.ok(order(p.steps).indexOf(`c-s${s}-r0`) === order(p.steps).findIndex((x) => x.startsWith(`failover s${s}`)) + 1);
    }
});

test("roll plan: only pending nodes, and a resumed roll (old master already a replica) needs no failover", () => {
    const nodes = cluster(3, 1);
    // Shard 0 failed over in an interrupted run: r1 is the master, r0 its replica.
    nodes[0] = { ...nodes[0], role: "replica", master: "c-s0-r1", linkUp: true };
    nodes[1] = { ...nodes[1], role: "master", master: undefined, linkUp: undefined };
    const p = planRoll(input(nodes, ["c-s0-r0", "c-s2-r0"]));
    assert.ok(p.ok);
    assert.deepEqual(order(p.steps), ["c-s0-r0", "failover s2→c-s2-r1", "c-s2-r0"]);
});

test("roll plan: failover candidates are in sync and not older than the master; another zone first", () => {
    const nodes = cluster(1, 3).map((n) => ({ ...n, az: n.name.endsWith("r1") ? "z0" : n.az }));
    const master = nodes[0];
    nodes[2] = { ...nodes[2], linkUp: false };
    nodes[3] = { ...nodes[3], version: "6.2.14" };
    assert.deepEqual(failoverCandidates(master, nodes).map((n) => n.name), ["c-s0-r1"]);
    const more = [...nodes, { ...nodes[1], name: "c-s0-r4", az: "z2", id: "x" }];
    assert.deepEqual(failoverCandidates(master, more).map((n) => n.name), ["c-s0-r4", "c-s0-r1"]);
});

test("roll plan: refusals are gathered; nothing is planned", () => {
    const p = planRoll(input(cluster(3, 1), undefined, { unhealthy: ["cluster_state is not ok on a"], openSlots: ["100 migrating on c-s0-r0"], backups: ["c-s1-r0"] }));
    assert.ok(!p.ok);
    assert.equal(p.refusals.length, 3);
    assert.match(p.refusals[0], /not healthy: cluster_state is not ok on a/);
    assert.match(p.refusals[1], /100 migrating on c-s0-r0/);
    assert.match(p.refusals[2], /backup is running \(BGSAVE in progress\) on c-s1-r0/);
});

test("roll plan: a shard without an in-sync replica is refused, or rolled with its outage spelled out", () => {
    const nodes = cluster(3, 1);
    nodes[1] = { ...nodes[1], linkUp: false };
    const refused = planRoll(input(nodes));
    assert.ok(!refused.ok);
    assert.match(refused.refusals.join("\n"), /shard 0 has no in-sync replica to take over from its master c-s0-r0.*--allow-unavailable-shard/);
    const accepted = planRoll(input(nodes, undefined, { allowUnavailableShard: true }));
    assert.ok(accepted.ok);
    assert.deepEqual(accepted.steps.find((s) => s.kind === "update" && s.node === "c-s0-r0"), { kind: "update", node: "c-s0-r0", shard: 0, role: "master", changes: ["instanceType r7g.large → r7g.xlarge"], unavailable: true });
    assert.ok(!accepted.steps.some((s) => s.kind === "failover" && s.shard === 0));
    assert.match(accepted.warnings[0], /every key of its slots is unavailable/);
});

test("roll plan: engine upgrades are allowed, downgrades refused", () => {
    assert.ok(planRoll(input(cluster(3, 1, "6.2.14"), undefined, { targetVersion: engineCompatVersion("valkey") })).ok);
    assert.ok(planRoll(input(cluster(3, 1, "6.2.14"), undefined, { targetVersion: "6.2" })).ok, "same feature level");
    const down = planRoll(input(cluster(3, 1, "7.2.4"), undefined, { targetVersion: engineCompatVersion("redis6") }));
    assert.ok(!down.ok);
    assert.match(down.refusals[0], /engine 6\.2 is older than what c-s0-r0 \(7\.2\.4\), .* run: a downgrade has no safe rolling order/);
    assert.equal(compareVersions("7.0.15", "7.0"), 0);
    assert.ok(compareVersions("7.2.4", "7.0.15")! > 0);
    assert.equal(compareVersions("?", "7.0"), undefined);
});

test("roll plan: a pending node the cluster does not know is refused", () => {
    const p = planRoll(input(cluster(3, 1), ["c-s3-r0"]));
    assert.ok(!p.ok);
    assert.match(p.refusals[0], /c-s3-r0 has pending changes but is not a member of the cluster/);
});

test("roll plan: the engine a node runs, from INFO server", () => {
    assert.equal(engineOf({ redis_version: "6.2.14" }), "redis6");
    assert.equal(engineOf({ redis_version: "7.0.15" }), "redis");
    assert.equal(engineOf({ redis_version: "7.2.4", server_name: "valkey" }), "valkey");
});
