/**
 * `rebalance`: even out slots over the masters (by topology weight) without a
 * topology change. The plan → check → move sequence is redis/rebalance.ts, which
 * `scale` shares.
 */
import type { CommandContext, CommonOptions } from "./context";
import { RefusedError } from "../errors";
import { keyOfNode } from "../redis/members";
import { mastersFromView, namesOf, planAndMove } from "../redis/rebalance";
import { openSession } from "./session";

export interface RebalanceOptions extends CommonOptions {
    dryRun?: boolean;
    threshold?: number;
    parallel?: number;
    batch?: number;
    bigKeyMb?: number;
}

export async function run(opts: RebalanceOptions, ctx: CommandContext): Promise<number> {
    const session = await openSession(opts, ctx, "rebalance");
    const { target, pool, view } = session;
    ctx = { ...ctx, signal: session.signal };
    try {
        const unhealthy = view.unreachable().filter((v) => target.topology.nodes.some((n) => keyOfNode(n) === v.key));
        const failing = [...view.knownNodes().values()].filter((n) => n.role === "master" && n.failing && n.slots.length > 0);
        if (failing.length) {
            throw new RefusedError(`rebalance: master(s) ${failing.map((n) => n.key).join(", ")} are failing and own slots; fail over (failover --shard N --force) or bring them back first`);
        }
        if (unhealthy.length) ctx.out.warn(`unreachable topology node(s): ${unhealthy.map((v) => v.key).join(", ")} (left out)`);
        const masters = mastersFromView(view, target.topology);
        const outcome = await planAndMove(pool, view, masters, {
            op: "rebalance", dryRun: opts.dryRun, thresholdPct: opts.threshold, parallel: opts.parallel, batchKeys: opts.batch, bigKeyMb: opts.bigKeyMb,
            names: namesOf(target.topology),
        }, ctx);
        const doc = {
            ok: true, dryRun: !!opts.dryRun, slotsMoved: outcome.result?.slots ?? 0, keysMoved: outcome.result?.keys ?? 0,
            planned: { slots: outcome.plan.moves.length, keys: outcome.keysToMove }, ms: outcome.result?.ms ?? 0,
        };
        ctx.out.result(doc, opts.dryRun
            ? `dry run: ${outcome.plan.moves.length} slot(s) and ${outcome.keysToMove} key(s) would move; nothing changed`
            : outcome.plan.moves.length ? `rebalanced: ${doc.slotsMoved} slot(s), ${doc.keysMoved} key(s) moved` : "balanced: nothing to do");
        return 0;
    } finally {
        await pool.close();
    }
}
