import { test } from "node:test";
import assert from "node:assert/strict";
import { MasterInput, applyMoves, planRebalance, targetCounts, describeStreams } from "../../scripts/plan/rebalance";
import { SLOT_COUNT, SlotRange, toRanges } from "../../scripts/plan/clusterNodes";

/** Even split like `create` makes: 0-5460, 5461-10922, 10923-16383 for 3. */
function evenSplit(n: number): SlotRange[][] {
    const out: SlotRange[][] = [];
    let start = 0;
    for (let i = 0; i < n; i++) {
        const end = Math.floor(((i + 1) * SLOT_COUNT) / n) - 1;
        out.push([{ start, end }]);
        start = end + 1;
    }
    return out;
}

function ownersOf(masters: MasterInput[]): (string | undefined)[] {
    const o: (string | undefined)[] = new Array(SLOT_COUNT).fill(undefined);
    for (const m of masters) for (const r of m.slots) for (let s = r.start; s <= r.end; s++) o[s] = m.id;
    return o;
}

function countsOf(owners: (string | undefined)[]): Record<string, number> {
    const c: Record<string, number> = {};
    for (const o of owners) if (o) c[o] = (c[o] ?? 0) + 1;
    return c;
}

test("table: target counts", () => {
    const cases: { name: string; masters: MasterInput[]; want: Record<string, number> }[] = [
        { name: "3 equal", masters: evenSplit(3).map((slots, i) => ({ id: `m${i}`, slots })), want: { m0: 5461, m1: 5461, m2: 5462 } },
        { name: "3 + 1 empty", masters: [...evenSplit(3).map((slots, i) => ({ id: `m${i}`, slots })), { id: "m3", slots: [] }], want: { m0: 4096, m1: 4096, m2: 4096, m3: 4096 } },
        { name: "weights 1:1:2", masters: evenSplit(3).map((slots, i) => ({ id: `m${i}`, slots, weight: i === 2 ? 2 : 1 })), want: { m0: 4096, m1: 4096, m2: 8192 } },
        { name: "drain one of 4", masters: evenSplit(4).map((slots, i) => ({ id: `m${i}`, slots, drain: i === 3 })), want: { m0: 5461, m1: 5461, m2: 5462, m3: 0 } },
        { name: "weight 0 drains", masters: evenSplit(4).map((slots, i) => ({ id: `m${i}`, slots, weight: i === 0 ? 0 : 1 })), want: { m0: 0, m1: 5461, m2: 5461, m3: 5462 } },
    ];
    for (const c of cases) {
        const got = targetCounts(c.masters);
        // Rounding ties may land on any master with the same fraction and holding; compare the multiset and the sum.
        assert.equal(Object.values(got).reduce((a, b) => a + b, 0), SLOT_COUNT, c.name);
        assert.deepEqual(Object.values(got).sort(), Object.values(c.want).sort(), c.name);
        for (const [id, n] of Object.entries(c.want)) if (n === 0) assert.equal(got[id], 0, `${c.name}: ${id} drains`);
    }
});

test("table: an even 3-master split plans nothing; a created split gives the extra slot to its holder", () => {
    const masters = evenSplit(3).map((slots, i) => ({ id: `m${i}`, slots }));
    const plan = planRebalance(masters);
    assert.equal(plan.moves.length, 0);
    assert.deepEqual(plan.target, plan.current);
});

test("table: 3 → 4 masters moves a quarter, top slots of each, one stream per source", () => {
    const masters: MasterInput[] = [...evenSplit(3).map((slots, i) => ({ id: `m${i}`, slots })), { id: "new", slots: [] }];
    const plan = planRebalance(masters);
    assert.equal(plan.moves.length, 4096);
    assert.equal(plan.streams.length, 3);
    for (const s of plan.streams) {
        assert.equal(s.to, "new");
        assert.equal(toRanges(s.slots).length, 1, "each source gives one contiguous run");
    }
    // m0 held 0-5460 and gives its top 1365 slots
    const s0 = plan.streams.find((s) => s.from === "m0")!;
    assert.equal(s0.slots[s0.slots.length - 1], 5460);
    assert.equal(describeStreams(plan).length, 3);
});

test("table: 4 → 3 drains the removed master to every other one", () => {
    const masters = evenSplit(4).map((slots, i) => ({ id: `m${i}`, slots, drain: i === 1 }));
    const plan = planRebalance(masters);
    assert.equal(plan.moves.length, 4096);
    assert.ok(plan.moves.every((m) => m.from === "m1"));
    assert.deepEqual(new Set(plan.streams.map((s) => s.to)), new Set(["m0", "m2", "m3"]));
    const after = countsOf(applyMoves(ownersOf(masters), plan.moves));
    assert.equal(after.m1, undefined);
    assert.ok(Math.max(after.m0, after.m2, after.m3) - Math.min(after.m0, after.m2, after.m3) <= 1);
});

test("table: threshold skips a nearly balanced cluster, never a drain or an empty master", () => {
    const masters: MasterInput[] = [
        { id: "a", slots: [{ start: 0, end: 5499 }] },
        { id: "b", slots: [{ start: 5500, end: 10922 }] },
        { id: "c", slots: [{ start: 10923, end: 16383 }] },
    ];
    const skipped = planRebalance(masters, { thresholdPct: 2 });
    assert.equal(skipped.moves.length, 0);
    assert.match(skipped.skipped ?? "", /within 2%/);
    const moved = planRebalance(masters, { thresholdPct: 0 });
    assert.equal(moved.moves.length, 38, "a keeps the rounding slot: it holds the most");
    const withEmpty = planRebalance([...masters, { id: "d", slots: [] }], { thresholdPct: 50 });
    assert.ok(withEmpty.moves.length > 0);
    const draining = planRebalance(masters.map((m, i) => ({ ...m, drain: i === 0 })), { thresholdPct: 99 });
    assert.equal(draining.moves.filter((m) => m.from === "a").length, 5500);
});

test("table: bad inputs are refused with every problem named", () => {
    assert.throws(() => planRebalance([]), /no masters given/);
    assert.throws(() => planRebalance([{ id: "a", slots: [{ start: 0, end: 100 }] }]), /16283 slot\(s\) have no owner \(101-16383\)/);
    assert.throws(
        () => planRebalance([{ id: "a", slots: [{ start: 0, end: 16383 }] }, { id: "b", slots: [{ start: 5, end: 5 }] }]),
        /slot 5 is owned by both a and b/,
    );
    assert.throws(() => planRebalance([{ id: "a", slots: [{ start: 0, end: 16383 }], drain: true }]), /nothing could own the slots/);
    assert.throws(() => planRebalance([{ id: "a", slots: [{ start: 0, end: 16383 }], weight: -1 }]), /weight must be a number ≥ 0/);
});

/** Small seeded PRNG (mulberry32) so failures reproduce. */
function rng(seed: number) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

/** A random cluster: 1–12 masters, slots dealt in random runs, random weights, some draining, some empty. */
function randomCluster(r: () => number): MasterInput[] {
    const n = 1 + Math.floor(r() * 12);
    const ids = Array.from({ length: n }, (_, i) => `n${i}`);
    const owners: string[] = [];
    let s = 0;
    while (s < SLOT_COUNT) {
        const len = Math.min(SLOT_COUNT - s, 1 + Math.floor(r() ** 3 * 4000));
        const who = ids[Math.floor(r() * n)];
        for (let k = 0; k < len; k++) owners.push(who);
        s += len;
    }
    const masters: MasterInput[] = ids.map((id) => ({
        id,
        slots: toRanges(owners.flatMap((o, slot) => (o === id ? [slot] : []))),
        weight: r() < 0.3 ? Math.round(r() * 40) / 10 : undefined,
        drain: r() < 0.15,
    }));
    if (masters.every((m) => m.drain || m.weight === 0)) masters[0] = { ...masters[0], drain: false, weight: 1 };
    return masters;
}

test("property: after the plan every slot is owned exactly once, shares are met, movement is minimal", () => {
    const r = rng(20240607);
    for (let iter = 0; iter < 150; iter++) {
        const masters = randomCluster(r);
        const plan = planRebalance(masters);
        const before = ownersOf(masters);
        const after = applyMoves(before, plan.moves); // throws if a move's source is not the owner
        // every slot exactly once: each slot has one owner, and each moved slot appears once in the plan
        assert.ok(after.every((o) => o !== undefined), `iter ${iter}: a slot lost its owner`);
        assert.equal(new Set(plan.moves.map((m) => m.slot)).size, plan.moves.length, `iter ${iter}: a slot moves twice`);
        const counts = countsOf(after);
        const total = masters.reduce((w, m) => w + (m.drain ? 0 : m.weight ?? 1), 0);
        for (const m of masters) {
            const got = counts[m.id] ?? 0;
            assert.equal(got, plan.target[m.id], `iter ${iter}: ${m.id} ends at its target`);
            const w = m.drain ? 0 : m.weight ?? 1;
            assert.ok(Math.abs(got - (SLOT_COUNT * w) / total) < 1, `iter ${iter}: ${m.id} within one slot of its share`);
            if (w === 0) assert.equal(got, 0, `iter ${iter}: ${m.id} drained`);
        }
        // minimal: the number of moves is the total surplus, and nobody both gives and takes
        const surplus = masters.reduce((n, m) => n + Math.max(0, plan.current[m.id] - plan.target[m.id]), 0);
        assert.equal(plan.moves.length, surplus, `iter ${iter}: minimal movement`);
        const givers = new Set(plan.moves.map((m) => m.from));
        for (const m of plan.moves) assert.ok(!givers.has(m.to), `iter ${iter}: ${m.to} both gives and takes`);
        // streams cover exactly the moves
        assert.equal(plan.streams.reduce((n, s) => n + s.slots.length, 0), plan.moves.length);
    }
});

test("property: equal weights end within one slot of each other", () => {
    const r = rng(7);
    for (let iter = 0; iter < 100; iter++) {
        const masters = randomCluster(r).map((m) => ({ ...m, weight: undefined, drain: false }));
        const plan = planRebalance(masters);
        const counts = masters.map((m) => plan.target[m.id]);
        assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `iter ${iter}: ${counts.join(",")}`);
        // a second plan on the result moves nothing (idempotent)
        const after = applyMoves(ownersOf(masters), plan.moves);
        const again = planRebalance(masters.map((m) => ({ ...m, slots: toRanges(after.flatMap((o, s) => (o === m.id ? [s] : []))) })));
        assert.equal(again.moves.length, 0, `iter ${iter}: replanning moves nothing`);
    }
});
