/**
 * Who belongs to the cluster: every node the topology names and every other node
 * they know (such as a master the topology no longer declares), read into one view;
 * the clusters those nodes form; whether the members agree yet. The commands' shared
 * start (commands/session.ts) is built on these.
 */
import { Topology, TopologyNode } from "../../components/topology";
import { ClusterNodeInfo, slotOwners, SLOT_COUNT } from "./clusterNodes";
import { ClusterView } from "./clusterView";
import { RefusedError } from "../errors";
import { NodeKey, NodePool } from "./pool";

export const keyOfNode = (n: Pick<TopologyNode, "host" | "port">): NodeKey => `${n.host}:${n.port}`;

/**
 * Reads the topology's nodes, then any node they know that is not in the topology
 * (skipping nodes flagged noaddr or in handshake), so removed masters are seen too.
 */
export async function readCluster(pool: NodePool, topology: Topology, extra: NodeKey[] = []): Promise<ClusterView> {
    const keys = new Set([...topology.nodes.map(keyOfNode), ...extra]);
    let view = await ClusterView.read(pool, [...keys]);
    const more: NodeKey[] = [];
    for (const n of view.knownNodes().values()) {
        if (!keys.has(n.key) && n.host && !n.flags.includes("noaddr") && !n.flags.includes("handshake")) more.push(n.key);
    }
    if (more.length) {
        const other = await ClusterView.read(pool, more);
        view = new ClusterView(new Map([...view.views, ...other.views]));
    }
    return view;
}

/** The id of the cluster the topology's reachable nodes belong to: nodes that know at least one other node. */
export function members(view: ClusterView): Map<string, ClusterNodeInfo> {
    const out = new Map<string, ClusterNodeInfo>();
    for (const v of view.reachable()) {
        if (!v.myself) continue;
        if (v.nodes.length > 1 || v.myself.slots.length > 0) out.set(v.myself.id, v.myself);
    }
    return out;
}

/**
 * The clusters the reachable nodes belong to: nodes that know each other (directly or
 * through a common node) are one cluster. Nodes that know nobody and own nothing are in
 * none. More than one means the topology names another cluster's nodes.
 */
export function clustersOf(view: ClusterView): { keys: NodeKey[]; ids: Set<string> }[] {
    const groups: { keys: NodeKey[]; ids: Set<string> }[] = [];
    for (const v of view.reachable()) {
        if (!v.myself || (v.nodes.length <= 1 && v.myself.slots.length === 0)) continue;
        const ids = new Set(v.nodes.filter((n) => !n.flags.includes("handshake") && !n.flags.includes("noaddr")).map((n) => n.id));
        const merged = { keys: [v.key], ids };
        for (const g of groups.filter((g) => [...ids].some((id) => g.ids.has(id)))) {
            merged.keys.push(...g.keys);
            for (const id of g.ids) merged.ids.add(id);
            groups.splice(groups.indexOf(g), 1);
        }
        groups.push(merged);
    }
    return groups;
}

/** Refuses a topology whose nodes belong to two formed clusters (create refuses them too). */
export function refuseSeveralClusters(view: ClusterView, op: string): void {
    const groups = clustersOf(view);
    if (groups.length <= 1) return;
    const list = groups.map((g, i) => `  cluster ${i + 1}: ${g.keys.sort().join(", ")}`).join("\n");
    throw new RefusedError(`${op}: the topology's nodes belong to ${groups.length} different clusters (they do not know each other); nothing was changed:\n${list}\n` +
        `  A node of another cluster cannot join this one. Fix the topology, or reset a node you mean to reuse (CLUSTER RESET HARD, after moving its keys away).`);
}

/**
 * Why the members of `view` do not agree yet, or undefined when they do. Slots open on
 * some node are left out: a node importing a slot keeps its old owner for it whatever
 * gossip says (cluster.c clusterUpdateSlotsConfigWith), so after the source of a move died
 * and its replica took over, the importing node disagrees, and may report
 * cluster_state:fail, until the open-slot repair clears the slot.
 */
export function unsettled(view: ClusterView): string | undefined {
    const members = view.reachable().filter((v) => v.myself && (v.nodes.length > 1 || v.myself.slots.length > 0));
    if (members.length === 0) return undefined;
    const open = new Set(view.openSlots().map((o) => o.slot));
    const withOpen = new Set(view.openSlots().map((o) => o.node));
    const notOk = members.filter((v) => v.info.cluster_state !== "ok" && !withOpen.has(v.key));
    if (notOk.length) return `cluster_state is ${notOk[0].info.cluster_state ?? "unknown"} on ${notOk.map((v) => v.key).join(", ")}`;
    const reachableIds = new Set(members.map((v) => v.myself!.id));
    const maps = members.map((v) => slotOwners(v.nodes));
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
        if (open.has(slot)) continue;
        const owner = maps[0][slot];
        if (maps.some((m) => m[slot] !== owner)) return `the nodes do not agree on the owner of slot ${slot} yet`;
        if (owner && !reachableIds.has(owner)) {
            const n = view.knownNodes().get(owner);
            return `master ${n?.key ?? owner} owns slots (${slot} and maybe more) but cannot be reached`;
        }
    }
    return undefined;
}

/**
 * A node the cluster knows, named by id (or a unique prefix of at least 6
 * characters), topology name, or host:port. Undefined when none matches.
 */
export function findKnownNode(arg: string, view: ClusterView, topology: Topology): ClusterNodeInfo | undefined {
    const known = [...view.knownNodes().values()];
    const topo = topology.nodes.find((n) => n.name === arg);
    const key = topo ? keyOfNode(topo) : arg;
    const byKey = known.filter((n) => n.key === key);
    if (byKey.length === 1) return byKey[0];
    if (byKey.length > 1) return byKey.find((n) => !n.failing) ?? byKey[0];
    if (/^[0-9a-f]{6,40}$/.test(arg)) {
        const byId = known.filter((n) => n.id.startsWith(arg));
        if (byId.length === 1) return byId[0];
    }
    return undefined;
}
