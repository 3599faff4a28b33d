/**
 * The `create` executor: turns the topology's nodes into one Redis Cluster.
 *
 * probe (every node, in parallel) → refuse what is unsafe and plan the steps (pure,
 * scripts/plan/formation.ts) → place masters and replicas (pure,
 * scripts/plan/topology.ts, pinned by live state) → steps, each skipped when
 * the live state shows it done:
 *   1. config epochs: distinct CLUSTER SET-CONFIG-EPOCH on nodes that know no
 *      other node yet, so masters never start with colliding epochs (collision
 *      resolution would bump them one by one, slowly);
 *   2. slots: each planned master gets the still-unowned slots of its range, as
 *      CLUSTER ADDSLOTSRANGE (7.0+) or pipelined ADDSLOTS batches (6.2);
 *   3. meet: every node that does not know the anchor yet MEETs it, all in
 *      parallel; a replica also MEETs its own master, so it learns it by a direct
 *      handshake instead of waiting for gossip;
 *   4. replicate: each replica, as soon as it knows its master, CLUSTER REPLICATE;
 *   5. wait until formed (scripts/redis/health.ts), polling from 10 ms.
 * A rerun on a formed cluster changes nothing; on a half-formed one it does
 * only the missing steps.
 */
import { Topology } from "../../components/topology";
import { InterruptedError, interruption, RefusedError, StepError } from "../errors";
import { Output } from "../output";
import { assessLive, describePlan, FormSteps, LiveState, NodeProbe, planSteps, slotCommands, viewOfProbes } from "../plan/formation";
import { planTopology, PlanError, TopologyPlan } from "../plan/topology";
import { formatRanges, SlotRange } from "../plan/clusterNodes";
import { ClusterView } from "../plan/clusterView";
import { nodeKey } from "../plan/node";
import { readNodes, readView, waitUntil } from "./clusterView";
import { formationProblems, staleReplicaViews, waitFormed } from "./health";
import { JoinTimeouts, referenceTimeout, restoreLeftoverTimeouts } from "./joinTimeout";
import { NodeKey, NodePool } from "./pool";
/** Reads every node in parallel with one pipeline each; unreachable nodes are recorded, not thrown. */
export async function probeNodes(pool: NodePool, topology: Topology): Promise<NodeProbe[]> {
    const samples = await readNodes(pool, topology.nodes.map(nodeKey), { info: ["server", "replication"], dbsize: true, clusterOptional: true, config: ["cluster-node-timeout"] });
    return samples.map((s, i) => {
        const timeout = s.config?.["cluster-node-timeout"];
        return { ...s, node: topology.nodes[i], nodeTimeoutMs: timeout !== undefined ? Number(timeout) : undefined };
    });
}

/** The defaults of FormOptions, read by create's help (scripts/cli.ts). */
export const FORM_DEFAULTS = {
    /** How long to wait for convergence. */
    timeoutMs: 60000,
} as const;

export interface FormOptions {
    force?: boolean;
    dryRun?: boolean;
    /** How long to wait for convergence. @default FORM_DEFAULTS.timeoutMs */
    timeoutMs: number;
    signal?: AbortSignal;
    out: Output;
    /** How the user reruns, for error messages. @default "run create again" */
    resumeHint?: string;
    /**
     * The cluster-node-timeout the nodes are configured with (stack settings), to
     * restore on a node an interrupted join left shortened. @default the value the other nodes run
     */
    configuredNodeTimeoutMs?: number;
}

export interface FormResult {
    /** The cluster was fully formed before we started; nothing was changed. */
    alreadyFormed: boolean;
    dryRun: boolean;
    plan: TopologyPlan;
    steps: FormSteps;
    skipped: NodeKey[];
    warnings: string[];
    durationMs: number;
}

/** Forms (or completes) the cluster. Throws RefusedError before changing anything, StepError part-way. */
export async function formCluster(pool: NodePool, topology: Topology, opts: FormOptions): Promise<FormResult> {
    const t0 = Date.now();
    const out = opts.out;
    const resume = opts.resumeHint ?? "run create again with the same target: it reads the live state and does only the missing steps";

    const probes = await probeNodes(pool, topology);
    const live = assessLive(probes, topology, { force: opts.force });
    if (live.refusals.length) {
        throw new RefusedError(`create refused; nothing was changed:\n${live.refusals.map((r) => ` - ${r}`).join("\n")}`);
    }
    for (const f of live.forceable) out.warn(`--force: ${f}`);
    const usableKeys = live.usable.map((p) => p.key);

    let plan: TopologyPlan;
    try {
        plan = planTopology(topology, {
            pinnedMasters: live.pinnedMasters,
            unavailable: live.skipped,
            currentReplicas: live.replicaOf.keys(),
        });
    } catch (e) {
        if (e instanceof PlanError) throw new RefusedError(`create refused; nothing was changed:\n${e.problems.map((r) => ` - ${r}`).join("\n")}`);
        throw e;
    }
    const warnings = [...plan.warnings];
    const expectedReplicas = plan.shards.reduce((n, s) => n + s.replicas.filter((r) => usableKeys.includes(nodeKey(r))).length, 0);
    const liveIds = new Set(live.usable.map((p) => p.myself?.id));
    const tolerateIds = new Set(probes.flatMap((p) => p.nodes.filter((n) => !liveIds.has(n.id) && topology.nodes.some((t) => nodeKey(t) === n.key)).map((n) => n.id)));
    const expect = { keys: usableKeys, replicas: expectedReplicas, tolerateIds };

    // Already formed? Then report and change nothing.
    const problems = formationProblems(viewOfProbes(probes), expect);
    const steps = planSteps(plan, live);
    if (problems.length === 0) {
        if (!opts.dryRun) await restoreLeftoverTimeouts(pool, live.usable.map((p) => ({ key: p.key, name: p.node.name })), { configured: opts.configuredNodeTimeoutMs, out, op: "create" });
        out.event("formed", { already: true, nodes: usableKeys.length }, `cluster already formed: ${usableKeys.length} nodes, all slots assigned, replicas linked; nothing to do`);
        return { alreadyFormed: true, dryRun: !!opts.dryRun, plan, steps, skipped: live.skipped, warnings, durationMs: Date.now() - t0 };
    }
    for (const w of warnings) out.warn(w);
    for (const a of steps.attached) out.event("attached", { node: a.key, masterId: a.masterId }, `${a.name} already replicates ${a.masterId.slice(0, 8)}; left as is`);
    if (opts.dryRun) {
        out.event("plan", { plan: plan.shards.map((s) => ({ shard: s.shard, master: s.master.name, replicas: s.replicas.map((r) => r.name), slots: formatRanges(s.slots) })), steps }, describePlan(plan, steps, new Map(probes.map((p) => [p.key, p.myself?.slots ?? []]))).join("\n"));
        return { alreadyFormed: false, dryRun: true, plan, steps, skipped: live.skipped, warnings, durationMs: Date.now() - t0 };
    }
    for (const line of describePlan(plan, steps, new Map(probes.map((p) => [p.key, p.myself?.slots ?? []])))) out.info(line);

    const checkAbort = (step: string, state: string) => {
        if (opts.signal?.aborted) throw interruption(opts.signal, { op: "create", during: `step "${step}"`, state, resume });
    };
    const versions = new Map(live.usable.map((p) => [p.key, p.version]));

    // 0: joining masters run a short cluster-node-timeout until they serve (joinTimeout.ts:
    // Redis holds a new master in cluster_state:fail for its node timeout, up to 5 s).
    checkAbort("join-timeout", "nothing changed yet");
    const timeouts = new JoinTimeouts(pool, out, "create");
    const reference = referenceTimeout(live.usable.map((p) => p.nodeTimeoutMs), opts.configuredNodeTimeoutMs);
    const joiningMasters = plan.shards.map((s) => live.usable.find((p) => p.key === nodeKey(s.master))).filter((p): p is NodeProbe => !!p && p.clusterInfo.cluster_state !== "ok");
    await timeouts.shorten(joiningMasters.map((p) => ({ key: p.key, name: p.node.name, current: p.nodeTimeoutMs })), reference);
    let failed = true;
    try {
        await joinSteps();
        failed = false;
    } finally {
        const left = await timeouts.restoreAll();
        if (left.length && !failed) throw timeouts.error(left);
        if (left.length) out.warn(timeouts.error(left).message);
    }
    await restoreLeftoverTimeouts(pool, live.usable.map((p) => ({ key: p.key, name: p.node.name })), { configured: opts.configuredNodeTimeoutMs, out, op: "create" });
    const durationMs = Date.now() - t0;
    out.event("formed", { already: false, nodes: usableKeys.length, durationMs }, `cluster formed: ${usableKeys.length} nodes in ${durationMs} ms`);
    return { alreadyFormed: false, dryRun: false, plan, steps, skipped: live.skipped, warnings, durationMs };

    async function joinSteps(): Promise<void> {
        // 1 + 2: epochs and slots, one pipeline per node, all nodes in parallel.
        checkAbort("slots", "nothing changed yet");
        const perNode = new Map<NodeKey, { epoch?: number; ranges?: SlotRange[]; name: string }>();
        for (const e of steps.epochs) perNode.set(e.key, { ...perNode.get(e.key), name: e.name, epoch: e.epoch });
        for (const s of steps.slots) perNode.set(s.key, { ...perNode.get(s.key), name: s.name, ranges: s.ranges });
        await Promise.all([...perNode].map(async ([key, work]) => {
            try {
                const c = await pool.get(key);
                const p = c.pipeline();
                if (work.epoch !== undefined) p.call("CLUSTER", "SET-CONFIG-EPOCH", work.epoch);
                for (const cmd of slotCommands(work.ranges ?? [], versions.get(key))) p.call(cmd[0] as string, ...cmd.slice(1));
                for (const [err] of (await p.exec())!) {
                    // Met by a node of an interrupted run since the probe: it keeps the epoch it has,
                    // and Redis resolves a collision by itself (slower, still correct).
                    if (err && !/assign a config epoch only when the node does not know any other node/i.test(err.message)) throw err;
                }
            } catch (e) {
                throw new StepError({
                    op: "create", step: work.ranges?.length ? "assign-slots" : "set-config-epoch", node: `${work.name} (${key})`, cause: e,
                    state: "some nodes may have their slots and epochs, none are joined yet", resume,
                });
            }
            if (work.ranges?.length) out.event("step", { step: "assign-slots", node: key, slots: formatRanges(work.ranges) }, `${work.name}: slots ${formatRanges(work.ranges)}`);
        }));

        // 3: meet, all in parallel. A replica to attach meets only its master, once the
        // masters serve (3b), and the anchor right after CLUSTER REPLICATE: the rest of the
        // cluster then first hears of it as a replica, instead of as a master whose new role
        // spreads only with the periodic pings (up to cluster-node-timeout/2 later).
        checkAbort("meet", "slots assigned, nodes not joined");
        const meet = async (m: FormSteps["meets"][number]) => {
            try {
                await pool.call(m.key, "CLUSTER", "MEET", m.to.host, m.to.port);
            } catch (e) {
                throw new StepError({ op: "create", step: "meet", node: `${m.name} (${m.key})`, cause: e, state: "slots assigned; some nodes joined", resume });
            }
        };
        const attaching = new Map(steps.replicate.map((r) => [r.key, nodeKey(r.master)]));
        const later = steps.meets.filter((m) => attaching.has(m.key) && attaching.get(m.key) !== nodeKey(m.to));
        // Met before the masters serve, a replica would be gossiped as a master for that time,
        // and its role would reach the others only with the pings after REPLICATE.
        const ownMaster = timeouts.pending.length ? steps.meets.filter((m) => attaching.has(m.key) && !later.includes(m)) : [];
        await Promise.all(steps.meets.filter((m) => !later.includes(m) && !ownMaster.includes(m)).map(meet));
        if (steps.meets.length) out.event("step", { step: "meet", count: steps.meets.length, anchor: steps.anchor && nodeKey(steps.anchor) }, `joining: ${steps.meets.length} MEET(s) (anchor ${steps.anchor?.name}; replicas after they attach)`);

        // 3b: the shortened masters serve before any replica is attached: with no replica
        // there is nobody to fail over, whatever a 500 ms timeout flags under a stall (60
        // nodes on 2 loaded cores flagged masters FAIL). Each gets its timeout back as it serves.
        const introduced = new Map<string, number>();
        const byKey = new Map(topology.nodes.map((n) => [nodeKey(n), n]));
        const introduce = async (view: ClusterView, keys: NodeKey[]) => {
            await Promise.all(introductions(view, keys, introduced).map(async ({ from, to }) => {
                const n = byKey.get(to)!;
                await pool.call(from, "CLUSTER", "MEET", n.host, n.port).catch(() => undefined); // the next poll sees it, or tries again
            }));
        };
        if (timeouts.pending.length) {
            checkAbort("wait-masters", "slots assigned, masters joining, replicas not attached");
            const masterKeys = plan.shards.map((s) => nodeKey(s.master)).filter((k) => usableKeys.includes(k));
            try {
                await waitUntil(async () => {
                    const view = await readView(pool, masterKeys);
                    await timeouts.restoreServing(view);
                    if (!timeouts.pending.length) return true;
                    await introduce(view, masterKeys);
                    return undefined;
                }, { timeoutMs: opts.timeoutMs, signal: opts.signal, maxIntervalMs: 50, what: `the joining master(s) ${timeouts.pending.join(", ")} to serve` });
            } catch (e) {
                if (e instanceof StepError || e instanceof InterruptedError) throw e;
                throw new StepError({ op: "create", step: "wait-masters", cause: e, state: "slots assigned, masters joining, replicas not attached", resume });
            }
        }

        // 4: replicas, each as soon as it knows its master. Empty masters start the first
        // sync without the diskless-sync delay (default 5 s on 7.x), restored afterwards.
        checkAbort("replicate", "slots assigned, nodes joining, replicas not attached");
        await Promise.all(ownMaster.map(meet));
        const restore = await shortenSyncDelay(pool, steps, live);
        try {
            await Promise.all(steps.replicate.map(async (r) => {
                const masterKey = nodeKey(r.master);
                try {
                    const masterId = await waitUntil(async () => {
                        const id = live.idOf.get(masterKey) ?? (await readNodes(pool, [masterKey]))[0].myself?.id;
                        if (!id) return undefined;
                        live.idOf.set(masterKey, id);
                        const [replica] = await readNodes(pool, [r.key]);
                        if (!replica.reachable) throw new Error(replica.error);
                        const nodes = replica.nodes;
                        const m = nodes.find((n) => n.id === id);
                        return m && m.role === "master" && !m.flags.includes("handshake") ? id : undefined;
                    }, { timeoutMs: opts.timeoutMs, signal: opts.signal, maxIntervalMs: 50, what: `${r.name} to learn its master ${r.master.name}` });
                    await pool.call(r.key, "CLUSTER", "REPLICATE", masterId);
                } catch (e) {
                    throw new StepError({ op: "create", step: "replicate", node: `${r.name} (${r.key})`, cause: e, state: `slots assigned, nodes joined, replica of ${r.master.name} not attached`, resume });
                }
                out.event("step", { step: "replicate", node: r.key, master: masterKey }, `${r.name} replicates ${r.master.name}`);
                await Promise.all(later.filter((m) => m.key === r.key).map(meet));
            }));

            // 5: converge. Each poll introduces nodes that do not know each other yet (CLUSTER
            // MEET) instead of waiting for gossip, which took up to 2.5 s to reach every replica
            // of 6 nodes (measured). Formed includes every node agreeing on each replica's
            // master: a node that still lists a replica as a master (REPLICATE reaches the others
            // with its next pings, up to cluster-node-timeout/2 later) is told directly by a MEET
            // from the replica, whose header carries its role.
            const tellRoles = (view: ClusterView) => Promise.all(roleLag(view, usableKeys, introduced).map(async ({ from, to }) => {
                const n = byKey.get(to)!;
                await pool.call(from, "CLUSTER", "MEET", n.host, n.port).catch(() => undefined);
            }));
            try {
                await waitFormed(pool, expect, {
                    timeoutMs: opts.timeoutMs, signal: opts.signal, maxIntervalMs: 50,
                    onPoll: async (view) => {
                        await timeouts.restoreServing(view);
                        await introduce(view, usableKeys);
                        await tellRoles(view);
                    },
                });
            } catch (e) {
                if (e instanceof StepError || e instanceof InterruptedError) throw e;
                throw new StepError({ op: "create", step: "wait-formed", cause: e, state: "every step was sent; the cluster has not converged yet", resume: `${resume} (or look at it with the status command)` });
            }
            // Formed; a last MEET may still have left a handshake entry on some node (harmless,
            // it times out): wait a moment for it so nobody reads one right after us.
            await waitUntil(async () => (await readView(pool, usableKeys)).reachable().every((x) => !x.nodes.some((n) => n.flags.includes("handshake"))) || undefined,
                { timeoutMs: 5000, signal: opts.signal, maxIntervalMs: 50, what: "handshakes of the last MEETs to finish" }).catch(() => undefined); // best effort
        } finally {
            await restore();
        }
    }
}

/**
 * MEETs from a replica to each node whose view of it is stale (it still lists it as a
 * master, or under another master): `from` is the replica, `to` the lagging node.
 * Rate-limited per pair like `introductions`. Pure but for `sent`.
 */
export function roleLag(view: ClusterView, keys: NodeKey[], sent: Map<string, number>, now = Date.now()): { from: NodeKey; to: NodeKey }[] {
    return staleReplicaViews(view, keys).filter(({ from, to }) => {
        const pair = `${from}>${to}`;
        if (now - (sent.get(pair) ?? 0) < 300) return false;
        sent.set(pair, now);
        return true;
    }).map(({ from, to }) => ({ from, to }));
}

/**
 * The MEETs that would introduce members that do not know each other yet: `from`
 * does not know `to`'s id and has no handshake under way with its address. A pair
 * is sent again only after 300 ms (a handshake takes one round trip), and a node
 * starts at most `perNode` handshakes per poll: each handshake also carries gossip
 * about a tenth of the nodes, and 60 nodes meeting all 59 others at once (3,540
 * handshakes) loaded 2 cores more than gossip needed. Records what it returns in
 * `sent`. Pure but for `sent`.
 */
export function introductions(view: ClusterView, keys: NodeKey[], sent: Map<string, number>, now = Date.now(), perNode = 3): { from: NodeKey; to: NodeKey }[] {
    const idOf = new Map<NodeKey, string>();
    for (const k of keys) {
        const id = view.views.get(k)?.myself?.id;
        if (id) idOf.set(k, id);
    }
    const out: { from: NodeKey; to: NodeKey }[] = [];
    const known = [...idOf];
    known.forEach(([from], i) => {
        const v = view.views.get(from)!;
        let started = 0;
        // Each node starts with the nodes after it in the list, so the handshakes of one poll spread out.
        for (const [to, id] of [...known.slice(i + 1), ...known.slice(0, i)]) {
            if (to === from || v.nodes.some((n) => n.id === id || (n.key === to && n.flags.includes("handshake")))) continue;
            const pair = `${from}>${to}`;
            if (now - (sent.get(pair) ?? 0) < 300) continue;
            sent.set(pair, now);
            out.push({ from, to });
            if (++started >= perNode) break;
        }
    });
    return out;
}

/**
 * Sets repl-diskless-sync-delay 0 on the empty masters about to get replicas, so
 * the first full sync starts at once instead of after the delay that waits for
 * more replicas to share one transfer (pointless for an empty dataset). Returns
 * a function that restores each value. Best effort: a node that refuses CONFIG
 * keeps its delay.
 */
async function shortenSyncDelay(pool: NodePool, steps: FormSteps, live: LiveState): Promise<() => Promise<void>> {
    const masters = [...new Set(steps.replicate.map((r) => nodeKey(r.master)))]
        .filter((k) => live.usable.find((p) => p.key === k)?.dbsize === 0);
    const changed: { key: NodeKey; value: string }[] = [];
    await Promise.all(masters.map(async (key) => {
        try {
            const [, diskless] = (await pool.call(key, "CONFIG", "GET", "repl-diskless-sync")) as string[];
            const [, delay] = (await pool.call(key, "CONFIG", "GET", "repl-diskless-sync-delay")) as string[];
            if (diskless === "yes" && delay !== "0") {
                await pool.call(key, "CONFIG", "SET", "repl-diskless-sync-delay", "0");
                changed.push({ key, value: delay });
            }
        } catch {
            /* keep the node's own setting */
        }
    }));
    return async () => {
        await Promise.all(changed.map(async ({ key, value }) => {
            try {
                await pool.call(key, "CONFIG", "SET", "repl-diskless-sync-delay", value);
            } catch {
                /* node gone; its config file still has the value for the next start */
            }
        }));
    };
}
