/**
 * Shared start of the day-2 commands: resolve the target, open the pool, read
 * every node (the topology's and any other node the cluster knows, such as a
 * master the topology no longer declares), and finish or roll back open slots
 * before anything else (openSlots.ts).
 */
import type { CommandContext } from "../cli";
import { Topology, TopologyNode } from "../../components/topology";
import { openPool, resolveTarget, Target, TargetOptions } from "../inventory";
import { ClusterNodeInfo, slotOwners, SLOT_COUNT } from "./clusterNodes";
import { ClusterView, waitUntil } from "./clusterView";
import { fixOpenSlots, OpenSlotFix } from "./openSlots";
import { acquireLease, Lease } from "./lease";
import { RefusedError, StepError } from "../errors";
import { NodeKey, NodePool } from "./pool";

export const keyOfNode = (n: Pick<TopologyNode, "host" | "port">): NodeKey => `${n.host}:${n.port}`;

/**
 * Reads the topology's nodes, then any node they know that is not in the topology
 * (skipping nodes flagged noaddr or in handshake), so removed masters are seen too.
 */
export async function readCluster(pool: NodePool, topology: Topology, extra: NodeKey[] = []): Promise<ClusterView> {
    const keys = new Set([...topology.nodes.map(keyOfNode), ...extra]);
    let view = await ClusterView.read(pool, [...keys]);
    const more: NodeKey[] = [];
    for (const n of view.knownNodes().values()) {
        if (!keys.has(n.key) && n.host && !n.flags.includes("noaddr") && !n.flags.includes("handshake")) more.push(n.key);
    }
    if (more.length) {
        const other = await ClusterView.read(pool, more);
        view = new ClusterView(new Map([...view.views, ...other.views]));
    }
    return view;
}

/** The id of the cluster the topology's reachable nodes belong to: nodes that know at least one other node. */
export function members(view: ClusterView): Map<string, ClusterNodeInfo> {
    const out = new Map<string, ClusterNodeInfo>();
    for (const v of view.reachable()) {
        if (!v.myself) continue;
        if (v.nodes.length > 1 || v.myself.slots.length > 0) out.set(v.myself.id, v.myself);
    }
    return out;
}

/**
 * The clusters the reachable nodes belong to: nodes that know each other (directly or
 * through a common node) are one cluster. Nodes that know nobody and own nothing are in
 * none. More than one means the topology names another cluster's nodes.
 */
export function clustersOf(view: ClusterView): { keys: NodeKey[]; ids: Set<string> }[] {
    const groups: { keys: NodeKey[]; ids: Set<string> }[] = [];
    for (const v of view.reachable()) {
        if (!v.myself || (v.nodes.length <= 1 && v.myself.slots.length === 0)) continue;
        const ids = new Set(v.nodes.filter((n) => !n.flags.includes("handshake") && !n.flags.includes("noaddr")).map((n) => n.id));
        const merged = { keys: [v.key], ids };
        for (const g of groups.filter((g) => [...ids].some((id) => g.ids.has(id)))) {
            merged.keys.push(...g.keys);
            for (const id of g.ids) merged.ids.add(id);
            groups.splice(groups.indexOf(g), 1);
        }
        groups.push(merged);
    }
    return groups;
}

/** Refuses a topology whose nodes belong to two formed clusters (create refuses them too). */
export function refuseSeveralClusters(view: ClusterView, op: string): void {
    const groups = clustersOf(view);
    if (groups.length <= 1) return;
    const list = groups.map((g, i) => `  cluster ${i + 1}: ${g.keys.sort().join(", ")}`).join("\n");
    throw new RefusedError(`${op}: the topology's nodes belong to ${groups.length} different clusters (they do not know each other); nothing was changed:\n${list}\n` +
        `  A node of another cluster cannot join this one. Fix the topology, or reset a node you mean to reuse (CLUSTER RESET HARD, after moving its keys away).`);
}

/**
 * Why the members of `view` do not agree yet, or undefined when they do. Slots open on
 * some node are left out: a node importing a slot keeps its old owner for it whatever
 * gossip says (cluster.c clusterUpdateSlotsConfigWith), so after the source of a move died
 * and its replica took over, the importing node disagrees, and may report
 * cluster_state:fail, until the open-slot repair clears the slot.
 */
export function unsettled(view: ClusterView): string | undefined {
    const members = view.reachable().filter((v) => v.myself && (v.nodes.length > 1 || v.myself.slots.length > 0));
    if (members.length === 0) return undefined;
    const open = new Set(view.openSlots().map((o) => o.slot));
    const withOpen = new Set(view.openSlots().map((o) => o.node));
    const notOk = members.filter((v) => v.info.cluster_state !== "ok" && !withOpen.has(v.key));
    if (notOk.length) return `cluster_state is ${notOk[0].info.cluster_state ?? "unknown"} on ${notOk.map((v) => v.key).join(", ")}`;
    const reachableIds = new Set(members.map((v) => v.myself!.id));
    const maps = members.map((v) => slotOwners(v.nodes));
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
        if (open.has(slot)) continue;
        const owner = maps[0][slot];
        if (maps.some((m) => m[slot] !== owner)) return `the nodes do not agree on the owner of slot ${slot} yet`;
        if (owner && !reachableIds.has(owner)) {
            const n = view.knownNodes().get(owner);
            return `master ${n?.key ?? owner} owns slots (${slot} and maybe more) but cannot be reached`;
        }
    }
    return undefined;
}

/**
 * Waits (up to 4 × cluster-node-timeout + 5 s) for the members to agree and serve every
 * slot through reachable masters, as after an automatic failover. Refuses, with nothing
 * changed, when they do not.
 */
async function settled(pool: NodePool, topology: Topology, view: ClusterView, ctx: CommandContext, op: string, extra: NodeKey[]): Promise<ClusterView> {
    let why = unsettled(view);
    if (!why) return view;
    let nodeTimeoutMs = 15000;
    for (const v of view.reachable()) {
        const r = (await pool.call(v.key, "CONFIG", "GET", "cluster-node-timeout").catch(() => undefined)) as string[] | undefined;
        if (r?.[1]) {
            nodeTimeoutMs = Number(r[1]);
            break;
        }
    }
    const timeoutMs = 4 * nodeTimeoutMs + 5000;
    ctx.out.info(`${op}: ${why}; waiting up to ${Math.round(timeoutMs / 1000)} s for the cluster to settle (a failover under way) before changing anything`);
    const t0 = Date.now();
    try {
        const v = await waitUntil(async () => {
            const next = await readCluster(pool, topology, extra);
            why = unsettled(next);
            return why ? undefined : next;
        }, { timeoutMs, intervalMs: 200, maxIntervalMs: 500, what: "the cluster to settle", signal: ctx.signal });
        ctx.out.info(`${op}: the cluster settled after ${Math.round((Date.now() - t0) / 100) / 10} s`);
        return v;
    } catch {
        throw new RefusedError(`${op}: the cluster has not settled after ${Math.round(timeoutMs / 1000)} s (${why}); nothing was changed. ` +
            `If a master died and no replica took over, fail over by hand first (failover --shard N --force, or --takeover without a majority), then rerun.`);
    }
}

export interface Session {
    target: Target;
    pool: NodePool;
    view: ClusterView;
    fixes: OpenSlotFix[];
    /** The cluster lease (docs/lease.md), released by `pool.close()`; undefined for a dry run. */
    lease?: Lease;
    /** Aborts on Ctrl-C or when another run took the lease over: long runs stop at a safe point. */
    signal: AbortSignal;
}

/**
 * The repairs an operator needs when the cluster is down go on without the lease when
 * it cannot be stored (they still refuse a live one): docs/lease.md.
 */
export function leaseMode(op: string, opts: { force?: boolean; takeover?: boolean }): "required" | "best-effort" {
    if (op === "forget" || op === "replicate" || op === "create") return "best-effort";
    if (op === "failover" && (opts.force || opts.takeover)) return "best-effort";
    return "required";
}

/**
 * resolveTarget + openPool + readCluster + fixOpenSlots (then a fresh view). The caller
 * closes the pool. With `dryRun`, open slots are reported and left alone.
 */
export async function openSession(
    opts: TargetOptions & {
        dryRun?: boolean; takeOverLease?: boolean; force?: boolean; takeover?: boolean;
        /**
         * A lease the caller already holds for a larger action (autoscale: config set, pulumi up
         * and scale under one lease, so no other run slips in between). The session uses it
         * instead of taking its own, and leaves its release to the caller.
         */
        heldLease?: Lease;
    },
    ctx: CommandContext, op: string, extra: NodeKey[] = [],
    /** Checks that must pass before anything changes (flushall's confirmation), given the first view. */
    hooks: {
        beforeChanges?: (s: { target: Target; pool: NodePool; view: ClusterView }) => Promise<void>;
        /** A command that changes nothing (a backup, metrics): no lease, no wait, open slots reported and left alone, as for a dry run. */
        readOnly?: boolean;
    } = {},
): Promise<Session> {
    const target = await resolveTarget(opts);
    const pool = openPool(target, { connectTimeoutMs: opts.connectTimeout });
    try {
        let view = await readCluster(pool, target.topology, extra);
        refuseSeveralClusters(view, op);
        // A failover under way (a master just died) settles first: the lease, the open-slot
        // repair and the command itself need the masters the cluster will agree on.
        // Repairs for a cluster that is down do not wait: they are how it comes back.
        if (!opts.dryRun && !hooks.readOnly && leaseMode(op, opts) === "required") view = await settled(pool, target.topology, view, ctx, op, extra);
        if (opts.dryRun || hooks.readOnly) {
            const open = new Set(view.openSlots().map((o) => o.slot));
            if (open.size) ctx.out.warn(`${open.size} slot(s) are open (MIGRATING/IMPORTING) from an interrupted move; ${hooks.readOnly ? "the next changing command finishes or rolls them back" : "without --dry-run they are finished or rolled back first"}`);
            return { target, pool, view, fixes: [], signal: ctx.signal };
        }
        await hooks.beforeChanges?.({ target, pool, view });
        // The lease comes before any change, the repair of open slots included: open slots
        // may be another run's live moves (issue 9).
        const seeds = [...new Set([...view.reachable().map((v) => v.key), ...target.topology.nodes.map(keyOfNode)])];
        let lease: Lease;
        if (opts.heldLease) {
            lease = opts.heldLease;
            if (!lease.held || lease.lost) {
                throw new RefusedError(`${op}: the cluster lease of the run that started it is no longer held (${lease.lost ?? "released"}); nothing was changed`);
            }
        } else {
            const own = await acquireLease(pool, seeds, { command: op, out: ctx.out, takeOver: opts.takeOverLease, mode: leaseMode(op, opts) });
            pool.onClose(() => own.release());
            lease = own;
        }
        const signal = AbortSignal.any([ctx.signal, lease.signal]);
        const session: Session = { target, pool, view, fixes: [], lease, signal };
        try {
            session.fixes = await fixOpenSlots(pool, view, ctx, { op, resumeHint: `rerun \`${op}\`` });
        } catch (e) {
            // An open slot whose node is dead must not block the repair that brings the cluster back.
            if (!(leaseMode(op, opts) === "best-effort" && e instanceof StepError && e.info.step === "fix-open-slots")) throw e;
            ctx.out.warn(`open slots left as they are for now (a later command finishes them): ${e.message.split("\n").slice(1, 2).join("").trim()}`);
        }
        if (session.fixes.length) {
            session.view = await readCluster(pool, target.topology, extra);
            // A node that stopped importing takes the owner gossip tells it: wait for that.
            if (leaseMode(op, opts) === "required") session.view = await settled(pool, target.topology, session.view, ctx, op, extra);
        }
        return session;
    } catch (e) {
        await pool.close();
        throw e;
    }
}

/**
 * A node the cluster knows, named by id (or a unique prefix of at least 6
 * characters), topology name, or host:port. Undefined when none matches.
 */
export function findKnownNode(arg: string, view: ClusterView, topology: Topology): ClusterNodeInfo | undefined {
    const known = [...view.knownNodes().values()];
    const topo = topology.nodes.find((n) => n.name === arg);
    const key = topo ? keyOfNode(topo) : arg;
    const byKey = known.filter((n) => n.key === key);
    if (byKey.length === 1) return byKey[0];
    if (byKey.length > 1) return byKey.find((n) => !n.failing) ?? byKey[0];
    if (/^[0-9a-f]{6,40}$/.test(arg)) {
        const byId = known.filter((n) => n.id.startsWith(arg));
        if (byId.length === 1) return byId[0];
    }
    return undefined;
}
