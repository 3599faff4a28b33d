/**
 * `failover`: a controlled promotion of a replica.
 *   --shard N    the shard's best replica (in sync, most caught up)
 *   --node X     this replica
 *   --zone AZ    every master in AZ moves to a replica outside it, one shard at a
 *                time (simultaneous elections would compete for the same votes);
 *                shards that cannot move are listed
 *   --force / --takeover  only when the master is gone; consequences are printed
 */
import type { CommandContext, CommonOptions } from "./context";
import { RefusedError, StepError, UsageError } from "../errors";
import { fmtDuration } from "../output";
import { chooseReplica, planZoneEvacuation, ReplicaState, ShardState } from "../plan/failover";
import { FailoverMode, FailoverRetry, readShards, runFailover } from "../redis/failover";
import { keyOfNode } from "../redis/members";
import { openSession } from "./session";

export interface FailoverOptions extends CommonOptions {
    shard?: number;
    node?: string;
    zone?: string;
    force?: boolean;
    takeover?: boolean;
    timeout?: number;
}

const CONSEQUENCES: Record<Exclude<FailoverMode, "default">, string> = {
    force: "FORCE does not wait for the old master: writes it acknowledged but had not yet replicated are lost, and if it comes back it rejoins as a replica and drops them.",
    takeover: "TAKEOVER skips the vote of the other masters: the replica raises the epoch on its own. If the old master is in fact alive on the other side of a network split, both accept writes until the split heals, and the old side's writes are then lost.",
};

const label = (n: { name?: string; key: string }) => (n.name ? `${n.name} (${n.key})` : n.key);

/** Tells the user why a failover takes longer: Redis aborted it, the tool retries (runFailover). */
const retryNotice = (ctx: CommandContext, shard: number, to: string) => ({
    onRetry: (r: FailoverRetry) => ctx.out.event("retry", { shard, to, waitMs: r.waitMs, reason: r.reason },
        `shard ${shard}: ${r.reason}; sending it again ${r.waitMs < 100 ? "now" : `in ${fmtDuration(r.waitMs)}`}, once Redis may accept it`),
});

export async function run(opts: FailoverOptions, ctx: CommandContext): Promise<number> {
    const targets = [opts.shard !== undefined, !!opts.node, !!opts.zone].filter(Boolean).length;
    if (targets !== 1) throw new UsageError("failover: name exactly one of --shard N, --node <replica> or --zone <az>");
    if (opts.force && opts.takeover) throw new UsageError("failover: --force and --takeover exclude each other (--takeover is the stronger one)");
    if (opts.zone && (opts.force || opts.takeover)) throw new UsageError("failover --zone moves healthy masters only; --force/--takeover are for a single shard whose master is gone");
    const mode: FailoverMode = opts.takeover ? "takeover" : opts.force ? "force" : "default";
    const timeoutMs = opts.timeout ?? 30000;

    const { target, pool, view } = await openSession(opts, ctx, "failover");
    try {
        const shards = await readShards(pool, view, target.topology);
        const allKeys = view.reachable().map((v) => v.key);

        if (opts.zone) {
            const zones = new Set(target.topology.nodes.map((n) => n.az));
            if (!zones.has(opts.zone)) throw new UsageError(`failover --zone ${opts.zone}: no node of the topology is in that zone (zones: ${[...zones].sort().join(", ")})`);
            const plan = planZoneEvacuation(shards, opts.zone);
            ctx.out.event("zone-plan", {
                zone: opts.zone, moves: plan.moves.map((m) => ({ shard: m.shard, from: m.from.key, to: m.to.key })), stuck: plan.stuck.map((s) => ({ shard: s.shard, master: s.master.key, reason: s.reason })),
            }, [
                `zone ${opts.zone}: ${plan.moves.length} master(s) to move, ${plan.stuck.length} cannot move, ${plan.untouched.length} already elsewhere`,
                ...plan.moves.map((m) => `  shard ${m.shard}: ${label(m.from)} → ${label(m.to)} (${m.to.az ?? "?"})`),
            ].join("\n"));
            const done: { shard: number; from: string; to: string; ms: number }[] = [];
            const failed: { shard: number; reason: string }[] = plan.stuck.map((s) => ({ shard: s.shard, reason: s.reason }));
            for (const m of plan.moves) {
                if (ctx.signal.aborted) {
                    failed.push({ shard: m.shard, reason: "interrupted before its turn" });
                    continue;
                }
                try {
                    const ms = await runFailover(pool, m.to, m.from.id, "default", allKeys, timeoutMs, ctx.signal, retryNotice(ctx, m.shard, m.to.key));
                    done.push({ shard: m.shard, from: m.from.key, to: m.to.key, ms });
                    ctx.out.event("promoted", { shard: m.shard, from: m.from.key, to: m.to.key, ms }, `shard ${m.shard}: ${label(m.to)} is master (${fmtDuration(ms)})`);
                } catch (e) {
                    failed.push({ shard: m.shard, reason: (e as Error).message });
                }
            }
            const text = [
                `zone ${opts.zone}: ${done.length} master(s) moved out${failed.length ? `, ${failed.length} shard(s) could not move:` : ""}`,
                ...failed.map((f) => `  shard ${f.shard}: ${f.reason}`),
            ].join("\n");
            ctx.out.result({ ok: failed.length === 0, zone: opts.zone, moved: done, couldNotMove: failed }, text);
            return failed.length ? 1 : 0;
        }

        // One shard: by --shard or by the replica named with --node.
        let shard: ShardState | undefined;
        let replica: ReplicaState | undefined;
        if (opts.node) {
            const want = opts.node;
            const topoNode = target.topology.nodes.find((n) => n.name === want || keyOfNode(n) === want);
            const key = topoNode ? keyOfNode(topoNode) : want;
            for (const s of shards) {
                const r = s.replicas.find((x) => x.key === key || x.id === want);
                if (r) [shard, replica] = [s, r];
                if (s.master.key === key || s.master.id === want) throw new RefusedError(`failover --node ${want}: ${label(s.master)} is already the master of shard ${s.shard}`);
            }
            if (!shard || !replica) throw new UsageError(`failover --node ${want}: no replica by that name, address or id in the cluster`);
        } else {
            shard = shards.find((s) => s.shard === opts.shard);
            if (!shard) throw new UsageError(`failover --shard ${opts.shard}: no master owning slots belongs to that shard (shards: ${shards.map((s) => s.shard).join(", ")})`);
        }

        const masterGone = !shard.master.healthy;
        if (mode !== "default" && !masterGone) {
            throw new RefusedError(`failover --${mode}: the master ${label(shard.master)} is alive; a forced promotion could lose writes it has not replicated. Use a plain failover (without --${mode}).`);
        }
        if (mode === "default" && masterGone) {
            throw new RefusedError(`failover: the master ${label(shard.master)} of shard ${shard.shard} is down, so it cannot hand over. If its replicas did not take over by themselves, rerun with --force (${CONSEQUENCES.force})`);
        }
        if (!replica) {
            const c = chooseReplica(shard, { masterGone });
            if (!c.ok) throw new RefusedError(`failover: shard ${shard.shard} cannot fail over: ${c.reason}`);
            replica = c.replica;
        } else if (!replica.healthy || (!masterGone && !replica.linkUp)) {
            throw new RefusedError(`failover --node ${opts.node}: ${label(replica)} is ${!replica.healthy ? "down" : "not in sync with its master (replication link down)"}`);
        }
        if (mode === "force") {
            // FORCE still needs the votes of a majority of the masters that own slots (the dead one
            // counts in the total, as in Redis' needed_quorum = size / 2 + 1). Without them the
            // election silently fails and we would only learn it at the timeout.
            const needed = Math.floor(shards.length / 2) + 1;
            const voters = shards.filter((s) => s.master.healthy);
            if (voters.length < needed) {
                throw new RefusedError(`failover --force: a forced promotion still needs the votes of a majority of the masters that own slots (${needed} of ${shards.length}), ` +
                    `and only ${voters.length} answer${voters.length === 1 ? "s" : ""} from here${voters.length ? ` (${voters.map((s) => label(s.master)).join(", ")})` : ""}; nothing was sent. ` +
                    `If the other masters are really gone, rerun with --takeover (${CONSEQUENCES.takeover})`);
            }
        }
        if (mode !== "default") ctx.out.warn(CONSEQUENCES[mode]);
        ctx.out.info(`shard ${shard.shard}: promoting ${label(replica)}${replica.az ? ` (${replica.az})` : ""}, master now ${label(shard.master)}${mode !== "default" ? ` [${mode.toUpperCase()}]` : ""}`);
        let ms: number;
        try {
            ms = await runFailover(pool, replica, shard.master.id, mode, allKeys, timeoutMs, ctx.signal, retryNotice(ctx, shard.shard, replica.key));
        } catch (e) {
            throw new StepError({
                op: "failover", step: "wait-promotion", node: replica.key, cause: e,
                state: `CLUSTER FAILOVER${mode !== "default" ? ` ${mode.toUpperCase()}` : ""} was sent; the promotion was not seen everywhere`,
                resume: "check with `status`; a plain failover that Redis aborted changed nothing and can be retried",
            });
        }
        ctx.out.result({ ok: true, shard: shard.shard, from: shard.master.key, to: replica.key, mode, ms },
            `shard ${shard.shard}: ${label(replica)} is the master, seen by every node after ${fmtDuration(ms)}`);
        return 0;
    } finally {
        await pool.close();
    }
}
