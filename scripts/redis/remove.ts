/**
 * Taking nodes out of a cluster for good: the leaving nodes are fenced (no client
 * can use them any more) and reset with CLUSTER RESET (so they stop gossiping about
 * the cluster), then CLUSTER FORGET of each of them on every remaining node, all in
 * parallel.
 *
 * FORGET puts the id on a 60 s ban list on the node that forgot it; a node that
 * still knows the id would gossip it back after the ban expires, so every
 * remaining node must forget it within those 60 s — hence one parallel burst, then
 * a check that nobody knows the id any more.
 * https://redis.io/docs/latest/commands/cluster-forget/
 */
import { waitUntil } from "./clusterView";
import { parseClusterNodes } from "../plan/clusterNodes";
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
 * Retires leaving nodes that can be reached (a master must hold no key: callers
 * drain first): fences them, then CLUSTER RESET SOFT. Returns the keys that could
 * not be retired, with why.
 *
 * Why fence: until the smaller `pulumi up` terminates it, a reset node still
 * listens, and it is still a target of the load balancer. Asked CLUSTER SLOTS, it
 * answers with an empty map, and a cluster client that happens to ask it during a
 * slot refresh drops every connection it has (ioredis does exactly that:
 * redis/ioredis#943, "Reset with []"), and a client that bootstraps through the
 * load balancer and lands on it finds no slot. So before the reset every ACL user
 * on the node is switched off (in memory only: the ACL file and redis.conf are
 * untouched, so a restart brings the users back) and every other client
 * connection is closed: new connections cannot authenticate, and clients move on
 * to the next node. The tool's own connection stays authenticated for the reset.
 */
export async function retireNodes(pool: NodePool, keys: NodeKey[]): Promise<string[]> {
    const problems: string[] = [];
    await Promise.all(keys.map(async (key) => {
        try {
            const c = await pool.get(key);
            const users = (await c.call("ACL", "USERS")) as string[];
            const p = c.pipeline();
            for (const u of users) p.call("ACL", "SETUSER", u, "off");
            p.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
            p.call("CLIENT", "KILL", "TYPE", "pubsub", "SKIPME", "yes");
            p.call("CLUSTER", "RESET", "SOFT");
            const replies = (await p.exec()) ?? [];
            const failed = replies.map(([e]) => e).filter((e): e is Error => !!e);
            if (failed.length) problems.push(`${key}: ${failed.map((e) => e.message).join("; ")}`);
        } catch (e) {
            problems.push(`${key}: ${(e as Error).message}`);
        }
    }));
    return problems;
}
