/**
 * "Fully formed" as `create` waits for it and the benchmark measures it, the same
 * way for our `create` and for `redis-cli --cluster create`:
 *  - every expected node answers, none is flagged failing, none knows a stranger;
 *  - every node reports cluster_state:ok, all 16384 slots are assigned and every
 *    node sees the same owner for every slot;
 *  - every replica's link to its master is up (INFO replication master_link_status),
 *    and as many replicas as expected are attached.
 * Not required: that every node already knows every replica, or which master each
 * replica follows. Both reach every node with the periodic cluster-bus pings
 * (within about cluster-node-timeout/2) and neither affects routing or writes.
 * (`status` does list nodes that disagree on a replica's master as a problem; right
 * after create there are none to find, because replicas meet the rest of the cluster
 * only after CLUSTER REPLICATE, see form.ts step 3 and docs/cluster-tool.md.)
 */
import { SLOT_COUNT } from "../plan/clusterNodes";
import { ClusterView, NodeSample } from "../plan/clusterView";
import { readNodes, waitUntil } from "./clusterView";
import { NodeKey, NodePool } from "./pool";

export interface FormationExpectation {
    /** Nodes that must all be part of the cluster. */
    keys: NodeKey[];
    /** Total number of replicas the cluster must have (so a wait does not end before they are attached). */
    replicas?: number;
    /** Node ids to ignore (nodes left out on purpose, old identities accepted with --force). */
    tolerateIds?: Set<string>;
}

/**
 * Why the cluster is not (yet) fully formed; empty when it is. Pure: reads only
 * the view, whose samples hold INFO replication.
 */
export function formationProblems(view: ClusterView, expect: FormationExpectation): string[] {
    const problems: string[] = [];
    const down = expect.keys.filter((k) => !view.views.get(k)?.reachable);
    if (down.length) problems.push(`unreachable: ${down.join(", ")}`);
    const reachable = expect.keys.map((k) => view.views.get(k)).filter((v): v is NodeSample => !!v?.reachable && !!v.myself);
    const ids = new Set(reachable.map((v) => v.myself!.id));
    let replicas = 0;
    for (const v of reachable) {
        const me = v.myself!;
        const known = v.nodes.filter((n) => !n.flags.includes("handshake") && !expect.tolerateIds?.has(n.id));
        const strangers = known.filter((n) => !ids.has(n.id));
        if (strangers.length) problems.push(`${v.key} knows node(s) outside the set: ${strangers.map((n) => n.key || n.id).join(", ")}`);
        // Every member must know every other one by id: a slotless new master leaves the slot maps
        // in agreement while a node that has not learned it yet refuses SETSLOT … <its id>.
        const knownIds = new Set(known.map((n) => n.id));
        const unknown = reachable.filter((o) => !knownIds.has(o.myself!.id));
        if (unknown.length) problems.push(`${v.key} does not know ${unknown.map((o) => o.key).join(", ")} yet`);
        const failing = known.filter((n) => n.failing);
        if (failing.length) problems.push(`${v.key} flags ${failing.map((n) => `${n.key} ${n.flags.includes("fail") ? "fail" : "fail?"}`).join(", ")}`);
        if (v.clusterInfo.cluster_state !== "ok") problems.push(`${v.key} cluster_state:${v.clusterInfo.cluster_state ?? "?"}`);
        if (me.role === "replica") {
            replicas++;
            const link = v.info.master_link_status;
            if (link !== "up") problems.push(`${v.key} master_link_status:${link ?? "?"}`);
        }
    }
    // Every member agrees on whom each replica follows, as `status` requires (checkReplicaMasterAgreement):
    // CLUSTER REPLICATE is not broadcast, the others learn it from their next ping with the replica
    // (up to cluster-node-timeout / 2 later); "formed" before that would have status call it unhealthy.
    for (const r of reachable) {
        const me = r.myself!;
        if (me.role !== "replica" || !me.masterId) continue;
        const stale = reachable.filter((o) => {
            const line = o.nodes.find((n) => n.id === me.id);
            return !!line && !line.myself && !line.failing && !line.flags.includes("handshake") && (line.role !== "replica" || line.masterId !== me.masterId);
        });
        if (stale.length) problems.push(`${stale.map((o) => o.key).join(", ")} ${stale.length === 1 ? "has" : "have"} not yet learned that ${r.key} replicates ${me.masterId.slice(0, 8)}`);
    }
    if (reachable.length) {
        // Unassigned as the first node sees it: a slot some node has not learned yet counts.
        const uncovered = view.unassignedSlots(reachable.slice(0, 1)).length;
        if (uncovered) problems.push(`${uncovered} of ${SLOT_COUNT} slots unassigned`);
        const disagree = view.disagreeingSlots(reachable).length;
        if (disagree) problems.push(`nodes disagree on the owner of ${disagree} slot(s)`);
    }
    if (expect.replicas !== undefined && replicas < expect.replicas) problems.push(`${replicas} of ${expect.replicas} replicas attached`);
    return problems;
}

/** Reads the view and replication state once and judges it. */
export async function checkFormation(pool: NodePool, expect: FormationExpectation): Promise<{ problems: string[]; view: ClusterView }> {
    const view = ClusterView.of(await readNodes(pool, expect.keys, { info: ["replication"] }));
    return { problems: formationProblems(view, expect), view };
}

/**
 * Polls (fast backoff from 10 ms, up to `maxIntervalMs`) until the cluster is fully
 * formed. `onPoll` sees every view read (formed or not) before it is judged, so a
 * caller can act on progress (form.ts restores timeouts and introduces nodes).
 * Throws on timeout with the problems still seen.
 */
export async function waitFormed(
    pool: NodePool, expect: FormationExpectation,
    opts: { timeoutMs: number; signal?: AbortSignal; maxIntervalMs?: number; onPoll?: (view: ClusterView, problems: string[]) => Promise<void> },
): Promise<ClusterView> {
    let last: string[] = [];
    return waitUntil(async () => {
        const { problems, view } = await checkFormation(pool, expect);
        last = problems;
        await opts.onPoll?.(view, problems);
        return problems.length === 0 ? view : undefined;
    }, { timeoutMs: opts.timeoutMs, signal: opts.signal, maxIntervalMs: opts.maxIntervalMs, what: "the cluster to be fully formed" }, () => last.slice(0, 6).join("; ") + (last.length > 6 ? ` (+${last.length - 6} more)` : ""));
}
