/**
 * Pure memory check before moving slots: will every receiving master still be
 * below its maxmemory (minus a headroom) after the move?
 *
 * What a move brings is estimated per source as (keys moved / keys held) ×
 * used_memory_dataset of the source (INFO memory), i.e. the source's average key
 * size; what a node gives away is subtracted the same way. Nodes without a
 * maxmemory (0) are reported as unchecked rather than guessed.
 */

export interface NodeMemory {
    id: string;
    /** For messages (host:port or name). */
    label: string;
    /** INFO memory used_memory. */
    usedBytes: number;
    /** INFO memory used_memory_dataset (falls back to used_memory). */
    datasetBytes: number;
    /** INFO memory maxmemory; 0 means no limit configured. */
    maxBytes: number;
    /** Keys held (DBSIZE). */
    keys: number;
}

export interface Flow {
    from: string;
    to: string;
    /** Keys the stream moves (COUNTKEYSINSLOT sums). */
    keys: number;
}

export interface HeadroomReport {
    ok: boolean;
    /** One line per node that would exceed its limit, with how much is missing. */
    problems: string[];
    /** Receivers without maxmemory (not checked). */
    unchecked: string[];
    /** Estimated bytes after the move, per node id. */
    after: Record<string, number>;
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

/** @param headroomPct share of maxmemory kept free after the move (default 10). */
export function checkHeadroom(nodes: NodeMemory[], flows: Flow[], headroomPct = 10): HeadroomReport {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const after: Record<string, number> = Object.fromEntries(nodes.map((n) => [n.id, n.usedBytes]));
    for (const f of flows) {
        const src = byId.get(f.from);
        if (!src || f.keys <= 0) continue;
        const perKey = src.keys > 0 ? src.datasetBytes / src.keys : 0;
        const bytes = Math.round(perKey * f.keys);
        after[f.from] = (after[f.from] ?? 0) - bytes;
        if (byId.has(f.to)) after[f.to] = (after[f.to] ?? 0) + bytes;
    }
    const problems: string[] = [];
    const unchecked: string[] = [];
    const receivers = new Set(flows.filter((f) => f.keys > 0).map((f) => f.to));
    for (const id of receivers) {
        const n = byId.get(id);
        if (!n) continue;
        if (n.maxBytes <= 0) {
            unchecked.push(n.label);
            continue;
        }
        const limit = n.maxBytes * (1 - headroomPct / 100);
        if (after[id] > limit) {
            problems.push(`${n.label} would hold ~${mib(after[id])}, over ${mib(limit)} (maxmemory ${mib(n.maxBytes)} less ${headroomPct}% headroom): ${mib(after[id] - limit)} missing`);
        }
    }
    return { ok: problems.length === 0, problems, unchecked, after };
}
