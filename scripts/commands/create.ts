/**
 * `create`: form the cluster from the topology's nodes (see scripts/redis/form.ts).
 * Idempotent and resumable; --dry-run prints the plan; --json prints NDJSON events.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { CommandContext, CommonOptions } from "./context";
import { validateDesiredNodeSettings } from "../../components/bootstrap/nodeSettings";
import { automationOutputs, clusterOutputsOf, openPool, resolveTarget, Target } from "../inventory";
import { formCluster, FormResult } from "../redis/form";
import { NodePool } from "../redis/pool";
import { ClusterView } from "../redis/clusterView";
import { fixOpenSlots } from "../redis/openSlots";
import { acquireLease } from "../redis/lease";
import { leaseMode } from "./session";
import { keyOf } from "../plan/topology";
import { Topology } from "../../components/topology";

export interface CreateOptions extends CommonOptions {
    force?: boolean;
    dryRun?: boolean;
    /** ms */
    timeout?: number;
}

/**
 * Finishes or rolls back slots an interrupted move left open (scripts/redis/openSlots.ts),
 * before anything else, as every command of the tool does.
 */
async function fixOpenSlotsFirst(pool: NodePool, topology: Topology, ctx: CommandContext, resumeHint: string, takeOverLease?: boolean): Promise<void> {
    const view = await ClusterView.read(pool, topology.nodes.map(keyOf));
    // A cluster that serves its slots holds the lease (docs/lease.md); nodes that form no
    // cluster yet have nowhere to store it, so forming one from scratch goes on without.
    if (view.reachable().some((v) => v.info.cluster_state === "ok")) {
        const lease = await acquireLease(pool, topology.nodes.map(keyOf), { command: "create", out: ctx.out, takeOver: takeOverLease, mode: leaseMode("create", {}) });
        pool.onClose(() => lease.release());
    }
    if (view.openSlots().length === 0) return;
    await fixOpenSlots(pool, view, ctx, { op: "create", resumeHint });
}

/**
 * The cluster-node-timeout the nodes are configured with: the stack's `nodeSettings`
 * output (what the nodes render redis.conf from), or local mode's settings.json beside
 * the topology. Undefined when neither is there (a hand-written topology): the join then
 * restores a node an interrupted run left shortened to what the other nodes run.
 */
export function configuredNodeTimeoutMs(target: Target, stackOutputs?: Record<string, unknown>): number | undefined {
    try {
        if (stackOutputs?.nodeSettings !== undefined) return validateDesiredNodeSettings(stackOutputs.nodeSettings, "stack output nodeSettings").settings.clusterNodeTimeoutMs;
        const file = target.stateDir ? join(target.stateDir, "settings.json") : undefined; // reconfigure.ts SETTINGS_FILE
        if (!file || !existsSync(file)) return undefined;
        return validateDesiredNodeSettings(JSON.parse(readFileSync(file, "utf8")), file).settings.clusterNodeTimeoutMs;
    } catch {
        return undefined; // unreadable: reconfigure names the problem; the join falls back on the other nodes
    }
}

export async function run(opts: CreateOptions, ctx: CommandContext): Promise<number> {
    let stackOutputs: Record<string, unknown> | undefined;
    const read = automationOutputs(opts.projectDir ? resolve(opts.projectDir) : undefined);
    const target = await resolveTarget(opts, {
        readStackOutputs: async (s) => {
            const raw = await read(s);
            stackOutputs = clusterOutputsOf(raw, opts);
            return raw;
        },
    });
    const pool = openPool(target, { connectTimeoutMs: opts.connectTimeout });
    try {
        const again = `npm run cluster -- create ${opts.stack ? `--stack ${opts.stack}` : `--topology ${opts.topology}`}`;
        const resumeHint = `run the same create command again (${again}): it reads the live state and does only the missing steps`;
        if (!opts.dryRun) await fixOpenSlotsFirst(pool, target.topology, ctx, resumeHint, opts.takeOverLease);
        const r: FormResult = await formCluster(pool, target.topology, {
            force: opts.force,
            dryRun: opts.dryRun,
            timeoutMs: opts.timeout ?? 60000,
            signal: ctx.signal,
            out: ctx.out,
            resumeHint,
            configuredNodeTimeoutMs: configuredNodeTimeoutMs(target, stackOutputs),
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
