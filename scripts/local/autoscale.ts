/**
 * `npm run local -- autoscale [--once] [--dry-run] [--json]`: the same policy,
 * decision and loop as on AWS (scripts/autoscale/run.ts), acting on the local
 * cluster by the shape change `npm run local -- --shards N --replicas R` makes
 * (local mode's `up`: start the new redis-server processes, then `scale`; or
 * `scale` to drain and forget, then stop the processes). The policy comes from the
 * stack config local mode reads (Pulumi.<stack>.yaml or --config); the history
 * lives beside the topology, in .local/<stack>/autoscale.json.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { StackConfig } from "../../components/config";
import { Topology, validateTopology } from "../../components/topology";
import { UsageError } from "../errors";
import { openPool, resolveTarget } from "../inventory";
import { Output } from "../output";
import { logOutput } from "../commands/autoscale";
import { AutoscaleEnv, autoscaleLoop } from "../autoscale/run";

export interface LocalAutoscaleOptions {
    stack: string;
    once?: boolean;
    dryRun?: boolean;
    interval?: number;
}

/**
 * What the loop drives of local mode: local.ts passes its own functions, since it
 * loads this module and importing it back would close an import cycle.
 */
export interface LocalMode<O> {
    stackDir(opts: O): string;
    loadLocalConfig(opts: O): { config: StackConfig };
    shapeOf(t: Topology): { shards: number; replicas: number };
    /** Starts or stops processes and scales to `opts.shards` × (1 + `opts.replicas`). */
    up(opts: O & { shards: number; replicas: number; json: boolean }, out: Output): Promise<{ healthy: boolean }>;
}

export function localEnv<O extends LocalAutoscaleOptions>(opts: O, out: Output, local: LocalMode<O>): AutoscaleEnv {
    const { stackDir, loadLocalConfig, shapeOf, up } = local;
    const dir = stackDir(opts);
    const topologyFile = join(dir, "topology.json");
    const readTopology = () => {
        if (!existsSync(topologyFile)) throw new UsageError(`no local cluster in ${dir}: start it first with npm run local${opts.stack !== "dev" ? ` -- --stack ${opts.stack}` : ""}`);
        return validateTopology(JSON.parse(readFileSync(topologyFile, "utf8")), topologyFile);
    };
    return {
        where: `local stack ${opts.stack}`,
        historyFile: join(dir, "autoscale.json"),
        async readConfig() {
            const { config } = loadLocalConfig(opts);
            const s = shapeOf(readTopology());
            return { config, shape: { shards: s.shards, replicas: s.replicas } };
        },
        async connect() {
            const target = await resolveTarget({ topology: topologyFile });
            return { topology: target.topology, pool: openPool(target, { connectTimeoutMs: 1000 }) };
        },
        async apply(d, shape) {
            const to = d.action.endsWith("shards") ? { shards: d.to, replicas: shape.replicas } : { shards: shape.shards, replicas: d.to };
            // The very shape change `npm run local -- --shards N --replicas R` makes.
            const r = await up({ ...opts, shards: to.shards, replicas: to.replicas, json: false }, logOutput(out, "local: ", true));
            if (!r.healthy) throw new UsageError(`local cluster not healthy after the change to ${to.shards} × (1 + ${to.replicas}); see npm run cluster -- status --topology ${topologyFile}`);
        },
    };
}

export async function runLocalAutoscale<O extends LocalAutoscaleOptions>(opts: O, out: Output, local: LocalMode<O>): Promise<number> {
    const ac = new AbortController();
    const onSigint = () => ac.abort();
    process.on("SIGINT", onSigint);
    try {
        return await autoscaleLoop(localEnv(opts, out, local), { once: opts.once, dryRun: opts.dryRun, intervalSeconds: opts.interval, signal: ac.signal }, out);
    } finally {
        process.off("SIGINT", onSigint);
    }
}
