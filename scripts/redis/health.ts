/**
 * "Fully formed" as `create` waits for it and the benchmark measures it, the same
 * way for our `create` and for `redis-cli --cluster create`:
 *  - every expected node answers, none is flagged failing, none knows a stranger;
 *  - every node reports cluster_state:ok, all 16384 slots are assigned and every
 *    node sees the same owner for every slot;
 *  - every replica's link to its master is up (INFO replication master_link_status),
 *    and as many replicas as expected are attached;
 *  - every node that lists a replica lists it under the master the replica says it
 *    follows (`status` calls a disagreement a problem). CLUSTER REPLICATE is not
 *    broadcast: the others learn it from their next ping with the replica, up to
 *    cluster-node-timeout/2 later; `create` tells them sooner (form.ts, roleLag).
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
    // Every member agrees on whom each replica follows, as `status` requires (checkReplicaMasterAgreement).
    const stale = new Map<NodeKey, { to: NodeKey[]; masterId: string }>();
    for (const { from, to, masterId } of staleReplicaViews(view, expect.keys)) {
        const s = stale.get(from) ?? { to: [], masterId };
        s.to.push(to);
        stale.set(from, s);
    }
    for (const [from, { to, masterId }] of stale) problems.push(`${to.join(", ")} ${to.length === 1 ? "has" : "have"} not yet learned that ${from} replicates ${masterId.slice(0, 8)}`);
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

/**
 * Each node `to` whose line for replica `from` is stale: it lists `from` as a master, or
 * under another master than the one `from` says it follows (the replica is the authority).
 * Nodes that do not list `from` at all are not counted here. Pure.
 */
export function staleReplicaViews(view: ClusterView, keys: NodeKey[]): { from: NodeKey; to: NodeKey; masterId: string }[] {
    const out: { from: NodeKey; to: NodeKey; masterId: string }[] = [];
    for (const from of keys) {
        const me = view.views.get(from)?.myself;
        if (!me || me.role !== "replica" || !me.masterId) continue;
        for (const to of keys) {
            const seen = to === from ? undefined : view.views.get(to)?.nodes.find((n) => n.id === me.id);
            if (seen && !(seen.role === "replica" && seen.masterId === me.masterId)) out.push({ from, to, masterId: me.masterId });
        }
    }
    return out;
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
