/**
 * Pure choices for failovers: which replica to promote in a shard, and, for a
 * zone evacuation, which shards can move their master out of the zone and which
 * cannot (no healthy replica elsewhere).
 */

export interface NodeState {
    id: string;
    key: string;
    /** Topology name, when the topology declares the node. */
    name?: string;
    /** Zone from the topology; undefined for nodes it does not declare. */
    az?: string;
    /** Answers and is not flagged failing by the cluster. */
    healthy: boolean;
}

export interface ReplicaState extends NodeState {
    /** INFO replication master_link_status:up. */
    linkUp: boolean;
    /** slave_repl_offset: how much of the master's stream it has. */
    offset: number;
}

export interface ShardState {
    /** Shard number from the topology (or -1 when unknown). */
    shard: number;
    master: NodeState;
    replicas: ReplicaState[];
}

export type Choice = { ok: true; replica: ReplicaState } | { ok: false; reason: string };

const label = (n: NodeState) => (n.name ? `${n.name} (${n.key})` : n.key);

/**
 * The replica to promote: healthy, linked to its master (unless `masterGone`),
 * outside `avoidZone`; the most caught-up one first (largest offset), then by name.
 */
export function chooseReplica(s: ShardState, opts: { avoidZone?: string; masterGone?: boolean } = {}): Choice {
    if (s.replicas.length === 0) return { ok: false, reason: "it has no replica" };
    const why: string[] = [];
    const candidates = s.replicas.filter((r) => {
        if (!r.healthy) return why.push(`${label(r)} is down`), false;
        if (!opts.masterGone && !r.linkUp) return why.push(`${label(r)} is not in sync (replication link down)`), false;
        if (opts.avoidZone !== undefined && r.az === opts.avoidZone) return why.push(`${label(r)} is in ${opts.avoidZone} too`), false;
        return true;
    });
    if (candidates.length === 0) return { ok: false, reason: `no healthy replica${opts.avoidZone ? ` outside ${opts.avoidZone}` : ""}: ${why.join("; ")}` };
    candidates.sort((a, b) => b.offset - a.offset || (a.name ?? a.key).localeCompare(b.name ?? b.key));
    return { ok: true, replica: candidates[0] };
}

export interface EvacuationPlan {
    moves: { shard: number; from: NodeState; to: ReplicaState }[];
    /** Shards whose master is in the zone and cannot leave it, with why. */
    stuck: { shard: number; master: NodeState; reason: string }[];
    /** Shards whose master is elsewhere already. */
    untouched: number[];
}

/** Every master in `zone` moves to its best replica outside the zone, where there is one. */
export function planZoneEvacuation(shards: ShardState[], zone: string): EvacuationPlan {
    const plan: EvacuationPlan = { moves: [], stuck: [], untouched: [] };
    for (const s of shards) {
        if (s.master.az !== zone) {
            plan.untouched.push(s.shard);
            continue;
        }
        const c = chooseReplica(s, { avoidZone: zone });
        if (c.ok) plan.moves.push({ shard: s.shard, from: s.master, to: c.replica });
        else plan.stuck.push({ shard: s.shard, master: s.master, reason: c.reason });
    }
    return plan;
}
