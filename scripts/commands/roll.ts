/**
 * `roll`: applies changes that need a node to stop (instance type, pinned AMI,
 * bootstrap, engine) one node at a time, replicas first, a controlled failover
 * before each master. Design and risks: docs/operations-roll.md.
 *
 * - AWS (`npm run cluster -- roll --stack NAME`): the stack's `pendingNodeChanges`
 *   output, read from an Automation API preview, says which nodes differ; each node
 *   is updated with `rollout = <node>` and `up --target <its instance>`.
 * - Local (`npm run local -- roll`): every node is restarted (optionally on another
 *   redis-server binary); `roll.json` in the state directory remembers each node's
 *   pid at the start, so a rerun restarts only the nodes that still run the old process.
 *
 * Both share the planner (scripts/plan/roll.ts) and the executor (scripts/redis/roll.ts).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import type { CommandContext, CommonOptions } from "./context";
import type { Topology, TopologyNode } from "../../components/topology";
import type { PendingNodeChange } from "../../components/plan/rollout";
import { CONFIG_NAMESPACE } from "../../components/config";
import { RefusedError, StepError, UsageError, WaitTimeoutError } from "../errors";
import { fmtDuration } from "../output";
import { openPool, resolveTarget, Target } from "../inventory";
import { describePlan, engineCompatVersion, engineOf, planRoll } from "../plan/roll";
import { parseInfo, waitUntil } from "../redis/clusterView";
import { keyOfNode } from "../redis/members";
import { collectStatus, evaluateStatus } from "../redis/healthReport";
import { executeRoll, NodeAction, readRollState, RollReport } from "../redis/roll";
import { acquireLease } from "../redis/lease";
import { confirmYes } from "./prompt";
import type { NodePool } from "../redis/pool";

/** The config key only `roll` sets: the one node whose instance may take the new values. */
export const ROLLOUT_KEY = `${CONFIG_NAMESPACE}:rollout`;

export interface RollOptions extends CommonOptions {
    dryRun?: boolean;
    allowUnavailableShard?: boolean;
    /** How long a node may take to come back, ms. */
    nodeTimeout?: number;
    /** Do not ask before starting (AWS). */
    yes?: boolean;
}

interface RollRun {
    pool: NodePool;
    topology: Topology;
    /** Node name -> what changes on it. */
    pending: Map<string, string[]>;
    targetVersion?: string;
    action: NodeAction;
    nodeTimeoutMs: number;
    resume: string;
    /** Asked after the plan is shown; false stops without a change. */
    confirm?: (question: string) => Promise<boolean>;
    /** Called once the plan is accepted, before the first change. */
    beforeExecute?: () => void;
    /** An earlier run was interrupted: let its last node come back before judging the cluster. */
    settle?: boolean;
}

/** For a wait whose outcome the planner judges afterwards: running out of time is not an error, Ctrl-C is. */
function timedOutIsFine(e: unknown): void {
    if (!(e instanceof WaitTimeoutError)) throw e;
}

/** Plan from the live state, print it, and (unless --dry-run) execute it; the exit code. */
async function rollCluster(r: RollRun, opts: RollOptions, ctx: CommandContext): Promise<number> {
    if (r.settle && !opts.dryRun) {
        // The node an interrupted run was updating may still be booting or syncing; a cluster that
        // stays unhealthy for the node timeout is refused below, as always.
        ctx.out.info("an earlier roll was interrupted: waiting for the cluster to be healthy before going on");
        await waitUntil(async () => (await readRollState(r.pool, r.topology)).unhealthy.length === 0,
            { timeoutMs: r.nodeTimeoutMs, signal: ctx.signal, what: "the cluster to be healthy again", intervalMs: 100, maxIntervalMs: 1000 }).catch(timedOutIsFine);
    }
    let state = await readRollState(r.pool, r.topology);
    if (state.backups.length && !opts.dryRun) {
        // A BGSAVE (a backup, a save point, a full sync's fork) is short-lived: let it finish rather than
        // refuse at once; one still running after the node timeout is refused below.
        ctx.out.info(`waiting up to ${fmtDuration(r.nodeTimeoutMs)} for the BGSAVE on ${state.backups.join(", ")} to finish before the first restart`);
        await waitUntil(async () => (state = await readRollState(r.pool, r.topology)).backups.length === 0,
            { timeoutMs: r.nodeTimeoutMs, signal: ctx.signal, what: "the running BGSAVE to finish", intervalMs: 200, maxIntervalMs: 2000 }).catch(timedOutIsFine);
    }
    const plan = planRoll({ ...state, pending: r.pending, targetVersion: r.targetVersion, allowUnavailableShard: opts.allowUnavailableShard });
    if (!plan.ok) throw new RefusedError(`roll refused; nothing was changed:\n  - ${plan.refusals.join("\n  - ")}`);
    for (const w of plan.warnings) ctx.out.warn(w);
    const updates = plan.steps.filter((s) => s.kind === "update");
    if (updates.length === 0) {
        ctx.out.result({ ok: true, nodes: [], failovers: [] }, "nothing to roll: every node runs the desired instance type, AMI and user data");
        return 0;
    }
    const lines = describePlan(plan.steps);
    ctx.out.event("plan", { steps: plan.steps, warnings: plan.warnings }, `roll: ${updates.length} node(s), one at a time (${r.action.name}):\n${lines.join("\n")}`);
    if (opts.dryRun) {
        ctx.out.result({ ok: true, dryRun: true, steps: plan.steps, warnings: plan.warnings }, "dry run: nothing was changed");
        return 0;
    }
    if (r.confirm && !(await r.confirm(`roll ${updates.length} node(s) of ${r.topology.clusterName} in this order?`))) {
        throw new RefusedError("roll not confirmed; nothing was changed");
    }
    // One changing run at a time (docs/lease.md): taken once the plan is accepted, so a refusal changes nothing.
    const lease = await acquireLease(r.pool, r.topology.nodes.map(keyOfNode), { command: "roll", out: ctx.out, takeOver: opts.takeOverLease });
    let report: RollReport;
    try {
        r.beforeExecute?.();
        const ids = new Map(state.nodes.map((n) => [n.name, n.id]));
        // A lease lost to another run stops the roll between nodes, as Ctrl-C does.
        report = await executeRoll(r.pool, r.topology, plan.steps, ids, r.action, {
            out: ctx.out, signal: AbortSignal.any([ctx.signal, lease.signal]), nodeTimeoutMs: r.nodeTimeoutMs, resume: r.resume,
        });
    } finally {
        await lease.release();
    }
    const health = evaluateStatus(await collectStatus(r.pool, r.topology));
    const text = summary(report, health.healthy, health.problems);
    ctx.out.result({ ok: health.healthy, ...report, healthy: health.healthy, problems: health.problems }, text);
    return health.healthy ? 0 : 1;
}

function summary(report: RollReport, healthy: boolean, problems: string[]): string {
    const per = report.failovers.map((f) => `  shard ${f.shard}: ${f.from} → ${f.to} in ${fmtDuration(f.ms)}`);
    return [
        `rolled ${report.nodes.length} node(s) in ${fmtDuration(report.ms)}${report.failovers.length ? `, ${report.failovers.length} failover(s):` : ""}`,
        ...per,
        healthy ? "cluster healthy" : `cluster NOT healthy afterwards:\n  - ${problems.join("\n  - ")}`,
    ].join("\n");
}

// ---------------------------------------------------------------- AWS: Automation API

/**
 * The part of an Automation API `Stack` that `roll` uses; the real one is
 * `LocalWorkspace.selectStack(...)`, tests pass a double.
 */
export interface RollStack {
    getConfig(key: string): Promise<{ value: string }>;
    setConfig(key: string, value: { value: string }): Promise<void>;
    removeConfig(key: string): Promise<void>;
    preview(opts: { onEvent: (e: EngineEvent) => void }): Promise<unknown>;
    up(opts: { target: string[]; targetDependents: boolean; replace?: string[]; onOutput?: (s: string) => void }): Promise<unknown>;
}

export async function openAutomationStack(stack: string, workDir = resolve(__dirname, "..", "..")): Promise<RollStack> {
    // Lazy: the automation API needs the Pulumi CLI, which only the AWS path uses.
    const { LocalWorkspace } = await import("@pulumi/pulumi/automation");
    try {
        return await LocalWorkspace.selectStack({ stackName: stack, workDir });
    } catch (e) {
        throw new UsageError(`cannot select Pulumi stack "${stack}" in ${workDir}: ${(e as Error).message.split("\n")[0]}`);
    }
}

/** What a preview says is pending, and the engine the nodes should end up on. */
export async function previewPending(stack: RollStack): Promise<{ pending: PendingNodeChange[]; engine?: string }> {
    let outputs: Record<string, unknown> | undefined;
    try {
        await stack.preview({
            onEvent: (e) => {
                const m = e.resOutputsEvent?.metadata;
                if (m?.type === "pulumi:pulumi:Stack" && m.new?.outputs) outputs = m.new.outputs;
            },
        });
    } catch (e) {
        throw new StepError({ op: "roll", step: "preview", cause: e, state: "nothing was changed", resume: "fix what the preview reports (pulumi preview shows it), then roll again" });
    }
    if (!outputs) throw new StepError({ op: "roll", step: "preview", cause: "the preview reported no stack outputs", state: "nothing was changed", resume: "run pulumi preview to see why, then roll again" });
    const p = outputs.pendingNodeChanges;
    if (p === undefined) throw new UsageError("the stack has no pendingNodeChanges output: deploy this version of the project first (pulumi up changes no instance), then roll");
    if (!Array.isArray(p)) {
        throw new RefusedError("pendingNodeChanges is not known in the preview: nodes are being created (scale out?). Run pulumi up first (new nodes start with the current values), then roll");
    }
    const engine = (outputs.nodeSettings as { fixed?: { engine?: string } } | undefined)?.fixed?.engine;
    return { pending: p as PendingNodeChange[], engine };
}

/** How the preview's field changes read in the plan. */
function describeChanges(c: PendingNodeChange): string[] {
    return c.changes.map((f) => `${f.field} ${f.from} → ${f.to}`);
}

/** `roll --stack NAME` with an already opened stack (tests pass a double). */
export async function rollWithStack(stack: RollStack, target: Target, opts: RollOptions, ctx: CommandContext, deps: { confirm?: RollRun["confirm"] } = {}): Promise<number> {
    const resume = `npm run cluster -- roll --stack ${opts.stack ?? "<stack>"} (it starts from the live state)`;
    let leftover: string | undefined;
    try {
        leftover = (await stack.getConfig(ROLLOUT_KEY)).value;
    } catch {
        leftover = undefined; // not set: the usual case
    }
    if (leftover) {
        // An interrupted roll: the preview must hold that node too, to see whether it took its change.
        if (opts.dryRun) {
            throw new RefusedError(`an earlier roll stopped while updating ${leftover} (${ROLLOUT_KEY} is still set), so a preview would show that node changing; ` +
                `nothing was changed. Run roll without --dry-run (it clears the key and resumes), or clear it yourself: pulumi config rm ${ROLLOUT_KEY}`);
        }
        ctx.out.info(`an earlier roll stopped while updating ${leftover} (${ROLLOUT_KEY} is still set): clearing it and starting from the live state`);
        await stack.removeConfig(ROLLOUT_KEY);
    }
    ctx.out.info(`previewing stack ${opts.stack ?? ""} for nodes whose instance differs …`);
    const { pending, engine } = await previewPending(stack);
    const byNode = new Map(pending.map((p) => [p.node, p]));
    const pool = openPool(target, { connectTimeoutMs: opts.connectTimeout });
    try {
        const action: NodeAction = {
            name: "pulumi up --target",
            async apply(node: TopologyNode) {
                const p = byNode.get(node.name)!;
                // Another engine package is installed by the bootstrap at boot, but a stop/start keeps the root
                // volume, where the old package's unit is still enabled: replace the instance instead (fresh
                // root volume; the interface, data volume and so the node's identity are kept).
                let replace: string[] = [];
                let running: string | undefined;
                try {
                    running = engineOf(parseInfo(String(await pool.call(keyOfNode(node), "INFO", "server"))));
                } catch {
                    ctx.out.warn(`${node.name} does not answer: cannot tell which engine it runs; updating it in place`);
                }
                if (engine && running) {
                    if (running !== engine) {
                        replace = [p.instanceUrn];
                        ctx.out.info(`${node.name} runs ${running}, the stack wants ${engine}: the instance is replaced`);
                    }
                }
                await stack.setConfig(ROLLOUT_KEY, { value: node.name });
                try {
                    await stack.up({ target: [p.instanceUrn], targetDependents: true, replace, onOutput: (s) => { if (!ctx.out.json) process.stderr.write(s); } });
                } catch (e) {
                    throw new StepError({
                        op: "roll", step: "pulumi-up", node: node.name, cause: e,
                        state: `${ROLLOUT_KEY}=${node.name} is still set (a plain pulumi up changes only that node); its instance may be stopped or half-replaced`,
                        resume: `fix the cause; if pulumi reports pending operations run pulumi refresh; then ${resume}`,
                    });
                }
                await stack.removeConfig(ROLLOUT_KEY);
            },
        };
        return await rollCluster({
            pool, topology: target.topology,
            pending: new Map(pending.map((p) => [p.node, describeChanges(p)])),
            targetVersion: engine ? engineCompatVersion(engine) : undefined,
            action, nodeTimeoutMs: opts.nodeTimeout ?? 15 * 60_000, resume, confirm: opts.yes ? undefined : deps.confirm, settle: !!leftover,
        }, opts, ctx);
    } finally {
        await pool.close();
    }
}

/** `npm run cluster -- roll --stack NAME`. */
export async function run(opts: RollOptions, ctx: CommandContext): Promise<number> {
    if (!opts.stack) throw new UsageError("roll needs --stack NAME: it reads what differs from a preview of that Pulumi stack (for a local cluster: npm run local -- roll)");
    if (!opts.yes && !opts.dryRun && !process.stdin.isTTY) throw new UsageError("roll restarts every changed node: confirm with --yes when not running interactively");
    const target = await resolveTarget(opts);
    const stack = await openAutomationStack(opts.stack);
    return rollWithStack(stack, target, opts, ctx, { confirm: (q) => confirmYes(q, false, "roll not confirmed; nothing was changed") });
}

// ---------------------------------------------------------------- local mode

/** What local mode provides: its processes. */
export interface LocalNodes {
    /** The state directory (topology.json, credentials.json, one directory per node). */
    dir: string;
    /** The running server's pid, from its pid file; undefined when stopped. */
    pidOf(node: TopologyNode): number | undefined;
    /** Starts the nodes that are not running (after an interrupted restart); returns their names. */
    startStopped(): Promise<string[]>;
    /** Stops the node's server and starts it again with the roll's binary. */
    restart(node: TopologyNode, signal: AbortSignal): Promise<void>;
    /** The binary the nodes are restarted with. */
    binary: { server: string; version: string };
    /** Once the plan is accepted, before the first restart (local mode re-renders the node files). */
    beforeRestarts?: () => void;
}

/** roll.json: the pids at the start of a roll, so a rerun knows which nodes still run the old process. */
interface LocalRollState {
    version: 1;
    server: string;
    startPids: Record<string, number>;
}

export async function rollLocal(local: LocalNodes, opts: RollOptions, ctx: CommandContext): Promise<number> {
    const topologyFile = join(local.dir, "topology.json");
    const stateFile = join(local.dir, "roll.json");
    const target = await resolveTarget({ topology: topologyFile });
    const resume = "npm run local -- roll again: it restarts only the nodes not restarted yet";
    const nodeTimeoutMs = opts.nodeTimeout ?? 60_000;
    let saved: LocalRollState | undefined;
    if (existsSync(stateFile)) {
        const s = JSON.parse(readFileSync(stateFile, "utf8")) as LocalRollState;
        if (s.version === 1 && s.server === local.binary.server) saved = s;
    }
    const pool = openPool(target, { connectTimeoutMs: opts.connectTimeout });
    try {
        const started = opts.dryRun ? [] : await local.startStopped();
        if (started.length) ctx.out.info(`started ${started.length} stopped node(s): ${started.join(", ")}`);
        if (saved) ctx.out.info(`resuming the roll started earlier (${stateFile})`);
        const startPids: Record<string, number> = saved?.startPids ?? {};
        if (!saved) for (const n of target.topology.nodes) startPids[n.name] = local.pidOf(n) ?? 0;
        const pending = new Map<string, string[]>();
        for (const n of target.topology.nodes) {
            if (saved && local.pidOf(n) !== startPids[n.name]) continue; // restarted by the earlier run
            pending.set(n.name, [`restart on ${local.binary.server} ${local.binary.version}`]);
        }
        const code = await rollCluster({
            pool, topology: target.topology, pending, targetVersion: local.binary.version,
            action: { name: "restart", apply: (node, signal) => local.restart(node, signal) },
            nodeTimeoutMs, resume, settle: !!saved || started.length > 0,
            beforeExecute: () => {
                local.beforeRestarts?.();
                if (!saved) writeFileSync(stateFile, JSON.stringify({ version: 1, server: local.binary.server, startPids }, null, 2) + "\n");
            },
        }, opts, ctx);
        if (!opts.dryRun && code === 0) rmSync(stateFile, { force: true });
        return code;
    } finally {
        await pool.close();
    }
}
