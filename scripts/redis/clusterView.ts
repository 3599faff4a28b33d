/**
 * What every node says about the cluster, read in parallel: `CLUSTER NODES` and
 * `CLUSTER INFO` per reachable node. Commands plan from this view and re-read it
 * between steps; helpers here answer the questions they share (agreement on the
 * slot map, open slots, who is the master of what).
 */
import { interruption, LeftBehind, RefusedError, WaitTimeoutError } from "../errors";
import { ClusterNodeInfo, parseClusterNodes, slotOwners, SLOT_COUNT } from "./clusterNodes";
import { NodeKey, NodePool } from "./pool";

export interface NodeView {
    key: NodeKey;
    reachable: boolean;
    error?: string;
    /** The node's own CLUSTER NODES, parsed. */
    nodes: ClusterNodeInfo[];
    myself?: ClusterNodeInfo;
    /** CLUSTER INFO fields (cluster_state, cluster_known_nodes, cluster_current_epoch, ...). */
    info: Record<string, string>;
}

export interface OpenSlot {
    slot: number;
    /** The node (key) reporting it. */
    node: NodeKey;
    nodeId: string;
    state: "migrating" | "importing";
    /** Peer node id (target when migrating, source when importing). */
    peerId: string;
}

export function parseInfo(text: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const line of text.split(/\r?\n/)) {
        if (!line || line.startsWith("#")) continue;
        const i = line.indexOf(":");
        if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
    }
    return out;
}

export class ClusterView {
    constructor(readonly views: Map<NodeKey, NodeView>) {}

    /** Reads every node in parallel; unreachable nodes are recorded, not thrown. */
    static async read(pool: NodePool, keys: NodeKey[]): Promise<ClusterView> {
        const entries = await Promise.all(keys.map(async (key): Promise<[NodeKey, NodeView]> => {
            try {
                const c = await pool.get(key);
                const [nodesText, infoText] = (await c.pipeline().call("CLUSTER", "NODES").call("CLUSTER", "INFO").exec())!.map(([err, res]) => {
                    if (err) throw err;
                    return res as string;
                });
                const nodes = parseClusterNodes(nodesText);
                return [key, { key, reachable: true, nodes, myself: nodes.find((n) => n.myself), info: parseInfo(infoText) }];
            } catch (e) {
                if (e instanceof RefusedError) throw e; // the wrong node answered (pool.ts identity check)
                pool.drop(key);
                return [key, { key, reachable: false, error: (e as Error).message, nodes: [], info: {} }];
            }
        }));
        return new ClusterView(new Map(entries));
    }

    reachable(): NodeView[] {
        return [...this.views.values()].filter((v) => v.reachable);
    }

    unreachable(): NodeView[] {
        return [...this.views.values()].filter((v) => !v.reachable);
    }

    /** Node id -> the key we reached it by (only for reachable nodes). */
    idToKey(): Map<string, NodeKey> {
        const m = new Map<string, NodeKey>();
        for (const v of this.reachable()) if (v.myself) m.set(v.myself.id, v.key);
        return m;
    }

    /** The node's own line, by key. */
    self(key: NodeKey): ClusterNodeInfo | undefined {
        return this.views.get(key)?.myself;
    }

    /** Every node id any reachable node knows, with the line from the first node that knows it. */
    knownNodes(): Map<string, ClusterNodeInfo> {
        const m = new Map<string, ClusterNodeInfo>();
        for (const v of this.reachable()) {
            for (const n of v.nodes) {
                if (n.myself || !m.has(n.id)) m.set(n.id, n);
            }
        }
        return m;
    }

    /** Slot owners as node `key` sees them. */
    slotMapOf(key: NodeKey): (string | undefined)[] {
        return slotOwners(this.views.get(key)?.nodes ?? []);
    }

    /** True when every reachable node reports the same owner for every slot. */
    slotMapsAgree(): boolean {
        const maps = this.reachable().map((v) => slotOwners(v.nodes));
        if (maps.length <= 1) return true;
        for (let s = 0; s < SLOT_COUNT; s++) {
            const o = maps[0][s];
            for (let i = 1; i < maps.length; i++) if (maps[i][s] !== o) return false;
        }
        return true;
    }

    /** Migrating/importing slots as each node reports them on its own line. */
    openSlots(): OpenSlot[] {
        const out: OpenSlot[] = [];
        for (const v of this.reachable()) {
            const me = v.myself;
            if (!me) continue;
            for (const [slot, peerId] of me.migrating) out.push({ slot, node: v.key, nodeId: me.id, state: "migrating", peerId });
            for (const [slot, peerId] of me.importing) out.push({ slot, node: v.key, nodeId: me.id, state: "importing", peerId });
        }
        return out.sort((a, b) => a.slot - b.slot);
    }

    /** Whether every reachable node reports cluster_state:ok. */
    allOk(): boolean {
        const r = this.reachable();
        return r.length > 0 && r.every((v) => v.info.cluster_state === "ok");
    }
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
