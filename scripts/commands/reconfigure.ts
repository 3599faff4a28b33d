/**
 * `reconfigure`: apply the cluster-wide node settings (maxmemory share, policy,
 * cluster-node-timeout, cluster-replica-validity-factor, min-replicas-*) to a
 * running cluster, one node at a time, with CONFIG SET.
 *
 * Desired settings, in order of precedence:
 *  - `--config Pulumi.<stack>.yaml`: the settings of that stack config;
 *  - `--stack NAME`: the stack output `nodeSettings` (what `pulumi up` wrote to
 *    the SSM parameter the nodes read at boot);
 *  - `--topology FILE`: `settings.json` beside it (local mode writes it on
 *    every `npm run local`, from the stack config).
 *
 * Replicas first, then masters. Before each node every node must answer and
 * report cluster_state:ok, else the run stops with a StepError naming the node,
 * what is done and how to resume. A node already at the desired values is
 * skipped, so a rerun finishes an interrupted run. Nothing is written to disk:
 * no CONFIG REWRITE. On AWS the boot script renders redis.conf from the same SSM
 * parameter at every boot; local mode re-renders its conf files from the stack
 * config on every `npm run local`. Both agree with what this command set.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { CommandContext, CommonOptions } from "./context";
import { ConfigError, parseStackYaml, StackConfig } from "../../components/config";
import { DesiredNodeSettings, desiredNodeSettingsOf, validateDesiredNodeSettings } from "../../components/bootstrap/nodeSettings";
import type { Topology, TopologyNode } from "../../components/topology";
import { acquireLease } from "../redis/lease";
import { interruption, NodeCommandError, RefusedError, StepError, UsageError } from "../errors";
import { automationOutputs, clusterOutputsOf, openPool, resolveTarget, StackOutputsReader, Target } from "../inventory";
import { fmtDuration } from "../output";
import { parseInfo } from "../redis/clusterView";
import { NodePool } from "../redis/pool";
import { keyOf } from "../plan/topology";
import { engineOf } from "../redis/engine";
import {
    describeChanges, desiredConfig, diffNode, label, LiveNode, NodeStep, planReconfigure, ReconfigurePlan, RUNTIME_DIRECTIVES,
} from "../plan/reconfigure";

export interface ReconfigureOptions extends CommonOptions {
    /** Take the settings from this stack config file. */
    config?: string;
    dryRun?: boolean;
    /** Apply even when a node would go below its used memory, or a master below min-replicas-to-write. */
    force?: boolean;
}

export interface ReconfigureDeps {
    /** Stack outputs reader (tests inject one). @default the Automation API */
    readStackOutputs?: StackOutputsReader;
}

/** Name of the file local mode writes beside its topology.json. */
export const SETTINGS_FILE = "settings.json";

const OP = "reconfigure";

/**
 * parseStackYaml on a file, with errors naming that file (not Pulumi.<stack>.yaml,
 * which the file may not be called): a ConfigError listing the bad keys, or a
 * UsageError when it is not YAML at all.
 */
export function readStackConfigFile(file: string, stack: string): StackConfig {
    const text = readFileSync(file, "utf8");
    try {
        return parseStackYaml(text, stack);
    } catch (e) {
        if (e instanceof ConfigError) throw new ConfigError(e.problems, file);
        throw new UsageError(`${file} is not a valid stack config (YAML with a config: map, as Pulumi.dev.yaml): ${(e as Error).message.split("\n")[0]}`);
    }
}

/** The desired settings and where they came from. */
export async function loadDesired(opts: ReconfigureOptions, target: Target, stackOutputs: Record<string, unknown> | undefined): Promise<DesiredNodeSettings> {
    const localFile = target.stateDir ? join(target.stateDir, SETTINGS_FILE) : undefined;
    const readLocal = (): DesiredNodeSettings | undefined => {
        if (!localFile || !existsSync(localFile)) return undefined;
        let doc: unknown;
        try {
            doc = JSON.parse(readFileSync(localFile, "utf8"));
        } catch (e) {
            throw new UsageError(`${localFile}: not valid JSON (${(e as Error).message}); npm run local writes it again`);
        }
        return validateDesiredNodeSettings(doc, localFile);
    };
    if (opts.config) {
        if (!existsSync(opts.config)) throw new UsageError(`--config ${opts.config}: no such file (a stack config such as Pulumi.dev.yaml)`);
        const stack = /^Pulumi\.(.+)\.ya?ml$/.exec(basename(opts.config))?.[1] ?? "config";
        const fromConfig = desiredNodeSettingsOf(readStackConfigFile(opts.config, stack), { source: opts.config });
        // Beside a local topology, local mode's file says what the local cluster is (no TLS, its own ports and memory).
        const local = readLocal();
        return local ? { ...fromConfig, fixed: local.fixed, nodeMemoryBytes: local.nodeMemoryBytes } : fromConfig;
    }
    if (opts.stack) {
        const doc = stackOutputs?.nodeSettings;
        if (doc === undefined) {
            throw new UsageError(`stack "${opts.stack}" has no "nodeSettings" output: run pulumi up with this version of the project first, or pass --config Pulumi.${opts.stack}.yaml`);
        }
        return validateDesiredNodeSettings(doc, `stack ${opts.stack} output "nodeSettings"`);
    }
    const local = readLocal();
    if (!local) {
        throw new UsageError(`no ${SETTINGS_FILE} beside ${opts.topology} (npm run local writes one): pass --config Pulumi.<stack>.yaml to say which settings to apply`);
    }
    return local;
}

/** CONFIG GET of the runtime directives, as one record. */
async function readConfig(pool: NodePool, key: string, directives: readonly string[] = RUNTIME_DIRECTIVES): Promise<Record<string, string>> {
    const c = await pool.get(key);
    const p = c.pipeline();
    for (const d of directives) p.call("CONFIG", "GET", d);
    const res = (await p.exec())!;
    const out: Record<string, string> = {};
    res.forEach(([err, reply], i) => {
        if (err) throw new NodeCommandError(`${key}: CONFIG GET ${directives[i]}: ${err.message}`, key, "CONFIG GET", { cause: err });
        const arr = reply as string[];
        // [name, value]; a directive this build lacks (tls-port without TLS support) returns [].
        if (arr.length >= 2) out[directives[i]] = String(arr[1]);
    });
    return out;
}

/** Everything the planner needs from one node. */
export async function readLive(pool: NodePool, node: TopologyNode): Promise<LiveNode> {
    const key = keyOf(node);
    const config = await readConfig(pool, key, [...RUNTIME_DIRECTIVES, "port", "tls-port"]);
    const c = await pool.get(key);
    const infos = (await c.pipeline().call("INFO", "server").call("INFO", "memory").call("INFO", "replication").exec())!.map(([err, reply], i) => {
        if (err) throw new NodeCommandError(`${key}: INFO ${["server", "memory", "replication"][i]}: ${err.message}`, key, "INFO", { cause: err });
        return parseInfo(String(reply));
    });
    const [server, memory, replication] = infos;
    const engine = engineOf(server);
    const tlsPort = Number(config["tls-port"] ?? 0);
    return {
        key, name: node.name, shard: node.shard,
        role: replication.role === "master" ? "master" : "replica",
        config: Object.fromEntries(RUNTIME_DIRECTIVES.map((d) => [d, config[d]])),
        totalSystemMemory: Number(memory.total_system_memory),
        usedMemory: Number(memory.used_memory ?? 0),
        connectedReplicas: replication.connected_slaves !== undefined ? Number(replication.connected_slaves) : undefined,
        engine: engine.name,
        version: engine.version,
        tls: tlsPort > 0,
        port: tlsPort > 0 ? tlsPort : Number(config.port),
    };
}

/**
 * The gate before each node: every node answers and reports cluster_state:ok.
 * CLUSTER INFO only (cheap on a large cluster, where this runs once per node).
 */
export async function healthProblems(pool: NodePool, topology: Topology): Promise<string[]> {
    const problems = await Promise.all(topology.nodes.map(async (n) => {
        const key = keyOf(n);
        try {
            const state = parseInfo(String(await pool.call(key, "CLUSTER", "INFO"))).cluster_state;
            return state === "ok" ? undefined : `${label({ key, name: n.name })} reports cluster_state:${state ?? "?"}`;
        } catch (e) {
            pool.drop(key);
            return `${label({ key, name: n.name })} is unreachable: ${(e as Error).message}`;
        }
    }));
    return problems.filter((p): p is string => p !== undefined);
}

function renderPlan(plan: ReconfigurePlan, desired: DesiredNodeSettings, unreachable: string[]): string {
    const rows = plan.steps.map((s) => `  ${s.node.role === "master" ? "master " : "replica"}  ${label(s.node)}  ${s.changes.length ? describeChanges(s.changes) : "already at the desired values (skip)"}`);
    return [
        `settings from ${desired.source ?? "?"}: ${Object.entries(desired.settings).map(([k, v]) => `${k}=${v}`).join(" ")}${desired.nodeMemoryBytes ? ` (node memory ${desired.nodeMemoryBytes} bytes)` : ""}`,
        `order: replicas first, then masters`,
        ...rows,
        ...unreachable.map((u) => `  unreachable  ${u}`),
        ...(plan.fixedMismatches.length ? ["cannot change in place (a new cluster, or replacing nodes, is needed):", ...plan.fixedMismatches.map((m) => `  - ${m}`)] : []),
        ...(plan.risks.length ? ["refused without --force:", ...plan.risks.map((r) => `  - ${r}`)] : []),
    ].join("\n");
}

export async function reconfigure(opts: ReconfigureOptions, ctx: CommandContext, deps: ReconfigureDeps = {}): Promise<number> {
    const t0 = Date.now();
    let stackOutputs: Record<string, unknown> | undefined;
    const read = deps.readStackOutputs ?? automationOutputs(opts.projectDir);
    const target = await resolveTarget(opts, {
        readStackOutputs: async (s) => {
            const raw = await read(s);
            stackOutputs = clusterOutputsOf(raw, opts); // resolveTarget selects from the raw outputs itself
            return raw;
        },
    });
    const desired = await loadDesired(opts, target, stackOutputs);
    const topology = target.topology;
    const targetArgs = [opts.stack ? `--stack ${opts.stack}` : `--topology ${opts.topology}`, opts.config ? `--config ${opts.config}` : ""].filter(Boolean).join(" ");
    const again = `npm run cluster -- ${OP} ${targetArgs}`;
    if (opts.stack && opts.config && stackOutputs?.nodeSettings) {
        const deployed = validateDesiredNodeSettings(stackOutputs.nodeSettings, `stack ${opts.stack} output "nodeSettings"`);
        if (JSON.stringify(deployed.settings) !== JSON.stringify(desired.settings)) {
            ctx.out.warn(`${opts.config} differs from what stack ${opts.stack} deployed: nodes render redis.conf from ${deployed.parameterName ?? "the SSM node-settings parameter"} at boot, so run pulumi up too, or a restarted node goes back to the deployed values`);
        }
    }

    const pool = openPool(target, { connectTimeoutMs: opts.connectTimeout });
    try {
        const lives: LiveNode[] = [];
        const unreachable: string[] = [];
        const unread: string[] = [];
        await Promise.all(topology.nodes.map(async (n) => {
            try {
                lives.push(await readLive(pool, n));
            } catch (e) {
                pool.drop(keyOf(n));
                unread.push(label({ key: keyOf(n), name: n.name }));
                unreachable.push(`${label({ key: keyOf(n), name: n.name })}: ${(e as Error).message}`);
            }
        }));
        const plan = planReconfigure(desired, lives);
        const summary = (extra: Record<string, unknown> = {}) => ({
            source: desired.source,
            settings: desired.settings,
            steps: plan.steps.map((s) => ({ node: s.node.name, key: s.node.key, role: s.node.role, changes: s.changes })),
            unreachable, fixedMismatches: plan.fixedMismatches, risks: plan.risks, ...extra,
        });

        if (opts.dryRun) {
            ctx.out.result({ dryRun: true, ...summary() }, renderPlan(plan, desired, unreachable));
            const blocked = unreachable.length > 0 || plan.fixedMismatches.length > 0 || (plan.risks.length > 0 && !opts.force);
            return blocked ? 1 : 0;
        }
        if (plan.fixedMismatches.length) {
            throw new RefusedError(`port, TLS and engine are chosen when a cluster is created and cannot change in place; nothing was changed:\n${plan.fixedMismatches.map((m) => `  - ${m}`).join("\n")}\n` +
                `Changing them means a new cluster (or replacing every node, which changes its user data); see docs/operations-reconfigure.md. To apply only the runtime settings, restore these keys in the stack config.`);
        }
        if (plan.risks.length && !opts.force) {
            throw new RefusedError(`these changes would hurt the moment they are applied; nothing was changed:\n${plan.risks.map((r) => `  - ${r}`).join("\n")}\nFree memory or attach replicas first, or rerun with --force to apply anyway.`);
        }
        const changed: string[] = [];
        const skipped: string[] = [];
        /**
         * What is on each node now; `current` is described by the caller (a node half-changed).
         * A node counts as at the new settings when this run set them, or when it had them
         * already (as read at planning); a node that could not be read is named as unknown.
         */
        const stateLeft = (current?: NodeStep) => {
            const atNew: string[] = [];
            const old: string[] = [];
            for (const st of plan.steps) {
                const who = label(st.node);
                if (current && who === label(current.node)) continue;
                if (changed.includes(who) || skipped.includes(who) || st.changes.length === 0) atNew.push(who);
                else old.push(`${who}: ${st.changes.map((c) => c.directive).join(", ")}`);
            }
            return [
                atNew.length ? `${atNew.length} node(s) at the new settings (${atNew.join(", ")})` : "no node at the new settings",
                old.length ? `${old.length} still on the old ones (${old.join("; ")})` : "",
                unread.length ? `${unread.length} not read, settings unknown (${unread.join(", ")})` : "",
            ].filter(Boolean).join("; ") + (atNew.length && old.length ? ". Mixed values of these settings across nodes are safe for a while" : "");
        };
        const resume = `fix what is named above (npm run cluster -- status ${targetArgs.replace(/ --config \S+/, "")}), then run the same command again (${again}): nodes already at the desired values are skipped`;

        // The gate, before every node (the first one included): every node answers and reports cluster_state:ok.
        const gate = async (next: NodeStep) => {
            const problems = await healthProblems(pool, topology);
            if (problems.length) {
                throw new StepError({ op: OP, step: "health-check", node: label(next.node), cause: `the cluster is not healthy before changing ${label(next.node)}: ${problems.join("; ")}`, state: stateLeft(), resume });
            }
        };
        if (plan.steps.length) await gate(plan.steps[0]);
        // One changing run at a time (docs/lease.md); released by pool.close().
        if (plan.steps.some((st) => st.changes.length)) {
            const lease = await acquireLease(pool, topology.nodes.map(keyOf), { command: OP, out: ctx.out, takeOver: opts.takeOverLease });
            pool.onClose(() => lease.release());
        }
        if (!ctx.out.json) ctx.out.info(`${OP}: settings from ${desired.source}; ${plan.steps.filter((s) => s.changes.length).length} of ${plan.steps.length} node(s) to change, replicas first`);

        for (const [i, step] of plan.steps.entries()) {
            const who = label(step.node);
            if (ctx.signal.aborted) throw interruption(ctx.signal, { op: OP, during: `the settings change, before ${who}`, state: stateLeft(), resume });
            if (i > 0) await gate(step);
            // Read again: the node may have changed since planning (another operator, a restart).
            let live: LiveNode;
            try {
                live = await readLive(pool, topology.nodes.find((n) => keyOf(n) === step.node.key)!);
            } catch (e) {
                throw new StepError({ op: OP, step: "read-config", node: who, cause: e, state: stateLeft(), resume });
            }
            const want = desiredConfig(desired, live);
            const changes = diffNode(want, live.config);
            if (changes.length === 0) {
                skipped.push(who);
                ctx.out.event("node", { node: step.node.name, key: step.node.key, role: live.role, action: "skip" }, `  ${who}: already at the desired values, skipped`);
                continue;
            }
            const set: string[] = [];
            for (const c of changes) {
                try {
                    await pool.call(step.node.key, "CONFIG", "SET", c.directive, c.to);
                } catch (e) {
                    const notSet = changes.filter((x) => !set.includes(x.directive)).map((x) => x.directive);
                    throw new StepError({
                        op: OP, step: `config-set ${c.directive}`, node: who, cause: e,
                        state: `on ${who} ${set.length ? `${set.join(", ")} set, ` : ""}${notSet.join(", ")} not set; ${stateLeft(step)}`, resume,
                    });
                }
                set.push(c.directive);
            }
            let after: Record<string, string>;
            try {
                after = await readConfig(pool, step.node.key);
            } catch (e) {
                throw new StepError({ op: OP, step: "verify", node: who, cause: e, state: `${describeChanges(changes)} sent to ${who}; ${stateLeft(step)}`, resume });
            }
            const off = diffNode(want, after);
            if (off.length) {
                throw new StepError({ op: OP, step: "verify", node: who, cause: `CONFIG GET differs after CONFIG SET: ${describeChanges(off)}`, state: `${describeChanges(changes)} sent to ${who}; ${stateLeft(step)}`, resume });
            }
            changed.push(who);
            ctx.out.event("node", { node: step.node.name, key: step.node.key, role: live.role, action: "set", changes }, `  ${who} (${live.role}): ${describeChanges(changes)}`);
        }

        const problems = await healthProblems(pool, topology);
        if (problems.length) {
            throw new StepError({ op: OP, step: "health-check", cause: `the cluster is not healthy after the last node: ${problems.join("; ")}`, state: "every node has the new settings", resume: `look at npm run cluster -- status ${targetArgs.replace(/ --config \S+/, "")}` });
        }
        const durationMs = Date.now() - t0;
        if (ctx.out.json) ctx.out.event("result", summary({ changed, skipped, durationMs }));
        else ctx.out.result(null, `${OP}: ${changed.length} node(s) changed, ${skipped.length} already at the desired values, in ${fmtDuration(durationMs)}`);
        return 0;
    } finally {
        await pool.close();
    }
}

export function run(opts: ReconfigureOptions, ctx: CommandContext): Promise<number> {
    return reconfigure(opts, ctx);
}
