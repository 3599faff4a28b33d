/**
 * Shared start of the day-2 commands: resolve the target, open the pool, read
 * every node (redis/members.ts), wait for a failover under way to settle, take the
 * cluster lease, and finish or roll back open slots before anything else
 * (redis/openSlots.ts).
 */
import type { CommandContext } from "./context";
import { openPool, resolveTarget, Target, TargetOptions } from "../inventory";
import { ClusterView, waitUntil } from "../redis/clusterView";
import { fixOpenSlots, OpenSlotFix } from "../redis/openSlots";
import { acquireLease, Lease } from "../redis/lease";
import { keyOfNode, readCluster, refuseSeveralClusters, unsettled } from "../redis/members";
import { RefusedError, StepError, WaitTimeoutError } from "../errors";
import { NodeKey, NodePool } from "../redis/pool";
import type { Topology } from "../../components/topology";

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
        }, { timeoutMs, intervalMs: 200, maxIntervalMs: 500, what: "the cluster to settle", signal: ctx.signal,
            op, state: "nothing was changed", resume: `rerun \`${op}\`: it waits for the cluster to settle first`,
        });
        ctx.out.info(`${op}: the cluster settled after ${Math.round((Date.now() - t0) / 100) / 10} s`);
        return v;
    } catch (e) {
        if (!(e instanceof WaitTimeoutError)) throw e;
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
