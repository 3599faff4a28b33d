/**
 * The slot vocabulary: 16384 hash slots, ranges of them, and their notation
 * ("0-5460,5462"), as CLUSTER NODES and CLUSTER ADDSLOTSRANGE speak it.
 * Pure, shared by the planners and the executors.
 * See https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#key-distribution-model
 */

export const SLOT_COUNT = 16384;

export interface SlotRange {
    start: number;
    end: number; // inclusive
}

/** Number of slots in a list of ranges. */
export function countSlots(ranges: SlotRange[]): number {
    return ranges.reduce((n, r) => n + (r.end - r.start + 1), 0);
}

/** Collapses a sorted or unsorted list of slots into ranges. */
export function toRanges(slots: Iterable<number>): SlotRange[] {
    const sorted = [...new Set(slots)].sort((a, b) => a - b);
    const out: SlotRange[] = [];
    for (const s of sorted) {
        const last = out[out.length - 1];
        if (last && last.end === s - 1) last.end = s;
        else out.push({ start: s, end: s });
    }
    return out;
}

/** Expands ranges into a slot list. */
export function fromRanges(ranges: SlotRange[]): number[] {
    const out: number[] = [];
    for (const r of ranges) for (let s = r.start; s <= r.end; s++) out.push(s);
    return out;
}

/** "0-5460,5462" for humans. */
export function formatRanges(ranges: SlotRange[]): string {
    return ranges.map((r) => (r.start === r.end ? `${r.start}` : `${r.start}-${r.end}`)).join(",");
}
