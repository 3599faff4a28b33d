/**
 * `replicate REPLICA MASTER`: attach a node as a replica of a master, e.g. after a
 * node was replaced and came back empty. A node that does not know the cluster yet
 * is introduced first (CLUSTER MEET from the node to the master); then CLUSTER
 * REPLICATE, and a wait until the link is up and every node agrees on the role.
 * MASTER may be a node name, host:port, id, or a shard number (its current master).
 */
import type { CommandContext, CommonOptions } from "./context";
import { RefusedError, StepError, UsageError } from "../errors";
import { fmtDuration } from "../output";
import { keyOfNode, findKnownNode } from "../redis/members";
import { openSession } from "./session";
import { ClusterView, parseInfo, waitUntil } from "../redis/clusterView";
import { parseClusterNodes } from "../redis/clusterNodes";
import { parseNodeKey } from "../redis/pool";

export interface ReplicateOptions extends CommonOptions {
    args: string[];
    timeout?: number;
}

export async function run(opts: ReplicateOptions, ctx: CommandContext): Promise<number> {
    const [replicaArg, masterArg] = opts.args ?? [];
    if (!replicaArg || !masterArg) throw new UsageError("replicate: give the replica and the master (replicate <replica> <master>)");
    const { target, pool, view } = await openSession(opts, ctx, "replicate");
    const timeoutMs = opts.timeout ?? 60000;
    try {
        const t0 = Date.now();
        // The master: a shard number, or a node the cluster knows.
        let master = /^\d+$/.test(masterArg)
            ? [...view.knownNodes().values()].find((n) => n.role === "master" && n.slots.length > 0 && target.topology.nodes.some((t) => t.shard === Number(masterArg) && keyOfNode(t) === n.key))
            : findKnownNode(masterArg, view, target.topology);
        if (!master) throw new UsageError(`replicate: no master found for "${masterArg}" (a shard number, node name, host:port or id)`);
        if (master.role !== "master") throw new RefusedError(`replicate: ${master.key} is a replica, not a master; name the shard's master (or the shard number)`);
        if (master.failing) throw new RefusedError(`replicate: ${master.key} is flagged failing; fail the shard over first`);

        // The replica: a topology name or host:port; it may not be part of the cluster yet.
        const topo = target.topology.nodes.find((n) => n.name === replicaArg);
        const replicaKey = topo ? keyOfNode(topo) : findKnownNode(replicaArg, view, target.topology)?.key ?? replicaArg;
        try {
            parseNodeKey(replicaKey);
        } catch {
            throw new UsageError(`replicate: "${replicaArg}" is neither a node of the topology, nor a known node, nor host:port`);
        }
        if (replicaKey === master.key) throw new UsageError("replicate: a node cannot replicate itself");
        const nodes = parseClusterNodes((await pool.call(replicaKey, "CLUSTER", "NODES").catch((e) => {
            throw new RefusedError(`replicate: cannot reach ${replicaKey}: ${(e as Error).message}`);
        })) as string);
        const me = nodes.find((n) => n.myself)!;
        if (me.role === "replica" && me.masterId === master.id) {
            ctx.out.result({ ok: true, replica: replicaKey, master: master.key, changed: false }, `${replicaKey} already replicates ${master.key}; nothing to do`);
            return 0;
        }
        if (me.role === "master" && me.slots.length > 0) {
            throw new RefusedError(`replicate: ${replicaKey} is a master owning slots; move them away first (scale or rebalance with weight 0), nothing was changed`);
        }
        if (me.role === "master" && Number(await pool.call(replicaKey, "DBSIZE")) > 0) {
            throw new RefusedError(`replicate: ${replicaKey} holds keys but owns no slot (stale data); Redis only attaches an empty master as a replica. If the data is disposable: redis-cli -h ${parseNodeKey(replicaKey).host} -p ${parseNodeKey(replicaKey).port} FLUSHALL, then rerun; nothing was changed`);
        }

        // Introduce it when it does not know the master yet.
        if (!nodes.some((n) => n.id === master!.id && !n.flags.includes("handshake"))) {
            try {
                await pool.call(replicaKey, "CLUSTER", "MEET", master.host, String(master.port));
            } catch (e) {
                throw new StepError({ op: "replicate", step: "meet", node: replicaKey, cause: e, state: "nothing changed", resume: "rerun `replicate` with the same arguments" });
            }
            await waitUntil(async () => {
                const ns = parseClusterNodes((await pool.call(replicaKey, "CLUSTER", "NODES")) as string);
                return ns.some((n) => n.id === master!.id && !n.flags.includes("handshake") && n.role === "master");
            }, {
                timeoutMs, signal: ctx.signal, what: `${replicaKey} to learn ${master.key} after MEET`,
                op: "replicate", state: `CLUSTER MEET sent; ${replicaKey} is not attached`, resume: "rerun `replicate` with the same arguments",
            });
            ctx.out.event("step", { step: "meet", node: replicaKey, master: master.key }, `${replicaKey} met ${master.key}`);
        }
        try {
            await pool.call(replicaKey, "CLUSTER", "REPLICATE", master.id);
        } catch (e) {
            throw new StepError({ op: "replicate", step: "replicate", node: replicaKey, cause: e, state: "the node knows the cluster but is not attached", resume: "rerun `replicate` with the same arguments" });
        }
        const all = [...new Set([...view.reachable().map((v) => v.key), replicaKey])];
        const replicaId = me.id;
        let last = "";
        await waitUntil(async () => {
            const info = parseInfo((await pool.call(replicaKey, "INFO", "replication")) as string);
            const v = await ClusterView.read(pool, all);
            const agree = v.reachable().filter((nv) => nv.nodes.some((n) => n.id === replicaId && n.role === "replica" && n.masterId === master!.id)).length;
            last = `link ${info.master_link_status ?? "?"}, ${agree} of ${v.reachable().length} node(s) see it as a replica of ${master!.key}`;
            return info.master_link_status === "up" && agree === v.reachable().length;
        }, {
            timeoutMs, signal: ctx.signal, what: `${replicaKey} to sync with ${master.key}`,
            op: "replicate", state: `${replicaKey} is attached to ${master.key} (CLUSTER REPLICATE sent); the sync or its news has not finished`,
            resume: "check with `status` (a large sync takes a while); rerun `replicate` with the same arguments: it waits again",
        }, () => last);
        const ms = Date.now() - t0;
        ctx.out.result({ ok: true, replica: replicaKey, master: master.key, changed: true, ms }, `${replicaKey} replicates ${master.key} (in sync, seen by every node) after ${fmtDuration(ms)}`);
        return 0;
    } finally {
        await pool.close();
    }
}
