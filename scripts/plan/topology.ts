/**
 * Pure master/replica placement for `create`: from a Topology (and what the live
 * cluster already pins), which node of each declared shard is its master, which
 * are its replicas, and which slots each shard is meant to own.
 *
 * Rules, in order of precedence, per shard:
 *  1. a node that already owns slots is the master (live state wins: a rerun never
 *     demotes a master); two such nodes in one shard is a conflict;
 *  2. a node that cannot take slots (unreachable) is never chosen;
 *  3. a node that is already somebody's replica is avoided when another will do;
 *  4. the node with the fewest shard-mates in its zone, so that no replica shares
 *     its master's zone whenever the shard's zones allow it;
 *  5. the zone with the fewest masters chosen so far (masters spread over zones);
 *  6. the lowest replica index in the node name (`-s<shard>-r<replica>`: r0 is the
 *     intended first master), then the name.
 * Shards are visited in ascending order, so the result is deterministic.
 *
 * No `ioredis` or `@pulumi/*` import: data in, data out.
 */
import { parseNodeName, Topology, TopologyNode } from "../../components/topology";
import { SLOT_COUNT, SlotRange } from "./slots";
import { PlanError } from "../errors";

export interface ShardPlan {
    /** Declared shard number. */
    shard: number;
    master: TopologyNode;
    /** Every other node of the shard, in topology order (replica index, then name). */
    replicas: TopologyNode[];
    /** Slots the shard is meant to own: one contiguous range, or none (weight 0). */
    slots: SlotRange[];
}

export interface TopologyPlan {
    shards: ShardPlan[];
    /** Things the plan could not avoid (replica in its master's zone, too few masters...). */
    warnings: string[];
}

export interface PlanOptions {
    /** Node keys (`host:port`) that own slots now: they stay masters. */
    pinnedMasters?: Iterable<string>;
    /** Node keys that cannot become master (unreachable). */
    unavailable?: Iterable<string>;
    /** Node keys that are replicas now: avoided as masters when another node will do. */
    currentReplicas?: Iterable<string>;
}

// The plan cannot be made (two pinned masters in a shard, a shard with no usable node): a refusal.
export { PlanError };

export const keyOf = (n: Pick<TopologyNode, "host" | "port">): string => `${n.host}:${n.port}`;

function replicaIndex(n: TopologyNode): number {
    return parseNodeName(n.name)?.replica ?? Number.MAX_SAFE_INTEGER;
}

function byReplicaThenName(a: TopologyNode, b: TopologyNode): number {
    return replicaIndex(a) - replicaIndex(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * Splits the 16384 slots into contiguous ranges proportional to `weights`
 * (largest remainder, ties to the earlier index). A weight of 0 gets no slots.
 */
export function splitSlots(weights: number[], total = SLOT_COUNT): SlotRange[][] {
    if (weights.some((w) => !(w >= 0) || !Number.isFinite(w))) throw new PlanError([`slot weights must be finite numbers ≥ 0 (got ${JSON.stringify(weights)})`]);
    const sum = weights.reduce((a, b) => a + b, 0);
    if (sum <= 0) throw new PlanError(["at least one shard needs a weight above 0 to own slots"]);
    const exact = weights.map((w) => (w / sum) * total);
    const counts = exact.map(Math.floor);
    let left = total - counts.reduce((a, b) => a + b, 0);
    const order = exact.map((e, i) => ({ i, frac: e - Math.floor(e) })).sort((a, b) => b.frac - a.frac || a.i - b.i);
    for (const { i } of order) {
        if (left === 0) break;
        if (weights[i] > 0) {
            counts[i]++;
            left--;
        }
    }
    const out: SlotRange[][] = [];
    let start = 0;
    for (const c of counts) {
        out.push(c > 0 ? [{ start, end: start + c - 1 }] : []);
        start += c;
    }
    return out;
}

/** Places masters and replicas for every declared shard; throws PlanError when it cannot. */
export function planTopology(topology: Topology, opts: PlanOptions = {}): TopologyPlan {
    const pinned = new Set(opts.pinnedMasters ?? []);
    const unavailable = new Set(opts.unavailable ?? []);
    const replicasNow = new Set(opts.currentReplicas ?? []);
    const problems: string[] = [];
    const warnings: string[] = [];

    const shardNos = [...new Set(topology.nodes.map((n) => n.shard))].sort((a, b) => a - b);
    const zones = [...new Set(topology.nodes.map((n) => n.az))].sort();
    const mastersPerZone = new Map<string, number>(zones.map((z) => [z, 0]));

    const chosen: { shard: number; master: TopologyNode; replicas: TopologyNode[] }[] = [];
    for (const shard of shardNos) {
        const members = topology.nodes.filter((n) => n.shard === shard).sort(byReplicaThenName);
        const pinnedHere = members.filter((n) => pinned.has(keyOf(n)));
        let master: TopologyNode | undefined;
        if (pinnedHere.length > 1) {
            problems.push(`shard ${shard}: ${pinnedHere.map((n) => `${n.name} (${keyOf(n)})`).join(" and ")} both own slots; a shard has one master. Move one node's slots away (or CLUSTER RESET it if it is meant to be a replica and holds no keys), then run create again`);
            continue;
        }
        if (pinnedHere.length === 1) {
            master = pinnedHere[0];
        } else {
            const candidates = members.filter((n) => !unavailable.has(keyOf(n)));
            if (candidates.length === 0) {
                problems.push(`shard ${shard}: none of its nodes (${members.map((n) => `${n.name} ${keyOf(n)}`).join(", ")}) can take slots: all are unreachable`);
                continue;
            }
            const score = (n: TopologyNode): number[] => [
                replicasNow.has(keyOf(n)) ? 1 : 0,
                members.filter((m) => m !== n && m.az === n.az).length,
                mastersPerZone.get(n.az) ?? 0,
            ];
            master = candidates.reduce((best, n) => {
                const a = score(n);
                const b = score(best);
                for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i] ? n : best;
                return best; // candidates are already in replica-index/name order
            });
        }
        mastersPerZone.set(master.az, (mastersPerZone.get(master.az) ?? 0) + 1);
        chosen.push({ shard, master, replicas: members.filter((n) => n !== master) });
    }
    if (problems.length > 0) throw new PlanError(problems);

    const ranges = splitSlots(chosen.map((c) => c.master.weight ?? 1));
    const shards = chosen.map((c, i) => ({ ...c, slots: ranges[i] }));

    for (const s of shards) {
        const shardZones = new Set([s.master.az, ...s.replicas.map((r) => r.az)]);
        for (const r of s.replicas) {
            if (r.az === s.master.az) {
                warnings.push(`shard ${s.shard}: replica ${r.name} is in its master's zone ${r.az} (the shard's ${1 + s.replicas.length} nodes are spread over only ${shardZones.size} zone${shardZones.size === 1 ? "" : "s"}); losing ${r.az} loses the shard`);
            }
        }
    }
    if (shards.filter((s) => s.slots.length > 0).length < 3) {
        warnings.push(`only ${shards.filter((s) => s.slots.length > 0).length} master(s) own slots: Redis Cluster needs a majority of at least 3 masters to fail over automatically`);
    }
    return { shards, warnings };
}
