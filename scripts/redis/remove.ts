/**
 * Taking nodes out of a cluster for good: CLUSTER RESET on the leaving nodes (so
 * they stop gossiping about the cluster and could join another), then CLUSTER
 * FORGET of each of them on every remaining node, all in parallel.
 *
 * FORGET puts the id on a 60 s ban list on the node that forgot it; a node that
 * still knows the id would gossip it back after the ban expires, so every
 * remaining node must forget it within those 60 s — hence one parallel burst, then
 * a check that nobody knows the id any more.
 * https://redis.io/docs/latest/commands/cluster-forget/
 */
import { waitUntil } from "./clusterView";
import { parseClusterNodes } from "./clusterNodes";
import { NodeKey, NodePool } from "./pool";

export interface ForgetResult {
    /** Remaining node -> errors other than "unknown node". */
    errors: string[];
    ms: number;
}

/** Sends CLUSTER FORGET <id> for every id to every remaining node in parallel; waits until none knows them. */
export async function forgetEverywhere(pool: NodePool, remaining: NodeKey[], ids: string[], timeoutMs = 20000): Promise<ForgetResult> {
    const t0 = Date.now();
    const errors: string[] = [];
    const gone = new Set(ids);
    await Promise.all(remaining.map(async (key) => {
        try {
            const c = await pool.get(key);
            const p = c.pipeline();
            for (const id of ids) p.call("CLUSTER", "FORGET", id);
            const r = (await p.exec())!;
            r.forEach(([err], i) => {
                // "Unknown node": already forgotten there. "can't forget myself": the caller gave a remaining node.
                if (err && !/unknown node/i.test(err.message)) errors.push(`${key}: CLUSTER FORGET ${ids[i]}: ${err.message}`);
            });
        } catch (e) {
            errors.push(`${key}: ${(e as Error).message}`);
        }
    }));
    if (errors.length === 0) {
        await waitUntil(async () => {
            const still = await Promise.all(remaining.map(async (key) => {
                const nodes = parseClusterNodes((await pool.call(key, "CLUSTER", "NODES")) as string);
                return nodes.some((n) => gone.has(n.id));
            }));
            return still.every((s) => !s);
        }, { timeoutMs, what: `every remaining node to forget ${ids.length} node(s)` });
    }
    return { errors, ms: Date.now() - t0 };
}

/**
 * CLUSTER RESET SOFT on leaving nodes that can be reached (a master must hold no
 * key: callers drain first). Returns the keys that could not be reset, with why.
 */
export async function resetNodes(pool: NodePool, keys: NodeKey[]): Promise<string[]> {
    const problems: string[] = [];
    await Promise.all(keys.map(async (key) => {
        try {
            await pool.call(key, "CLUSTER", "RESET", "SOFT");
        } catch (e) {
            problems.push(`${key}: ${(e as Error).message}`);
        }
    }));
    return problems;
}
