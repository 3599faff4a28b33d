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
import { interruption, RefusedError } from "../errors";
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
 * How long Redis gives a manual failover (CLUSTER_MF_TIMEOUT in cluster.h, the same
 * in Redis 6.2, 7.x and Valkey 8): a replica not promoted by then gives up and logs
 * "Manual failover timed out", and its master resumes writes.
 */
export const MANUAL_FAILOVER_TIMEOUT_MS = 5000;

/** A manual failover Redis aborted, and when the tool tries again. */
export interface FailoverRetry {
    /** Why Redis could not promote the replica in its window. */
    reason: string;
    /** How long the tool waits before sending CLUSTER FAILOVER again. */
    waitMs: number;
}

export interface RunFailoverOptions {
    /** Called when Redis aborted the first attempt, before the wait for the second. */
    onRetry?: (r: FailoverRetry) => void;
}

/** CONFIG GET cluster-node-timeout, ms (the stack default when it cannot be read). */
async function nodeTimeoutMs(pool: NodePool, key: NodeKey): Promise<number> {
    try {
        const r = (await pool.call(key, "CONFIG", "GET", "cluster-node-timeout")) as string[];
        const n = Number(r[1]);
        return Number.isFinite(n) && n > 0 ? n : 5000;
    } catch {
        return 5000;
    }
}

/**
 * CLUSTER FAILOVER [FORCE|TAKEOVER] on `replica`, then waits until every reachable
 * node reports it as a master that owns the old master's slots. Returns the time taken.
 *
 * A default or FORCE failover needs the votes of a majority of masters, and a master
 * votes about the replicas of one master at most once per 2 × cluster-node-timeout
 * (clusterSendFailoverAuthIfNeeded: "can't vote about this master before N
 * milliseconds"); a default one also needs the replica caught up, which a replica
 * demoted by the previous failover may not be (full resync). A third failover of one
 * shard within seconds therefore lands in that window, and Redis aborts it after
 * MANUAL_FAILOVER_TIMEOUT_MS with nothing changed. That is detected (the replica
 * still follows the old master once the window has passed) and the failover is sent
 * once more when Redis may accept it: 2 × node timeout after the first attempt (the
 * vote that blocks it was cast before that attempt), with the replica's link up.
 * TAKEOVER needs no vote and is not retried.
 */
export async function runFailover(pool: NodePool, replica: { id: string; key: NodeKey }, oldMasterId: string, mode: FailoverMode, allKeys: NodeKey[], timeoutMs: number, signal?: AbortSignal, opts: RunFailoverOptions = {}): Promise<number> {
    const t0 = Date.now();
    for (let attempt = 1; ; attempt++) {
        const sent = Date.now();
        await pool.call(replica.key, "CLUSTER", "FAILOVER", ...(mode === "default" ? [] : [mode.toUpperCase()]));
        const abortedAfter = mode === "takeover" ? undefined : sent + MANUAL_FAILOVER_TIMEOUT_MS + 1000;
        const outcome = await waitPromotion(pool, replica, oldMasterId, allKeys, timeoutMs, signal, abortedAfter);
        if (outcome === "promoted") return Date.now() - t0;
        const nt = await nodeTimeoutMs(pool, replica.key);
        const reason = `Redis aborted the manual failover after ${MANUAL_FAILOVER_TIMEOUT_MS} ms with nothing changed ("Manual failover timed out"): ` +
            `masters vote about one master's replicas at most once per 2 × cluster-node-timeout (${2 * nt} ms), and a replica demoted by a recent failover may still be resyncing`;
        if (attempt >= 2) throw new RefusedError(`${reason}; it did so twice, ${fmtMs(2 * nt)} apart. Wait a little and retry`, { node: replica.key });
        const waitMs = Math.max(0, sent + 2 * nt + 250 - Date.now());
        opts.onRetry?.({ reason, waitMs });
        await sleep(waitMs, signal);
        let link = "";
        await waitUntil(async () => {
            const info = parseInfo((await pool.call(replica.key, "INFO", "replication")) as string);
            link = `master_link_status:${info.master_link_status ?? "?"}, master_sync_in_progress:${info.master_sync_in_progress ?? "?"}`;
            return info.master_link_status === "up";
        }, { timeoutMs, signal, what: `${replica.key} to be in sync with its master again before retrying`, intervalMs: 50 }, () => link);
    }
}

const fmtMs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
    const stopped = () => interruption(signal, { during: "the pause before retrying the failover", state: "Redis aborted the first attempt; nothing changed", resume: "rerun the failover" });
    if (signal?.aborted) return Promise.reject(stopped());
    return new Promise((res, rej) => {
        const t = setTimeout(() => {
            signal?.removeEventListener("abort", onAbort);
            res();
        }, ms);
        const onAbort = () => {
            clearTimeout(t);
            rej(stopped());
        };
        signal?.addEventListener("abort", onAbort, { once: true });
    });
}

/**
 * Polls until every reachable node sees the promotion ("promoted"), or, after
 * `abortedAfter`, until the replica itself still follows the old master ("aborted":
 * Redis gave up the manual failover). Throws on `timeoutMs`.
 */
async function waitPromotion(pool: NodePool, replica: { id: string; key: NodeKey }, oldMasterId: string, allKeys: NodeKey[], timeoutMs: number, signal: AbortSignal | undefined, abortedAfter: number | undefined): Promise<"promoted" | "aborted"> {
    let last = "";
    return waitUntil<"promoted" | "aborted">(async () => {
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
        if (seen.length > 0 && seen.every(Boolean)) return "promoted";
        if (abortedAfter !== undefined && Date.now() >= abortedAfter) {
            const me = v.self(replica.key);
            if (me && me.role === "replica" && me.masterId === oldMasterId) return "aborted";
        }
        return false;
    }, { timeoutMs, signal, what: `every node to see ${replica.key} promoted`, intervalMs: 20 }, () => last);
}
