/**
 * The one reader of node state: `readNodes` asks each node, in parallel and in one
 * pipeline per node, CLUSTER NODES and CLUSTER INFO plus whatever INFO sections and
 * DBSIZE the caller needs, and records an unreachable node rather than throwing.
 * `readView` wraps the samples in a ClusterView (scripts/plan/clusterView.ts), the
 * predicates every command shares. `waitUntil` polls for a condition.
 */
import { interruption, LeftBehind, RefusedError, WaitTimeoutError } from "../errors";
import { parseClusterNodes } from "../plan/clusterNodes";
import { ClusterView, NodeSample, parseInfo } from "../plan/clusterView";
import { engineOf } from "../plan/engine";
import { NodeKey, NodePool } from "./pool";

export interface ReadNodesOptions {
    /**
     * INFO sections to read, one INFO call each (Redis 6.2 takes a single section
     * argument; 7.0 takes several), flattened into `info`. "default" is plain INFO
     * (server, clients, memory, persistence, stats, replication, cpu, cluster, keyspace).
     */
    info?: string[];
    /** Read DBSIZE too. */
    dbsize?: boolean;
    /** Directives to read with CONFIG GET into `config`; one the node refuses (ACL, renamed CONFIG) is left out. */
    config?: string[];
    /**
     * A node running with cluster-enabled no is reachable with `clusterEnabled: false`
     * (create says so) instead of unreachable.
     */
    clusterOptional?: boolean;
}

/** Reads every node in parallel; unreachable nodes are recorded, not thrown. */
export async function readNodes(pool: NodePool, keys: NodeKey[], opts: ReadNodesOptions = {}): Promise<NodeSample[]> {
    const sections = opts.info ?? [];
    return Promise.all(keys.map(async (key): Promise<NodeSample> => {
        try {
            const c = await pool.get(key);
            const p = c.pipeline().call("CLUSTER", "NODES").call("CLUSTER", "INFO");
            for (const s of sections) {
                if (s === "default") p.call("INFO");
                else p.call("INFO", s);
            }
            if (opts.dbsize) p.call("DBSIZE");
            const directives = opts.config ?? [];
            for (const d of directives) p.call("CONFIG", "GET", d);
            const all = (await p.exec())!;
            const config: Record<string, string> = {};
            all.slice(all.length - directives.length).forEach(([err, reply]) => {
                const r = reply as string[] | undefined;
                if (!err && r && r.length >= 2) config[String(r[0])] = String(r[1]);
            });
            const res = all.slice(0, all.length - directives.length);
            const at = Date.now();
            const [[nodesErr, nodesText], [clusterInfoErr, clusterInfoText]] = res;
            const rest = res.slice(2).map(([err, v]) => {
                if (err) throw err;
                return v as string | number;
            });
            const info: Record<string, string> = {};
            for (let i = 0; i < sections.length; i++) Object.assign(info, parseInfo(String(rest[i])));
            const errorstatsAt = sections.indexOf("errorstats");
            const common = {
                key, reachable: true, info, at, config,
                hasErrorstats: errorstatsAt >= 0 ? /^# Errorstats/m.test(String(rest[errorstatsAt])) : undefined,
                version: info.redis_version,
                engine: info.redis_version !== undefined ? engineOf(info) : undefined,
                dbsize: opts.dbsize ? Number(rest[sections.length]) : undefined,
            };
            if (nodesErr || clusterInfoErr) {
                const err = (nodesErr ?? clusterInfoErr)!;
                if (opts.clusterOptional && /cluster support disabled/i.test(err.message)) return { ...common, clusterEnabled: false, nodes: [], clusterInfo: {} };
                throw err;
            }
            const nodes = parseClusterNodes(nodesText as string);
            return { ...common, clusterEnabled: true, nodes, myself: nodes.find((n) => n.myself), clusterInfo: parseInfo(clusterInfoText as string) };
        } catch (e) {
            if (e instanceof RefusedError) throw e; // the wrong node answered (pool.ts identity check)
            pool.drop(key);
            return { key, reachable: false, error: (e as Error).message, nodes: [], clusterInfo: {}, info: {}, at: Date.now() };
        }
    }));
}

/** `readNodes` (CLUSTER NODES and CLUSTER INFO only) as a ClusterView. */
export async function readView(pool: NodePool, keys: NodeKey[]): Promise<ClusterView> {
    return ClusterView.of(await readNodes(pool, keys));
}

export interface WaitOptions extends LeftBehind {
    timeoutMs: number;
    /** First poll interval; grows ×1.5 up to maxIntervalMs. @default 10 */
    intervalMs?: number;
    /** @default 200 */
    maxIntervalMs?: number;
    signal?: AbortSignal;
    /** Describes what was awaited, for the timeout error. */
    what: string;
}

/**
 * Polls `check` until it returns a truthy value, starting fast and backing off,
 * so convergence is noticed within milliseconds rather than after a fixed sleep.
 * Throws WaitTimeoutError (exit 1) with `what`, the last state (`describeLast`), and
 * the options' `op`/`state`/`resume` when time runs out, and InterruptedError when the
 * signal fires (Ctrl-C: exit 130).
 */
export async function waitUntil<T>(check: () => Promise<T | false | undefined>, opts: WaitOptions, describeLast?: () => string): Promise<T> {
    const deadline = Date.now() + opts.timeoutMs;
    let interval = opts.intervalMs ?? 10;
    const left = { op: opts.op, state: opts.state, resume: opts.resume };
    for (;;) {
        if (opts.signal?.aborted) throw interruption(opts.signal, { ...left, during: `the wait for ${opts.what}` });
        const r = await check();
        if (r) return r;
        if (Date.now() >= deadline) {
            throw new WaitTimeoutError({ ...left, what: opts.what, timeoutMs: opts.timeoutMs, last: describeLast?.() || undefined });
        }
        await new Promise((res) => setTimeout(res, Math.min(interval, Math.max(1, deadline - Date.now()))));
        interval = Math.min(opts.maxIntervalMs ?? 200, interval * 1.5);
    }
}
