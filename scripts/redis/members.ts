/**
 * Who belongs to the cluster: every node the topology names and every other node
 * they know (such as a master the topology no longer declares), read into one view;
 * the clusters those nodes form; whether the members agree yet. The commands' shared
 * start (commands/session.ts) is built on these.
 */
import { Topology } from "../../components/topology";
import { ClusterNodeInfo, slotOwners, SLOT_COUNT } from "../plan/clusterNodes";
import { ClusterView } from "../plan/clusterView";
import { nodeKey } from "../plan/node";
import { RefusedError } from "../errors";
import { readView } from "./clusterView";
import { NodeKey, NodePool } from "./pool";

/**
 * Reads the topology's nodes, then any node they know that is not in the topology
 * (skipping nodes flagged noaddr or in handshake), so removed masters are seen too.
 */
export async function readCluster(pool: NodePool, topology: Topology, extra: NodeKey[] = []): Promise<ClusterView> {
    const keys = new Set([...topology.nodes.map(nodeKey), ...extra]);
    const view = await readView(pool, [...keys]);
    const more: NodeKey[] = [];
    for (const n of view.knownNodes().values()) {
        if (!keys.has(n.key) && n.host && !n.flags.includes("noaddr") && !n.flags.includes("handshake")) more.push(n.key);
    }
    return more.length ? view.with(await readView(pool, more)) : view;
}

/** The id of the cluster the topology's reachable nodes belong to: nodes that know at least one other node. */
export function members(view: ClusterView): Map<string, ClusterNodeInfo> {
    return new Map(view.members().map((v) => [v.myself!.id, v.myself!]));
}

/**
 * The clusters the reachable nodes belong to: nodes that know each other (directly or
 * through a common node) are one cluster. Nodes that know nobody and own nothing are in
 * none. More than one means the topology names another cluster's nodes.
 */
export function clustersOf(view: ClusterView): { keys: NodeKey[]; ids: Set<string> }[] {
    const groups: { keys: NodeKey[]; ids: Set<string> }[] = [];
    for (const v of view.members()) {
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
    const members = view.members();
    if (members.length === 0) return undefined;
    const open = new Set(view.openSlots().map((o) => o.slot));
    const withOpen = new Set(view.openSlots().map((o) => o.node));
    const notOk = members.filter((v) => v.clusterInfo.cluster_state !== "ok" && !withOpen.has(v.key));
    if (notOk.length) return `cluster_state is ${notOk[0].clusterInfo.cluster_state ?? "unknown"} on ${notOk.map((v) => v.key).join(", ")}`;
    const disagree = view.disagreeingSlots(members, open);
    if (disagree.length) return `the nodes do not agree on the owner of slot ${disagree[0]} yet`;
    const reachableIds = new Set(members.map((v) => v.myself!.id));
    const owners = slotOwners(members[0].nodes);
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
        if (open.has(slot)) continue;
        const owner = owners[slot];
        if (owner && !reachableIds.has(owner)) {
            const n = view.knownNodes().get(owner);
            return `master ${n?.key ?? owner} owns slots (${slot} and maybe more) but cannot be reached`;
        }
    }
    return undefined;
}
