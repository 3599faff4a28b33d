/**
 * A short `cluster-node-timeout` on joining masters, for the moment of the join only.
 *
 * Why: a master that has been in a minority stays in `cluster_state:fail` for a
 * "rejoin delay" after it sees the majority again: `clusterUpdateState` in
 * Redis 6.2/7.x src/cluster.c and Valkey 8 src/cluster_legacy.c refuses the
 * switch to ok while `now - among_minority_time < rejoin_delay`, where
 * rejoin_delay is the node's own cluster-node-timeout clamped to
 * [CLUSTER_MIN_REJOIN_DELAY 500, CLUSTER_MAX_REJOIN_DELAY 5000] ms. A fresh node
 * counts as a minority of itself (it knows no master owning slots, so
 * 0 reachable < quorum 1), so every new master, in `create` as in `scale`,
 * refuses queries (and MIGRATE into it) for that delay after it learns the
 * cluster: 5 s with the stack default of 5000 ms. The value is read at the
 * moment of the switch, so a node that runs 500 ms then waits 500 ms.
 *
 * Risks, and how they are held:
 *  - Failure detection: a node with 500 ms flags a peer PFAIL after 500 ms
 *    without a PONG and gossips it. On Redis 6.2/7.x the report of a master
 *    counts towards FAIL even when it owns no slots (a new master's does; Valkey 8
 *    counts only masters with slots), so it can supply one vote of the quorum
 *    early, for a peer that at least one other master has already flagged after
 *    its full timeout. Held by: only masters that are joining get it (never a
 *    member that serves, never a replica: a replica's own timeout drives its
 *    election), each gets its configured value back as soon as it reports
 *    cluster_state:ok (polled every ≤ 50 ms; about 0.5-1 s), and always before
 *    any slot moves (a source busy in MIGRATE must not look dead to anyone).
 *  - Handshakes started by that node time out after max(timeout, 1000 ms):
 *    fine on a LAN, and the join re-MEETs what it does not see joined.
 *  - Persistence: the value is set with CONFIG SET only; nothing in this tool
 *    runs CONFIG REWRITE, and a node that restarts reads the configured value
 *    from its redis.conf. The restore is verified with CONFIG GET.
 *  - A run killed in the window: the next create/scale finds a node at exactly
 *    JOIN_NODE_TIMEOUT_MS (below the stack's minimum of 1000, so never a
 *    configured value) and restores the configured value: from the settings
 *    the command was given, else the value the other nodes run.
 */
import { StepError } from "../errors";
import { Output } from "../output";
import { ClusterView } from "../plan/clusterView";
import { JOIN_NODE_TIMEOUT_MS } from "../plan/status";
import { NodeKey, NodePool } from "./pool";

/** The value a joining master runs with: the smallest that still gives the minimum rejoin delay (500 ms). `status` flags a node left at it. */
export { JOIN_NODE_TIMEOUT_MS };

/**
 * The longest a node keeps the join value: a master that does not serve by then
 * gets its configured value back and joins with its own rejoin delay. Bounds how
 * long a stall can be judged by 500 ms: on 2 loaded cores, 30 masters stalled
 * together flagged each other FAIL, and kept doing it while they did not serve.
 */
export const JOIN_WINDOW_MS = 3000;

/** CONFIG GET cluster-node-timeout, ms; undefined when the node refuses CONFIG (renamed, ACL) or is unreachable. */
export async function readNodeTimeout(pool: NodePool, key: NodeKey): Promise<number | undefined> {
    try {
        const r = (await pool.call(key, "CONFIG", "GET", "cluster-node-timeout")) as string[];
        return r.length >= 2 ? Number(r[1]) : undefined;
    } catch {
        return undefined;
    }
}

/**
 * What the nodes should run: `configured` (from the stack's settings) when given,
 * else the most common value among nodes not at the join value (the larger on a
 * tie). Undefined when nothing but join values are known. Pure.
 */
export function referenceTimeout(values: (number | undefined)[], configured?: number): number | undefined {
    if (configured !== undefined) return configured;
    const counts = new Map<number, number>();
    for (const v of values) if (v !== undefined && v !== JOIN_NODE_TIMEOUT_MS) counts.set(v, (counts.get(v) ?? 0) + 1);
    let best: number | undefined;
    for (const [v, n] of counts) if (best === undefined || n > counts.get(best)! || (n === counts.get(best)! && v > best)) best = v;
    return best;
}

export interface RestoreProblem {
    node: string;
    message: string;
}

interface Lowered {
    name: string;
    /** The value to put back. */
    configured: number;
    /** When it was shortened (Date.now()). */
    since: number;
}

/**
 * The joining masters' timeouts: shortened before the join, each restored as soon
 * as its node serves, the rest by `restoreAll` (on every exit path of the caller).
 */
export class JoinTimeouts {
    private readonly lowered = new Map<NodeKey, Lowered>();

    constructor(private readonly pool: NodePool, private readonly out: Output, private readonly op: string) {}

    /** Nodes still running the join value because of us. */
    get pending(): NodeKey[] {
        return [...this.lowered.keys()];
    }

    /**
     * Shortens the timeout on these joining masters. `current` is the value read
     * before; a node already at the join value (left by a killed run) is adopted
     * with `reference` as the value to restore. Best effort per node: a node that
     * refuses CONFIG SET joins with its own delay.
     */
    async shorten(nodes: { key: NodeKey; name: string; current?: number }[], reference: number | undefined): Promise<void> {
        const now: NodeKey[] = [];
        await Promise.all(nodes.map(async (n) => {
            if (n.current === undefined) return;
            if (n.current === JOIN_NODE_TIMEOUT_MS) {
                if (reference !== undefined && reference !== JOIN_NODE_TIMEOUT_MS) this.adopt(n.key, n.name, reference);
                return;
            }
            if (n.current < JOIN_NODE_TIMEOUT_MS) return; // configured shorter still: nothing to gain
            try {
                await this.pool.call(n.key, "CONFIG", "SET", "cluster-node-timeout", String(JOIN_NODE_TIMEOUT_MS));
                this.lowered.set(n.key, { name: n.name, configured: n.current, since: Date.now() });
                now.push(n.key);
            } catch (e) {
                this.out.warn(`${n.name} (${n.key}): CONFIG SET cluster-node-timeout refused (${(e as Error).message}); it joins with its own rejoin delay (up to 5 s)`);
            }
        }));
        if (now.length) {
            this.out.event("step", { step: "join-timeout", nodes: now, ms: JOIN_NODE_TIMEOUT_MS },
                `cluster-node-timeout ${JOIN_NODE_TIMEOUT_MS} ms on ${now.length} joining master(s) until each serves (Redis holds a new master for its node timeout, up to 5 s)`);
        }
    }

    /** Takes over a node an interrupted run left at the join value: `configured` goes back on restore. */
    adopt(key: NodeKey, name: string, configured: number): void {
        this.lowered.set(key, { name, configured, since: Date.now() });
        this.out.warn(`${name} (${key}) runs cluster-node-timeout ${JOIN_NODE_TIMEOUT_MS} ms, left by an interrupted join; it gets ${configured} ms back`);
    }

    /**
     * Restores the nodes that report cluster_state:ok in `view`, and those shortened
     * longer than JOIN_WINDOW_MS ago. Throws StepError when a restore does not hold.
     */
    async restoreServing(view: ClusterView, now = Date.now()): Promise<void> {
        const serving = this.pending.filter((k) => view.views.get(k)?.clusterInfo.cluster_state === "ok");
        const late = this.pending.filter((k) => !serving.includes(k) && now - this.lowered.get(k)!.since > JOIN_WINDOW_MS);
        for (const k of late) this.out.warn(`${this.lowered.get(k)!.name} (${k}) does not serve ${JOIN_WINDOW_MS} ms into its join: its cluster-node-timeout goes back now, and it joins with its own rejoin delay`);
        const problems = await this.restore([...serving, ...late]);
        if (problems.length) throw this.error(problems);
    }

    /**
     * Restores every node still shortened. Returns the problems (node unreachable,
     * value not taken); the caller throws them, or warns when it is already failing.
     */
    async restoreAll(): Promise<RestoreProblem[]> {
        return this.restore(this.pending);
    }

    /** The StepError for restore problems. */
    error(problems: RestoreProblem[]): StepError {
        return new StepError({
            op: this.op, step: "restore-node-timeout", node: problems.map((p) => p.node).join(", "), cause: problems.map((p) => p.message).join("; "),
            state: `cluster-node-timeout may still be ${JOIN_NODE_TIMEOUT_MS} ms there (runtime only: its redis.conf keeps the configured value)`,
            resume: `rerun the command: it finds a node left at ${JOIN_NODE_TIMEOUT_MS} ms and restores it (or: reconfigure, or CONFIG SET cluster-node-timeout <configured ms> on that node)`,
        });
    }

    private async restore(keys: NodeKey[]): Promise<RestoreProblem[]> {
        const problems: RestoreProblem[] = [];
        await Promise.all(keys.map(async (key) => {
            const l = this.lowered.get(key)!;
            try {
                await this.pool.call(key, "CONFIG", "SET", "cluster-node-timeout", String(l.configured));
                const now = await readNodeTimeout(this.pool, key);
                if (now !== l.configured) throw new Error(`CONFIG GET says ${now ?? "nothing"} after setting ${l.configured}`);
                this.lowered.delete(key);
                this.out.event("step", { step: "restore-node-timeout", node: key, ms: l.configured }, `${l.name}: cluster-node-timeout back to ${l.configured} ms`);
            } catch (e) {
                problems.push({ node: `${l.name} (${key})`, message: (e as Error).message });
            }
        }));
        return problems;
    }
}

/**
 * Finds nodes left at the join value by an interrupted run (the value is below
 * any configured one: the stack accepts 1000 ms and up) and restores the
 * reference value. Returns the keys restored; throws StepError when a restore
 * does not hold. A node at the join value with no reference to restore is
 * named in a warning.
 */
export async function restoreLeftoverTimeouts(pool: NodePool, nodes: { key: NodeKey; name: string }[], opts: { configured?: number; out: Output; op: string }): Promise<NodeKey[]> {
    const values = await Promise.all(nodes.map((n) => readNodeTimeout(pool, n.key)));
    const left = nodes.filter((_, i) => values[i] === JOIN_NODE_TIMEOUT_MS);
    if (!left.length) return [];
    const reference = referenceTimeout(values, opts.configured);
    if (reference === undefined || reference === JOIN_NODE_TIMEOUT_MS) {
        if (reference === undefined) {
            opts.out.warn(`${left.map((n) => `${n.name} (${n.key})`).join(", ")} run(s) cluster-node-timeout ${JOIN_NODE_TIMEOUT_MS} ms, the value a join sets for a moment, and no other node or settings file says what it should be: set it with reconfigure (or CONFIG SET cluster-node-timeout)`);
        }
        return [];
    }
    const t = new JoinTimeouts(pool, opts.out, opts.op);
    for (const n of left) t.adopt(n.key, n.name, reference);
    const problems = await t.restoreAll();
    if (problems.length) throw t.error(problems);
    return left.map((n) => n.key);
}
