/**
 * Pure slot-move planner: given who owns which slots and what share each master
 * should hold, which slots move where.
 *
 * - Shares are proportional to weights (default 1); a draining master (or weight 0)
 *   gets none. Rounding uses largest remainders and, on ties, favours the master
 *   that already holds more, so an already balanced cluster plans no move.
 * - Minimal movement: a master gives away exactly its surplus and receives exactly
 *   its deficit; nothing moves through an intermediate master.
 * - Balance within one slot: every master ends within one slot of its exact share
 *   (equal weights: the largest and smallest counts differ by at most one).
 * - A giving master gives its highest slots first, so ranges stay contiguous, and
 *   each giver's slots are dealt to receivers in runs, giving one stream per
 *   (source, target) pair that the executor can run in parallel.
 *
 * No `ioredis`, no I/O: data in, data out.
 */
import { SLOT_COUNT, SlotRange, fromRanges, toRanges } from "./slots";
import { PlanError } from "../errors";

export interface MasterInput {
    /** Node id. */
    id: string;
    /** Slots the master owns now. */
    slots: SlotRange[];
    /** Relative share. @default 1 */
    weight?: number;
    /** Move every slot away (a master the topology no longer declares). Same as weight 0. */
    drain?: boolean;
}

export interface SlotMove {
    slot: number;
    from: string;
    to: string;
}

/** The slots one source gives one target, in ascending order. */
export interface Stream {
    from: string;
    to: string;
    slots: number[];
}

export interface RebalancePlan {
    version: 1;
    /** Slot count each master holds now. */
    current: Record<string, number>;
    /** Slot count each master holds after the plan. */
    target: Record<string, number>;
    /** Every slot that changes owner, grouped by stream. */
    moves: SlotMove[];
    streams: Stream[];
    /** Set when nothing moves although masters are not exactly at target (within the threshold). */
    skipped?: string;
}

export interface PlanOptions {
    /**
     * Plan nothing when every master is within this percentage of its target
     * (and none drains, and no master with weight is empty). @default 0
     */
    thresholdPct?: number;
}

/** Validates the input; throws listing every problem. */
function validate(masters: MasterInput[]): void {
    const problems: string[] = [];
    if (masters.length === 0) problems.push("no masters given");
    const ids = new Set<string>();
    const owner = new Map<number, string>();
    for (const m of masters) {
        if (ids.has(m.id)) problems.push(`master ${m.id} is listed twice`);
        ids.add(m.id);
        const w = m.weight ?? 1;
        if (!(Number.isFinite(w) && w >= 0)) problems.push(`master ${m.id}: weight must be a number ≥ 0 (got ${m.weight})`);
        for (const r of m.slots) {
            if (!(Number.isInteger(r.start) && Number.isInteger(r.end) && r.start >= 0 && r.end < SLOT_COUNT && r.start <= r.end)) {
                problems.push(`master ${m.id}: bad slot range ${r.start}-${r.end}`);
                continue;
            }
            for (let s = r.start; s <= r.end; s++) {
                const o = owner.get(s);
                if (o !== undefined) {
                    problems.push(`slot ${s} is owned by both ${o} and ${m.id}`);
                    break;
                }
                owner.set(s, m.id);
            }
        }
    }
    if (problems.length === 0 && owner.size !== SLOT_COUNT) {
        const missing = toRanges([...Array(SLOT_COUNT).keys()].filter((s) => !owner.has(s)));
        problems.push(`${SLOT_COUNT - owner.size} slot(s) have no owner (${missing.slice(0, 5).map((r) => (r.start === r.end ? r.start : `${r.start}-${r.end}`)).join(",")}${missing.length > 5 ? ",…" : ""}); fix the slot map first (e.g. redis-cli --cluster fix)`);
    }
    if (problems.length === 0 && masters.every((m) => m.drain || (m.weight ?? 1) === 0)) {
        problems.push("every master is draining or has weight 0: nothing could own the slots");
    }
    if (problems.length) throw new PlanError(problems, "Cannot plan a rebalance; nothing was changed");
}

/**
 * Target slot count per master: proportional to weight, summing to 16384, each
 * within one slot of its exact share. Ties in rounding go to the master holding
 * more slots now (fewer moves), then to the smaller id (determinism).
 */
export function targetCounts(masters: MasterInput[]): Record<string, number> {
    const weights = masters.map((m) => (m.drain ? 0 : m.weight ?? 1));
    const total = weights.reduce((a, b) => a + b, 0);
    if (!(total > 0)) throw new PlanError(["every master is draining or has weight 0: nothing could own the slots"]);
    const exact = weights.map((w) => (SLOT_COUNT * w) / total);
    const counts = exact.map(Math.floor);
    let left = SLOT_COUNT - counts.reduce((a, b) => a + b, 0);
    const held = masters.map((m) => m.slots.reduce((n, r) => n + r.end - r.start + 1, 0));
    const order = masters
        .map((m, i) => i)
        .filter((i) => weights[i] > 0)
        .sort((a, b) => {
            const fa = exact[a] - counts[a];
            const fb = exact[b] - counts[b];
            if (Math.abs(fa - fb) > 1e-9) return fb - fa;
            if (held[a] !== held[b]) return held[b] - held[a];
            return masters[a].id < masters[b].id ? -1 : 1;
        });
    for (let k = 0; left > 0; k = (k + 1) % order.length, left--) counts[order[k]]++;
    return Object.fromEntries(masters.map((m, i) => [m.id, counts[i]]));
}

/** Plans the moves from the current ownership to the weighted targets. */
export function planRebalance(masters: MasterInput[], opts: PlanOptions = {}): RebalancePlan {
    validate(masters);
    const target = targetCounts(masters);
    const slotsOf = new Map(masters.map((m) => [m.id, fromRanges(m.slots).sort((a, b) => a - b)]));
    const current = Object.fromEntries(masters.map((m) => [m.id, slotsOf.get(m.id)!.length]));
    const plan: RebalancePlan = { version: 1, current, target, moves: [], streams: [] };

    const threshold = opts.thresholdPct ?? 0;
    const mustMove = masters.some((m) => (m.drain || (m.weight ?? 1) === 0) && current[m.id] > 0)
        || masters.some((m) => target[m.id] > 0 && current[m.id] === 0);
    if (!mustMove && threshold > 0) {
        const worst = Math.max(...masters.map((m) => (target[m.id] === 0 ? 0 : (Math.abs(current[m.id] - target[m.id]) / target[m.id]) * 100)));
        if (worst <= threshold) {
            if (worst > 0) plan.skipped = `every master is within ${threshold}% of its share (worst ${worst.toFixed(2)}%)`;
            return plan;
        }
    }

    // Givers: highest slots first; takers: biggest deficit first.
    const givers = masters
        .filter((m) => current[m.id] > target[m.id])
        .sort((a, b) => current[b.id] - target[b.id] - (current[a.id] - target[a.id]) || (a.id < b.id ? -1 : 1));
    const takers = masters
        .filter((m) => current[m.id] < target[m.id])
        .map((m) => ({ id: m.id, need: target[m.id] - current[m.id] }))
        .sort((a, b) => b.need - a.need || (a.id < b.id ? -1 : 1));
    let t = 0;
    for (const g of givers) {
        const owned = slotsOf.get(g.id)!;
        const surplus = current[g.id] - target[g.id];
        // Give away the top `surplus` slots, dealt in ascending runs to the takers.
        const giving = owned.slice(owned.length - surplus);
        let i = 0;
        while (i < giving.length) {
            while (takers[t].need === 0) t++;
            const n = Math.min(takers[t].need, giving.length - i);
            const chunk = giving.slice(i, i + n);
            plan.streams.push({ from: g.id, to: takers[t].id, slots: chunk });
            for (const slot of chunk) plan.moves.push({ slot, from: g.id, to: takers[t].id });
            takers[t].need -= n;
            i += n;
        }
    }
    // Merge streams of the same pair (a giver may reach a taker twice only in theory; keep one stream per pair).
    const byPair = new Map<string, Stream>();
    for (const s of plan.streams) {
        const k = `${s.from}>${s.to}`;
        const e = byPair.get(k);
        if (e) e.slots.push(...s.slots);
        else byPair.set(k, { ...s, slots: [...s.slots] });
    }
    plan.streams = [...byPair.values()];
    return plan;
}

/** Applies moves to an ownership array (slot -> owner id); returns a new array. */
export function applyMoves(owners: (string | undefined)[], moves: SlotMove[]): (string | undefined)[] {
    const out = owners.slice();
    for (const m of moves) {
        if (out[m.slot] !== m.from) throw new Error(`move of slot ${m.slot} from ${m.from}, but ${out[m.slot]} owns it`);
        out[m.slot] = m.to;
    }
    return out;
}

/** Human summary: one line per stream, "a → b: 1365 slots (5461-6825)". */
export function describeStreams(plan: RebalancePlan, name: (id: string) => string = (id) => id.slice(0, 8)): string[] {
    return plan.streams.map((s) => {
        const ranges = toRanges(s.slots);
        const shown = ranges.slice(0, 4).map((r) => (r.start === r.end ? `${r.start}` : `${r.start}-${r.end}`)).join(",");
        return `${name(s.from)} → ${name(s.to)}: ${s.slots.length} slot(s) (${shown}${ranges.length > 4 ? ",…" : ""})`;
    });
}
