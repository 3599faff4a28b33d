/**
 * `autoscale --stack NAME [--once] [--dry-run] [--json] [--state-file FILE]`:
 * the policy of the stack config's `autoscale` block, applied to a stack on AWS.
 * Each round reads every node (the monitoring collector), decides
 * (scripts/plan/autoscale.ts) and, when a change is due, changes the stack's
 * config and runs `pulumi up` through the Automation API and `scale`, in the
 * order scripts/autoscale/apply.ts explains. Runs until Ctrl-C, or once.
 *
 * Without `autoscale.enabled: true` in the stack config it decides and prints
 * but never acts (as --dry-run), so it can be watched before it is trusted.
 */
import { join, resolve } from "node:path";
import type { CommandContext, CommonOptions } from "./context";
import { UsageError } from "../errors";
import { applyOnStack, automationWorkspace, StackWorkspace } from "../autoscale/apply";
import { AutoscaleEnv, autoscaleLoop } from "../autoscale/run";
import { openPool, resolveTarget } from "../inventory";
import { Output } from "../output";
import { Shape } from "../plan/autoscale";
import { Lease, withLease } from "../redis/lease";
import { declaredTopology, run as runScale } from "./scale";

export interface AutoscaleOptions extends CommonOptions {
    once?: boolean;
    dryRun?: boolean;
    stateFile?: string;
    interval?: number;
}

/** Sub-command output folded into log lines on stderr, so stdout keeps one line per decision. */
export function logOutput(out: Output, prefix: string, json = false): Output {
    return {
        // json: true makes a callee that prints text to stdout itself (local mode's up) go through result() instead.
        json,
        info: (l) => out.info(`${prefix}${l}`),
        warn: (l) => out.warn(`${prefix}${l}`),
        event: (_n, _f, h) => { if (h) out.info(`${prefix}${h}`); },
        result: (_d, text) => { const first = text.split("\n")[0]; if (first) out.info(`${prefix}${first}`); },
    };
}

/**
 * The AWS environment of the loop. The nodes come from the target options (--stack:
 * the stack's outputs, read afresh each time, so the nodes `pulumi up` just created
 * are seen), the policy and the declared shape from the workspace.
 */
export function stackEnv(opts: AutoscaleOptions, ctx: CommandContext, ws: StackWorkspace): AutoscaleEnv {
    const targetOpts = { ...opts, json: false, quiet: opts.quiet };
    return {
        where: `stack ${ws.stack}`,
        historyFile: resolve(opts.stateFile ?? join(resolve(__dirname, "..", ".."), ".autoscale", `${ws.stack}.json`)),
        async readConfig() {
            const config = await ws.readConfig();
            return { config, shape: { shards: config.shards, replicas: config.replicasPerShard } };
        },
        async connect(shape: Shape) {
            const target = await resolveTarget(targetOpts);
            return { topology: declaredTopology(target.topology, shape.shards, shape.replicas), pool: openPool(target, { connectTimeoutMs: opts.connectTimeout }) };
        },
        async apply(d, shape) {
            await applyOnStack<Lease>(d, shape, {
                workspace: ws,
                log: (l) => ctx.out.info(l),
                scale: async (to, lease) => {
                    const code = await runScale({ ...targetOpts, yes: true, shards: to.shards, replicas: to.replicas, heldLease: lease }, { out: logOutput(ctx.out, "scale: "), signal: ctx.signal });
                    if (code) throw new Error(`scale exited with ${code}`);
                },
                withLease: async (fn) => {
                    // Seeds: the nodes before the change. The pool stays open for the whole action:
                    // the lease renews through it (every 20 s) during pulumi up and scale.
                    const target = await resolveTarget(targetOpts);
                    const pool = openPool(target, { connectTimeoutMs: opts.connectTimeout });
                    try {
                        return await withLease(pool, target.topology, { command: "autoscale", out: ctx.out, takeOver: opts.takeOverLease }, fn);
                    } finally {
                        await pool.close();
                    }
                },
            });
        },
    };
}

export async function run(opts: AutoscaleOptions, ctx: CommandContext): Promise<number> {
    if (!opts.stack) throw new UsageError("autoscale needs --stack NAME: it changes the stack's config and runs pulumi up (for a local cluster: npm run local -- autoscale)");
    const ws = await automationWorkspace(opts.stack);
    return autoscaleLoop(stackEnv(opts, ctx, ws), { once: opts.once, dryRun: opts.dryRun, intervalSeconds: opts.interval, signal: ctx.signal }, ctx.out);
}
