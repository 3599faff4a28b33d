import { test } from "node:test";
import assert from "node:assert/strict";
import { chooseReplica, planZoneEvacuation, ReplicaState, ShardState } from "../../scripts/plan/failover";

const node = (key: string, az: string, extra: Partial<ReplicaState> = {}): ReplicaState => ({ id: `id-${key}`, key, name: `n-${key}`, az, healthy: true, linkUp: true, offset: 100, ...extra });
const shard = (n: number, master: ReplicaState, ...replicas: ReplicaState[]): ShardState => ({ shard: n, master, replicas });

test("table: chooseReplica picks a healthy, in-sync replica, the most caught up, outside the avoided zone", () => {
    const cases: { name: string; s: ShardState; opts?: Parameters<typeof chooseReplica>[1]; want: string | RegExp }[] = [
        { name: "only replica", s: shard(0, node("m", "a"), node("r1", "b")), want: "r1" },
        { name: "largest offset wins", s: shard(0, node("m", "a"), node("r1", "b", { offset: 5 }), node("r2", "c", { offset: 9 })), want: "r2" },
        { name: "down replica skipped", s: shard(0, node("m", "a"), node("r1", "b", { healthy: false, offset: 99 }), node("r2", "c")), want: "r2" },
        { name: "link down skipped", s: shard(0, node("m", "a"), node("r1", "b", { linkUp: false })), want: /not in sync/ },
        { name: "link down fine when the master is gone", s: shard(0, node("m", "a", { healthy: false }), node("r1", "b", { linkUp: false })), opts: { masterGone: true }, want: "r1" },
        { name: "avoid zone", s: shard(0, node("m", "a"), node("r1", "a", { offset: 999 }), node("r2", "b")), opts: { avoidZone: "a" }, want: "r2" },
        { name: "nothing outside the zone", s: shard(0, node("m", "a"), node("r1", "a")), opts: { avoidZone: "a" }, want: /no healthy replica outside a: n-r1 \(r1\) is in a too/ },
        { name: "no replica", s: shard(0, node("m", "a")), want: /has no replica/ },
    ];
    for (const c of cases) {
        const got = chooseReplica(c.s, c.opts);
        if (typeof c.want === "string") {
            assert.ok(got.ok, `${c.name}: ${!got.ok ? got.reason : ""}`);
            assert.equal(got.replica.key, c.want, c.name);
        } else {
            assert.ok(!got.ok, c.name);
            assert.match(got.reason, c.want, c.name);
        }
    }
});

test("zone evacuation moves every master of the zone that can move and lists the others", () => {
    const plan = planZoneEvacuation([
        shard(0, node("m0", "a"), node("r0", "b")),
        shard(1, node("m1", "b"), node("r1", "a")),
        shard(2, node("m2", "a"), node("r2", "a")),
        shard(3, node("m3", "a")),
    ], "a");
    assert.deepEqual(plan.moves.map((m) => [m.shard, m.to.key]), [[0, "r0"]]);
    assert.deepEqual(plan.stuck.map((s) => s.shard), [2, 3]);
    assert.match(plan.stuck[1].reason, /no replica/);
    assert.deepEqual(plan.untouched, [1]);
});
