/**
 * The formation planner behind `create` (and scale's join of new nodes): what the
 * probes of every node say is unsafe, what is already done, and which steps are
 * left. Pure: the probes come in as data (scripts/redis/form.ts reads them and
 * executes the steps); no ioredis, no I/O.
 */
import { parseEngineVersion } from "../../components/bootstrap/template";
import { Topology, TopologyNode } from "../../components/topology";
import { ClusterNodeInfo } from "./clusterNodes";
import { formatRanges, fromRanges, SLOT_COUNT, SlotRange, toRanges } from "./slots";
import { keyOf, TopologyPlan } from "./topology";

type NodeKey = string;

/** What one node says about itself before anything is changed. */
export interface NodeProbe {
    node: TopologyNode;
    key: NodeKey;
    reachable: boolean;
    error?: string;
    /** INFO server redis_version (Valkey reports its Redis compatibility version here too). */
    version?: string;
    clusterEnabled?: boolean;
    dbsize?: number;
    /** The node's own CLUSTER NODES. */
    nodes: ClusterNodeInfo[];
    myself?: ClusterNodeInfo;
    /** CLUSTER INFO. */
    info: Record<string, string>;
    /** INFO replication. */
    replication: Record<string, string>;
    /** CONFIG GET cluster-node-timeout (undefined when CONFIG is refused). */
    nodeTimeoutMs?: number;
}

/** CLUSTER ADDSLOTSRANGE and CLUSTER SHARDS exist from Redis 7.0 (Valkey reports redis_version 7.2.x). */
export function hasAddSlotsRange(version: string | undefined): boolean {
    try {
        return parseEngineVersion(version ?? "")[0] >= 7;
    } catch {
        return false; // unreadable: the command every version has
    }
}

/**
 * The commands that assign `ranges` on a node of `version`: CLUSTER ADDSLOTSRANGE
 * (7.0+, up to 1000 ranges per command) or CLUSTER ADDSLOTS in batches of 2000 slots
 * (6.2), meant to be pipelined.
 */
export function slotCommands(ranges: SlotRange[], version: string | undefined): (string | number)[][] {
    const out: (string | number)[][] = [];
    if (hasAddSlotsRange(version)) {
        for (let i = 0; i < ranges.length; i += 1000) out.push(["CLUSTER", "ADDSLOTSRANGE", ...ranges.slice(i, i + 1000).flatMap((r) => [r.start, r.end])]);
    } else {
        const slots = fromRanges(ranges);
        for (let i = 0; i < slots.length; i += 2000) out.push(["CLUSTER", "ADDSLOTS", ...slots.slice(i, i + 2000)]);
    }
    return out;
}

export interface LiveState {
    /** Refusals: each names the node, the reason and how to proceed. Empty when create may go on. */
    refusals: string[];
    /** Problems --force accepts (unreachable nodes skipped, stale identities ignored). */
    forceable: string[];
    /** Nodes create works with (reachable, cluster mode on). */
    usable: NodeProbe[];
    /** Topology keys create leaves alone (unreachable, with --force). */
    skipped: NodeKey[];
    /** Node id by topology key, for every node whose id is known (its own, or as others know it). */
    idOf: Map<NodeKey, string>;
    /** Keys that own slots now, per any node's view. */
    pinnedMasters: Set<NodeKey>;
    /** Keys that are replicas now: key -> master id. */
    replicaOf: Map<NodeKey, string>;
    /** Slot -> owner id as known by anyone (undefined: nobody owns it). */
    owners: (string | undefined)[];
}

const who = (p: { node: TopologyNode; key: NodeKey }) => `${p.node.name} (${p.key})`;

/** Judges the probes: what is unsafe, what is already done. Pure. */
export function assessLive(probes: NodeProbe[], topology: Topology, opts: { force?: boolean } = {}): LiveState {
    const refusals: string[] = [];
    const forceable: string[] = [];
    const topoKeys = new Set(topology.nodes.map(keyOf));
    const idOf = new Map<NodeKey, string>();
    for (const p of probes) if (p.myself) idOf.set(p.key, p.myself.id);
    // Nodes we cannot reach: their id as the others know it.
    for (const p of probes) for (const n of p.nodes) if (!n.myself && topoKeys.has(n.key) && !idOf.has(n.key) && !n.flags.includes("handshake")) {
        const target = probes.find((q) => q.key === n.key);
        if (!target?.reachable) idOf.set(n.key, n.id);
    }
    const keyOfId = new Map([...idOf].map(([k, id]) => [id, k]));

    const usable: NodeProbe[] = [];
    const skipped: NodeKey[] = [];
    for (const p of probes) {
        if (!p.reachable) {
            const auth = /WRONGPASS|NOAUTH|invalid username-password|NOPERM/i.test(p.error ?? "");
            const msg = auth
                ? `${who(p)}: authentication failed (${p.error}). Give the admin user's credentials: --user/--password, REDISCLI_AUTH, the stack's outputs or credentials.json beside the topology file`
                : `${who(p)}: unreachable (${p.error}). Check that redis-server runs there and that this machine can reach it (security group, or a tunnel with --nat-map); --force skips unreachable nodes when every shard keeps a reachable node, and a later create attaches them`;
            (auth ? refusals : forceable).push(msg);
            skipped.push(p.key);
            continue;
        }
        if (!p.clusterEnabled) {
            refusals.push(`${who(p)}: cluster mode is off (cluster-enabled no). Start it with cluster-enabled yes (the bootstrap's redis.conf does); is this the right address?`);
            continue;
        }
        usable.push(p);
    }

    // Strangers and stale identities.
    for (const p of usable) {
        const strangers = p.nodes.filter((n) => !n.myself && !n.flags.includes("handshake") && !topoKeys.has(n.key));
        if (strangers.length) {
            refusals.push(`${who(p)}: already knows ${strangers.length} node(s) outside this topology (${strangers.slice(0, 3).map((n) => `${n.key || "no address"} ${n.id.slice(0, 8)}${n.failing ? " failing" : ""}`).join(", ")}${strangers.length > 3 ? ", …" : ""}), so it belongs to another cluster. ` +
                `If it should join this one and holds no data: redis-cli -h ${p.node.host} -p ${p.node.port} CLUSTER RESET HARD; if those are dead former members of this cluster, remove them with the forget command; otherwise fix the topology`);
        }
        for (const n of p.nodes) {
            if (n.myself || n.flags.includes("handshake") || !topoKeys.has(n.key)) continue;
            const live = probes.find((q) => q.key === n.key)?.myself?.id;
            if (live && live !== n.id) {
                forceable.push(`${who(p)}: knows an old identity ${n.id.slice(0, 8)} for ${n.key}, where node ${live.slice(0, 8)} answers now (was the node replaced?). Remove the old id with the forget command, or pass --force to ignore it`);
            }
        }
    }

    // Slot ownership as anyone knows it; two owners of one slot are a conflict.
    const owners: (string | undefined)[] = new Array(SLOT_COUNT).fill(undefined);
    const conflicts = new Map<string, number>();
    for (const p of usable) for (const n of p.nodes) {
        if (n.flags.includes("handshake")) continue;
        for (const r of n.slots) for (let s = r.start; s <= r.end; s++) {
            const o = owners[s];
            if (o === undefined) owners[s] = n.id;
            else if (o !== n.id) {
                const pair = [o, n.id].sort().join(" and ");
                conflicts.set(pair, (conflicts.get(pair) ?? 0) + 1);
            }
        }
    }
    for (const [pair, count] of conflicts) {
        const named = pair.split(" and ").map((id) => keyOfId.get(id) ?? id.slice(0, 8)).join(" and ");
        refusals.push(`${named} both claim ${count} slot(s): these nodes were formed into different clusters. Decide which keeps the slots and CLUSTER RESET the other (when it holds no keys)`);
    }
    const pinnedMasters = new Set<NodeKey>();
    for (const id of new Set(owners)) if (id && keyOfId.has(id)) pinnedMasters.add(keyOfId.get(id)!);
    const replicaOf = new Map<NodeKey, string>();
    for (const p of usable) if (p.myself?.role === "replica" && p.myself.masterId) replicaOf.set(p.key, p.myself.masterId);

    // Keys are fine only where they belong: on a master that owns slots, or on an attached replica.
    for (const p of usable) {
        if ((p.dbsize ?? 0) > 0 && !pinnedMasters.has(p.key) && !replicaOf.has(p.key)) {
            refusals.push(`${who(p)}: holds ${p.dbsize} key(s) but is not part of a cluster. create only forms clusters from empty nodes, so no data is dropped or served from the wrong slot (--force does not change this). ` +
                `Move the data elsewhere, or if it is disposable: redis-cli -h ${p.node.host} -p ${p.node.port} FLUSHALL`);
        }
    }
    if (!opts.force) refusals.push(...forceable);
    return { refusals, forceable, usable, skipped, idOf, pinnedMasters, replicaOf, owners };
}

export interface FormSteps {
    epochs: { key: NodeKey; name: string; epoch: number }[];
    slots: { key: NodeKey; name: string; ranges: SlotRange[] }[];
    /** anchor (or own master, for replicas) each node MEETs. */
    meets: { key: NodeKey; name: string; to: TopologyNode }[];
    replicate: { key: NodeKey; name: string; master: TopologyNode }[];
    /** Replicas attached to some master already; left alone. */
    attached: { key: NodeKey; name: string; masterId: string }[];
    anchor?: TopologyNode;
}

/** Which steps are still to do, given the plan and the live state. Pure. */
export function planSteps(plan: TopologyPlan, live: LiveState): FormSteps {
    const usable = new Map(live.usable.map((p) => [p.key, p]));
    const steps: FormSteps = { epochs: [], slots: [], meets: [], replicate: [], attached: [] };

    // 1. Epochs: distinct, above anything the nodes already use.
    let next = 1;
    for (const p of live.usable) {
        next = Math.max(next, Number(p.info.cluster_current_epoch ?? 0) + 1);
        for (const n of p.nodes) next = Math.max(next, n.configEpoch + 1);
    }
    for (const p of live.usable) {
        if (p.nodes.length === 1 && p.myself && p.myself.configEpoch === 0) steps.epochs.push({ key: p.key, name: p.node.name, epoch: next++ });
    }

    // 2. Slots nobody owns yet, to the planned master of the range.
    for (const s of plan.shards) {
        const missing = fromRanges(s.slots).filter((slot) => live.owners[slot] === undefined);
        if (missing.length) steps.slots.push({ key: keyOf(s.master), name: s.master.name, ranges: toRanges(missing) });
    }

    // 3. Meet: the anchor is the node that knows the most nodes (a half-formed cluster's core).
    const anchorProbe = [...live.usable].sort((a, b) => b.nodes.length - a.nodes.length)[0];
    steps.anchor = anchorProbe?.node;
    const knows = (p: { nodes: ClusterNodeInfo[] }, key: NodeKey) => {
        const id = live.idOf.get(key);
        return p.nodes.some((n) => !n.flags.includes("handshake") && (id ? n.id === id : n.key === key));
    };
    const masterOf = new Map<NodeKey, TopologyNode>();
    for (const s of plan.shards) for (const r of s.replicas) masterOf.set(keyOf(r), s.master);
    for (const p of live.usable) {
        if (anchorProbe && p.key !== anchorProbe.key && !knows(p, anchorProbe.key)) steps.meets.push({ key: p.key, name: p.node.name, to: anchorProbe.node });
        const m = masterOf.get(p.key);
        if (m && keyOf(m) !== anchorProbe?.key && usable.has(keyOf(m)) && !live.replicaOf.has(p.key) && !knows(p, keyOf(m))) {
            steps.meets.push({ key: p.key, name: p.node.name, to: m });
        }
    }

    // 4. Replicas not attached yet.
    for (const s of plan.shards) for (const r of s.replicas) {
        const k = keyOf(r);
        if (!usable.has(k)) continue;
        const m = live.replicaOf.get(k);
        if (m) steps.attached.push({ key: k, name: r.name, masterId: m });
        else steps.replicate.push({ key: k, name: r.name, master: s.master });
    }
    return steps;
}

/** Human lines describing the plan and the steps still to do. */
export function describePlan(plan: TopologyPlan, steps: FormSteps, owned: Map<NodeKey, SlotRange[]> = new Map()): string[] {
    const lines: string[] = [];
    for (const s of plan.shards) {
        // A master that owns slots already keeps what it owns (after scaling, not the planned range): show that.
        const has = owned.get(keyOf(s.master)) ?? [];
        const assign = steps.slots.find((x) => x.key === keyOf(s.master))?.ranges ?? [];
        const slots = has.length ? `slots ${formatRanges(has)}${assign.length ? `, to assign ${formatRanges(assign)}` : ""}` : `slots ${formatRanges(s.slots) || "none"}`;
        lines.push(`shard ${s.shard}: master ${s.master.name} ${keyOf(s.master)} ${s.master.az}, ${slots}`);
        for (const r of s.replicas) lines.push(`  replica ${r.name} ${keyOf(r)} ${r.az}`);
    }
    const todo = [
        steps.epochs.length ? `set config epochs on ${steps.epochs.length} node(s)` : "",
        steps.slots.length ? `assign ${steps.slots.reduce((n, s) => n + fromRanges(s.ranges).length, 0)} slot(s) on ${steps.slots.length} master(s)` : "",
        steps.meets.length ? `${steps.meets.length} MEET(s) (anchor ${steps.anchor?.name})` : "",
        steps.replicate.length ? `attach ${steps.replicate.length} replica(s)` : "",
    ].filter(Boolean);
    lines.push(todo.length ? `to do: ${todo.join(", ")}` : "to do: nothing but waiting for convergence");
    return lines;
}
