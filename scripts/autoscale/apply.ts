/**
 * Carrying out a shape change the decision asked for, on AWS: the stack's config
 * and `pulumi up` through the Automation API, and the cluster tool's `scale`, in
 * the one order that never leaves the cluster using a node Pulumi is about to
 * delete, nor Pulumi without a node the cluster needs:
 *
 * - grow:   config set -> pulumi up (new instances boot and wait) -> scale (join, move slots);
 * - shrink: scale (drain, forget the leaving nodes) -> config set -> pulumi up (delete them).
 *
 * A failed `pulumi up` while growing restores the config and leaves the cluster
 * untouched (no node joined, no slot moved), and says so. The Pulumi side is
 * behind `StackWorkspace`, so the order is tested against a double (the real CLI
 * cannot run in the tests) and the real one is `automationWorkspace`.
 */
import { resolve } from "node:path";
import { CONFIG_NAMESPACE, parseStackConfig, RawValue, StackConfig } from "../../components/config";
import { StepError, UsageError } from "../errors";
import type { Decision, Shape } from "../plan/autoscale";

/** The Pulumi stack as the autoscaler uses it. */
export interface StackWorkspace {
    readonly stack: string;
    /** The stack's config, parsed and validated like `pulumi up` does. */
    readConfig(): Promise<StackConfig>;
    /** `pulumi config set redis-cluster:<key> <value>` for each entry (written to Pulumi.<stack>.yaml, as a person's would be). */
    setConfig(values: Record<string, string>): Promise<void>;
    /** `pulumi up --yes`; throws when it does not succeed. */
    up(log: (line: string) => void): Promise<void>;
}

/** The Automation API's LocalWorkspace on the project in `workDir` (default: the repository). */
export async function automationWorkspace(stack: string, workDir = resolve(__dirname, "..", "..")): Promise<StackWorkspace> {
    // Lazy: the automation API needs the Pulumi CLI, which only the AWS path uses.
    const { LocalWorkspace } = await import("@pulumi/pulumi/automation");
    let s: Awaited<ReturnType<typeof LocalWorkspace.selectStack>>;
    try {
        s = await LocalWorkspace.selectStack({ stackName: stack, workDir });
    } catch (e) {
        throw new UsageError(`cannot select Pulumi stack "${stack}" in ${workDir}: ${(e as Error).message.split("\n")[0]}\n  Is the Pulumi CLI installed and logged in (pulumi login), and does the stack exist (pulumi stack ls)?`);
    }
    return {
        stack,
        async readConfig() {
            const all = await s.getAllConfig();
            const raw = (k: string): RawValue => all[`${CONFIG_NAMESPACE}:${k}`]?.value;
            return parseStackConfig(raw, { project: CONFIG_NAMESPACE, stack });
        },
        async setConfig(values) {
            await s.setAllConfig(Object.fromEntries(Object.entries(values).map(([k, v]) => [`${CONFIG_NAMESPACE}:${k}`, { value: v }])));
        },
        async up(log) {
            const r = await s.up({ onOutput: (o: string) => { for (const l of o.split("\n")) if (l.trim()) log(l.trimEnd()); } });
            if (r.summary.result !== "succeeded") throw new Error(`pulumi up ended with result "${r.summary.result}"`);
        },
    };
}

/** What the action needs of the cluster lease it holds (scripts/redis/lease.ts `Lease`). */
export interface ActionLease {
    /** Aborts when another run took the lease over. */
    readonly signal: AbortSignal;
    /** Why the lease was lost, once it was. */
    readonly lost?: string;
    /** Extends it now (it is also renewed every 20 s by itself, pulumi up included). */
    renew(): Promise<void>;
}

export interface ApplyDeps<L extends ActionLease = ActionLease> {
    workspace: StackWorkspace;
    /** The cluster tool's `scale` to `shape` under `lease` (it does not take the lease again), confirmation given. */
    scale(shape: Shape, lease: L): Promise<void>;
    /**
     * Runs `fn` holding the cluster lease (docs/lease.md), renewed until `fn` settles and
     * released after, on failure too: nobody else changes the cluster meanwhile.
     */
    withLease<T>(fn: (lease: L) => Promise<T>): Promise<T>;
    log(line: string): void;
}

const configOf = (d: Decision, current: Shape): { values: Record<string, string>; shape: Shape } =>
    d.action === "add-shards" || d.action === "remove-shards"
        ? { values: { shards: String(d.to) }, shape: { ...current, shards: d.to } }
        : { values: { replicasPerShard: String(d.to) }, shape: { ...current, replicas: d.to } };

/**
 * Applies a decision other than "none". Resolves when the stack and the cluster both have
 * the new shape. One lease covers the whole action: between `pulumi up` and `scale` the
 * cluster is half-changed (new nodes not joined yet, or drained nodes not deleted yet), and
 * another run (a person's scale, a roll) must not start there.
 */
export async function applyOnStack<L extends ActionLease>(d: Decision, current: Shape, deps: ApplyDeps<L>): Promise<void> {
    if (d.action === "none") return;
    const { values, shape } = configOf(d, current);
    const back: Record<string, string> = d.action.endsWith("shards") ? { shards: String(current.shards) } : { replicasPerShard: String(current.replicas) };
    const what = Object.entries(values).map(([k, v]) => `${k}=${v}`).join(" ");
    const was = Object.entries(back).map(([k, v]) => `${k}=${v}`).join(" ");
    const stack = deps.workspace.stack;
    /** Before the next step: the lease must still be ours (renewed now, so the step starts with a full TTL). */
    const stillHeld = async (lease: L, after: string, state: string, resume: string) => {
        await lease.renew();
        if (lease.lost || lease.signal.aborted) {
            throw new StepError({ op: "autoscale", step: after, cause: new Error(lease.lost ?? "the cluster lease was lost"), state, resume });
        }
    };
    if (d.action.startsWith("add")) {
        await deps.withLease(async (lease) => {
            deps.log(`autoscale: pulumi config set ${what} (was ${was})`);
            await deps.workspace.setConfig(values);
            deps.log(`autoscale: pulumi up (stack ${stack})`);
            try {
                await deps.workspace.up(deps.log);
            } catch (e) {
                let restored = true;
                await deps.workspace.setConfig(back).catch(() => (restored = false));
                throw new StepError({
                    op: "autoscale", step: "pulumi up", cause: e,
                    state: `the cluster is untouched (no node joined, no slot moved) and its lease is released; ${restored ? `stack config restored to ${was}` : `stack config still says ${what}: set it back with pulumi config set ${was}`}; ` +
                        `instances pulumi up may have created before it failed stay until the next pulumi up removes them`,
                    resume: `fix what pulumi up reported (pulumi up --stack ${stack} shows it again), then let the autoscaler run again`,
                });
            }
            const scaleResume = `npm run cluster -- scale --stack ${stack} (it joins what is missing and finishes the slot moves)`;
            await stillHeld(lease, "pulumi up",
                `stack config says ${what} and pulumi up created the new nodes; the cluster does not use them yet (scale did not start)`, scaleResume);
            try {
                await deps.scale(shape, lease);
            } catch (e) {
                throw new StepError({
                    op: "autoscale", step: "scale", cause: e,
                    state: `stack config says ${what} and pulumi up created the new nodes; the cluster does not use all of them yet`,
                    resume: scaleResume,
                });
            }
        });
        return;
    }
    // Shrink: the cluster lets go of the nodes before Pulumi deletes them.
    await deps.withLease(async (lease) => {
        await deps.scale(shape, lease);
        await stillHeld(lease, "scale",
            `the cluster already runs without the removed node(s) (drained and forgotten); stack config still says ${was}, so their instances still run`,
            `pulumi config set ${what} --stack ${stack}, then pulumi up --stack ${stack}`);
        deps.log(`autoscale: pulumi config set ${what} (was ${was})`);
        await deps.workspace.setConfig(values);
        deps.log(`autoscale: pulumi up (stack ${stack}): deletes the drained, forgotten nodes`);
        try {
            await deps.workspace.up(deps.log);
        } catch (e) {
            throw new StepError({
                op: "autoscale", step: "pulumi up", cause: e,
                state: `the cluster already runs without the removed node(s) (drained and forgotten by every node); stack config says ${what}; their instances still run and cost money`,
                resume: `pulumi up --stack ${stack}`,
            });
        }
    });
}
