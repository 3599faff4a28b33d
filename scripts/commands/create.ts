/**
 * `create`: form the cluster from the topology's nodes (see scripts/redis/form.ts).
 * Idempotent and resumable; --dry-run prints the plan; --json prints NDJSON events.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { CommandContext, CommonOptions } from "../cli";
import { openPool, resolveTarget } from "../inventory";
import { formCluster, FormResult } from "../redis/form";
import { NodePool } from "../redis/pool";
import { ClusterView } from "../redis/clusterView";
import { keyOf } from "../plan/topology";
import { Topology } from "../../components/topology";

export interface CreateOptions extends CommonOptions {
    force?: boolean;
    dryRun?: boolean;
    /** ms */
    timeout?: number;
}

/**
 * Finishes or rolls back slots an interrupted move left open, before anything else
 * (scripts/redis/openSlots.ts, owned by the resharding commands). Loaded only when
 * present so create does not depend on that module being there.
 */
async function fixOpenSlotsIfAvailable(pool: NodePool, topology: Topology, ctx: CommandContext, resumeHint: string): Promise<void> {
    const here = join(__dirname, "..", "redis");
    if (!existsSync(join(here, "openSlots.ts")) && !existsSync(join(here, "openSlots.js"))) return;
    type Fix = (pool: NodePool, view: ClusterView, ctx: CommandContext, opts: { op?: string; resumeHint?: string }) => Promise<unknown[]>;
    const mod = (await import(join(here, "openSlots"))) as { fixOpenSlots?: Fix };
    if (typeof mod.fixOpenSlots !== "function") return;
    const view = await ClusterView.read(pool, topology.nodes.map(keyOf));
    if (view.openSlots().length === 0) return;
    await mod.fixOpenSlots(pool, view, ctx, { op: "create", resumeHint });
}

export async function run(opts: CreateOptions, ctx: CommandContext): Promise<number> {
    const target = await resolveTarget(opts);
    const pool = openPool(target, { connectTimeoutMs: opts.connectTimeout });
    try {
        const again = `npm run cluster -- create ${opts.stack ? `--stack ${opts.stack}` : `--topology ${opts.topology}`}`;
        const resumeHint = `run the same create command again (${again}): it reads the live state and does only the missing steps`;
        if (!opts.dryRun) await fixOpenSlotsIfAvailable(pool, target.topology, ctx, resumeHint);
        const r: FormResult = await formCluster(pool, target.topology, {
            force: opts.force,
            dryRun: opts.dryRun,
            timeoutMs: opts.timeout ?? 60000,
            signal: ctx.signal,
            out: ctx.out,
            resumeHint,
        });
        const summary = {
            alreadyFormed: r.alreadyFormed,
            dryRun: r.dryRun,
            durationMs: r.durationMs,
            masters: r.plan.shards.map((s) => s.master.name),
            skipped: r.skipped,
            warnings: r.warnings,
        };
        if (ctx.out.json) ctx.out.event("result", summary);
        else if (!r.dryRun) ctx.out.info(`next: npm run cluster -- status ${opts.stack ? `--stack ${opts.stack}` : `--topology ${opts.topology}`}`);
        return 0;
    } finally {
        await pool.close();
    }
}
