/**
 * Failover execution: reading each shard's state (who is master, which replicas
 * are in sync, which zone each node is in) and running one `CLUSTER FAILOVER` on a
 * replica, then waiting until every reachable node sees the promotion.
 *
 * Modes (https://redis.io/docs/latest/commands/cluster-failover/):
 * - default: the replica and its master agree; the master stops writes until the
 *   replica has caught up, so no acknowledged write is lost;
 * - FORCE: the master is not asked (it is gone); the replica still needs the
 *   votes of a majority of masters. Writes the old master acknowledged but had not
 *   replicated are lost;
 * - TAKEOVER: no vote at all; the replica bumps the epoch by itself. Only for when
 *   no majority of masters can be reached; if the old master is in fact alive in
 *   another partition, both accept writes until the partition heals, and the old
 *   side's writes are then lost.
 */
import { Topology } from "../../components/topology";
import { NodeState, ReplicaState, ShardState } from "../plan/failover";
import { ClusterNodeInfo } from "./clusterNodes";
import { ClusterView, parseInfo, waitUntil } from "./clusterView";
import { keyOfNode } from "./members";
import { NodeKey, NodePool } from "./pool";

export type FailoverMode = "default" | "force" | "takeover";

/** INFO replication of every reachable node. */
async function replication(pool: NodePool, keys: NodeKey[]): Promise<Map<NodeKey, Record<string, string>>> {
    const out = new Map<NodeKey, Record<string, string>>();
    await Promise.all(keys.map(async (k) => {
        try {
            out.set(k, parseInfo((await pool.call(k, "INFO", "replication")) as string));
        } catch {
            /* unreachable */
        }
    }));
    return out;
}

/** Node id -> how the majority of reachable nodes sees it (failing or not). */
function failingIds(view: ClusterView): Set<string> {
    const votes = new Map<string, { fail: number; all: number }>();
    for (const v of view.reachable()) {
        for (const n of v.nodes) {
            if (n.myself) continue;
            const e = votes.get(n.id) ?? { fail: 0, all: 0 };
            e.all++;
            if (n.flags.includes("fail")) e.fail += 2;
            else if (n.flags.includes("fail?")) e.fail++;
            votes.set(n.id, e);
        }
    }
    return new Set([...votes].filter(([, e]) => e.fail > 0 && e.fail * 2 >= e.all).map(([id]) => id));
}

/**
 * One ShardState per master that owns slots (or that a topology shard names),
 * with its replicas as the cluster knows them.
 */
export async function readShards(pool: NodePool, view: ClusterView, topology: Topology): Promise<ShardState[]> {
    const known = view.knownNodes();
    const byKey = new Map(topology.nodes.map((n) => [keyOfNode(n), n]));
    const reachable = new Set(view.reachable().map((v) => v.myself?.id).filter(Boolean) as string[]);
    const failing = failingIds(view);
    const repl = await replication(pool, view.reachable().map((v) => v.key));
    const state = (n: ClusterNodeInfo): NodeState => ({
        id: n.id, key: n.key, name: byKey.get(n.key)?.name, az: byKey.get(n.key)?.az, healthy: reachable.has(n.id) && !failing.has(n.id),
    });
    const shards: ShardState[] = [];
    for (const m of known.values()) {
        if (m.role !== "master" || m.slots.length === 0) continue;
        const replicas: ReplicaState[] = [...known.values()].filter((r) => r.role === "replica" && r.masterId === m.id).map((r) => {
            const info = repl.get(r.key) ?? {};
            return { ...state(r), linkUp: info.master_link_status === "up", offset: Number(info.slave_repl_offset ?? 0) };
        });
        shards.push({ shard: byKey.get(m.key)?.shard ?? replicas.map((r) => byKey.get(r.key)?.shard).find((x) => x !== undefined) ?? -1, master: state(m), replicas });
    }
    return shards.sort((a, b) => a.shard - b.shard);
}

/**
 * CLUSTER FAILOVER [FORCE|TAKEOVER] on `replica`, then waits until every reachable
 * node reports it as a master that owns the old master's slots. Returns the time taken.
 */
export async function runFailover(pool: NodePool, replica: { id: string; key: NodeKey }, oldMasterId: string, mode: FailoverMode, allKeys: NodeKey[], timeoutMs: number, signal?: AbortSignal): Promise<number> {
    const t0 = Date.now();
    await pool.call(replica.key, "CLUSTER", "FAILOVER", ...(mode === "default" ? [] : [mode.toUpperCase()]));
    let last = "";
    await waitUntil(async () => {
        const v = await ClusterView.read(pool, allKeys);
        // A live old master turns into a replica of the new one: wait for that too, so the
        // cluster looks settled (status, the next failover) when we return.
        const oldAlive = v.reachable().some((nv) => nv.myself?.id === oldMasterId);
        const seen = v.reachable().map((nv) => {
            const n = nv.nodes.find((x) => x.id === replica.id);
            const old = nv.nodes.find((x) => x.id === oldMasterId);
            const promoted = !!n && n.role === "master" && n.slots.length > 0;
            const demoted = oldAlive ? old?.role === "replica" && old.masterId === replica.id : !old || old.role !== "master" || old.slots.length === 0;
            return promoted && demoted;
        });
        const ok = seen.filter(Boolean).length;
        last = `${ok} of ${seen.length} node(s) see ${replica.key} as the master${oldAlive ? " and the old master as its replica" : ""}`;
        return seen.length > 0 && seen.every(Boolean);
    }, { timeoutMs, signal, what: `every node to see ${replica.key} promoted`, intervalMs: 20 }, () => last);
    return Date.now() - t0;
}
