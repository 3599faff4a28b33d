/**
 * What every node says about the cluster, as data: one `NodeSample` per node
 * (read by `readNodes`, scripts/redis/clusterView.ts) and the `ClusterView` over
 * them, which answers the questions every command shares: who is a member, do the
 * members agree on the slot map, which slots are open, who owns what. Pure: the
 * planners and judges (scripts/plan/) use it as well as the executors.
 */
import { ClusterNodeInfo, slotOwners, SLOT_COUNT } from "./clusterNodes";
import { EngineInfo } from "./engine";
import { Topology } from "../../components/topology";
import { NodeKey, nodeKey, parseNodeKey } from "./node";

/** Everything read from one node by one `readNodes` call; what was not asked for is empty. */
export interface NodeSample {
    key: NodeKey;
    reachable: boolean;
    error?: string;
    /** False when the node answered but runs with cluster-enabled no (only `readNodes` with `clusterOptional`). */
    clusterEnabled?: boolean;
    /** The node's own CLUSTER NODES, parsed. */
    nodes: ClusterNodeInfo[];
    myself?: ClusterNodeInfo;
    /** CLUSTER INFO fields (cluster_state, cluster_known_nodes, cluster_current_epoch, ...). */
    clusterInfo: Record<string, string>;
    /** The INFO sections asked for, flattened into one map (replication, memory, server ...). */
    info: Record<string, string>;
    /** INFO errorstats answered with its section (Redis 6.2+); only when asked for. */
    hasErrorstats?: boolean;
    /** INFO server redis_version (Valkey: its Redis compatibility level, 7.2.4 on Valkey 8); when server was read. */
    version?: string;
    /** INFO server: the engine and its own release (server_name, valkey_version); when server was read. */
    engine?: EngineInfo;
    /** DBSIZE, when asked for. */
    dbsize?: number;
    /** CONFIG GET of the directives asked for (those the node answered). */
    config?: Record<string, string>;
    /** For a replica: INFO replication of its master (offsets, its replicas' lag), from the master's own sample or read for it. */
    masterReplication?: Record<string, string>;
    /** ms since the epoch when the node answered. */
    at?: number;
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

/**
 * Whether a node belongs to a cluster: it knows at least one other node, or owns
 * slots. A node that knows nobody and owns nothing is a fresh (or reset) node, in
 * no cluster yet, whatever its role says.
 */
export function isMember(s: Pick<NodeSample, "reachable" | "nodes" | "myself">): boolean {
    return s.reachable && !!s.myself && (s.nodes.length > 1 || s.myself.slots.length > 0);
}

export class ClusterView {
    constructor(readonly views: Map<NodeKey, NodeSample>) {}

    static of(samples: Iterable<NodeSample>): ClusterView {
        return new ClusterView(new Map([...samples].map((s) => [s.key, s])));
    }

    /** This view with `other`'s samples added (other's win for a key read twice). */
    with(other: ClusterView): ClusterView {
        return new ClusterView(new Map([...this.views, ...other.views]));
    }

    reachable(): NodeSample[] {
        return [...this.views.values()].filter((v) => v.reachable);
    }

    unreachable(): NodeSample[] {
        return [...this.views.values()].filter((v) => !v.reachable);
    }

    /** Reachable nodes that belong to a cluster (`isMember`). */
    members(): NodeSample[] {
        return this.reachable().filter(isMember);
    }

    /** Whether the node read as `key` is a reachable member (with id `id`, when given). */
    isMember(key: NodeKey, id?: string): boolean {
        const v = this.views.get(key);
        return !!v && isMember(v) && (id === undefined || v.myself!.id === id);
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

    /** Every node id any reachable node knows, with the line from the first node that knows it (its own line when reachable). */
    knownNodes(): Map<string, ClusterNodeInfo> {
        const m = new Map<string, ClusterNodeInfo>();
        for (const v of this.reachable()) {
            for (const n of v.nodes) {
                if (n.myself || !m.has(n.id)) m.set(n.id, n);
            }
        }
        return m;
    }

    /**
     * Every node the members know (their own lines and their peers'), by id, nodes in
     * handshake left out: the cluster's membership as the cluster itself sees it.
     */
    clusterNodes(): Map<string, ClusterNodeInfo> {
        const out = new Map<string, ClusterNodeInfo>();
        for (const v of this.members()) {
            for (const n of v.nodes) if (!n.flags.includes("handshake") && (n.myself || !out.has(n.id))) out.set(n.id, n);
        }
        return out;
    }

    /** Slot owners as node `key` sees them. */
    slotMapOf(key: NodeKey): (string | undefined)[] {
        return slotOwners(this.views.get(key)?.nodes ?? []);
    }

    /**
     * The slots whose owner the nodes `among` (default: every reachable node) do not
     * agree on, slots in `skip` left out.
     */
    disagreeingSlots(among: NodeSample[] = this.reachable(), skip: Set<number> = new Set()): number[] {
        const maps = among.map((v) => slotOwners(v.nodes));
        const out: number[] = [];
        if (maps.length <= 1) return out;
        for (let s = 0; s < SLOT_COUNT; s++) {
            if (skip.has(s)) continue;
            const o = maps[0][s];
            for (let i = 1; i < maps.length; i++) {
                if (maps[i][s] !== o) {
                    out.push(s);
                    break;
                }
            }
        }
        return out;
    }

    /** True when every reachable node reports the same owner for every slot. */
    slotMapsAgree(): boolean {
        return this.disagreeingSlots().length === 0;
    }

    /** The slots no node of `among` (default: every reachable node) assigns to anyone. */
    unassignedSlots(among: NodeSample[] = this.reachable()): number[] {
        const maps = among.map((v) => slotOwners(v.nodes));
        const out: number[] = [];
        if (maps.length === 0) return out;
        for (let s = 0; s < SLOT_COUNT; s++) if (maps.every((m) => m[s] === undefined)) out.push(s);
        return out;
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
        return r.length > 0 && r.every((v) => v.clusterInfo.cluster_state === "ok");
    }
}

/**
 * A node named on the command line: a topology name, `host:port`, or a node id (or a
 * unique prefix of at least 6 characters) the cluster knows. `known` is the cluster's
 * line for it (a live one over a failing one at the same address), when it has one.
 * Undefined when the argument names nothing.
 */
export function resolveNodeArg(arg: string, view: ClusterView, topology: Topology): { key: NodeKey; known?: ClusterNodeInfo } | undefined {
    const known = [...view.knownNodes().values()];
    const topo = topology.nodes.find((n) => n.name === arg);
    const key = topo ? nodeKey(topo) : arg;
    const byKey = known.filter((n) => n.key === key);
    if (byKey.length) return { key, known: byKey.find((n) => !n.failing) ?? byKey[0] };
    if (/^[0-9a-f]{6,40}$/.test(arg)) {
        const byId = known.filter((n) => n.id.startsWith(arg));
        if (byId.length === 1) return { key: byId[0].key, known: byId[0] };
    }
    if (topo) return { key };
    try {
        parseNodeKey(arg);
        return { key: arg };
    } catch {
        return undefined;
    }
}
