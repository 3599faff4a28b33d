/**
 * Executor of a rolling change (plan: scripts/plan/roll.ts). One node at a time:
 * the action (a targeted `pulumi up` on AWS, a process restart locally), then a
 * wait until the node is back in the cluster with the same node id, its
 * replication link up and caught up to where its master was when the link came
 * back, and `cluster_state:ok` on every node with nobody flagging it, before the
 * next step. Before each master: a controlled failover (scripts/redis/failover.ts).
 * Every step re-reads the live state first, so a rerun after an interruption
 * skips what is done.
 */
import type { Topology, TopologyNode } from "../../components/topology";
import type { Output } from "../output";
import { fmtDuration } from "../output";
import { interruption, RefusedError, StepError } from "../errors";
import { chooseReplica, ShardState } from "../plan/failover";
import { compareVersions, RollNode, RollStep } from "../plan/roll";
import { ClusterView, parseInfo, waitUntil } from "./clusterView";
import { readShards, runFailover } from "./failover";
import { collectStatus, evaluateStatus } from "./healthReport";
import { keyOfNode, readCluster } from "./members";
import { NodePool } from "./pool";

/** What makes a node take its change. Resolves when the change is applied; the node may still be booting. */
export interface NodeAction {
    /** For progress lines, e.g. "restart" or "pulumi up --target". */
    name: string;
    apply(node: TopologyNode, signal: AbortSignal): Promise<void>;
}

/** The live facts the planner needs. */
export interface RollState {
    nodes: RollNode[];
    unhealthy: string[];
    openSlots: string[];
    backups: string[];
}

/** Reads every node (the status reader), and INFO persistence for running BGSAVEs. */
export async function readRollState(pool: NodePool, topology: Topology): Promise<RollState> {
    const input = await collectStatus(pool, topology);
    const report = evaluateStatus(input);
    const byKey = new Map(topology.nodes.map((n) => [keyOfNode(n), n]));
    const versions = new Map(input.samples.map((s) => [s.key, s.version]));
    const nodes: RollNode[] = [];
    for (const sh of report.shards) {
        for (const st of sh.nodes) {
            const t = byKey.get(st.key);
            if (!t || !st.id || st.role === "unknown") continue;
            nodes.push({
                name: t.name, key: st.key, id: st.id, shard: t.shard, az: t.az, role: st.role,
                master: st.masterKey ? byKey.get(st.masterKey)?.name ?? st.masterKey : undefined,
                healthy: st.reachable && st.flaggedBy.length === 0,
                linkUp: st.role === "replica" ? st.masterLinkStatus === "up" : undefined,
                version: versions.get(st.key),
            });
        }
    }
    // Open slots and shards without a replica are judged on their own (the planner words them, and
    // --allow-unavailable-shard may accept the latter); every other status problem means unhealthy.
    const unhealthy = report.problems.filter((p) => !/^\d+ open slot\(s\)/.test(p) && !/has no working replica/.test(p));
    const openSlots = report.cluster.openSlots.map((o) => `${o.slot} ${o.state} on ${byKey.get(o.node)?.name ?? o.node}`);
    const backups: string[] = [];
    await Promise.all(report.shards.flatMap((s) => s.nodes).filter((n) => n.reachable).map(async (n) => {
        try {
            const p = parseInfo((await pool.call(n.key, "INFO", "persistence")) as string);
            if (p.rdb_bgsave_in_progress === "1") backups.push(byKey.get(n.key)?.name ?? n.key);
        } catch {
            /* unreachable now: the status problems say so */
        }
    }));
    return { nodes, unhealthy, openSlots, backups: backups.sort() };
}

export interface RollOptions {
    out: Output;
    signal: AbortSignal;
    /** How long a node may take to come back after its action. */
    nodeTimeoutMs: number;
    /** How long a failover may take to be seen everywhere. @default 30000 */
    failoverTimeoutMs?: number;
    /** How to continue after a failure, e.g. "npm run cluster -- roll --stack prod". */
    resume: string;
    op?: string;
}

export interface RollReport {
    nodes: { node: string; role: "replica" | "master"; ms: number }[];
    failovers: { shard: number; from: string; to: string; ms: number }[];
    skipped: string[];
    ms: number;
}

/**
 * Waits until `node` is back: answers, has node id `id`, is a replica whose link
 * is up and whose offset reached the master's offset as read when the link was
 * seen up (or a master, for `expectMaster`), every node reports cluster_state:ok
 * and none flags it failing. A different node id stops at once: the node lost
 * its nodes.conf (data volume), which waiting cannot fix.
 */
export async function waitNodeBack(pool: NodePool, topology: Topology, node: TopologyNode, id: string, opts: { timeoutMs: number; signal?: AbortSignal; expectMaster?: boolean }): Promise<void> {
    const key = keyOfNode(node);
    const allKeys = topology.nodes.map(keyOfNode);
    let last = "not checked yet";
    let target: number | undefined;
    await waitUntil(async () => {
        let myid: string;
        try {
            myid = String(await pool.call(key, "CLUSTER", "MYID"));
        } catch (e) {
            pool.drop(key);
            last = `${node.name} does not answer (${(e as Error).message})`;
            return false;
        }
        if (myid !== id) {
            throw new RefusedError(`${node.name} came back as node ${myid}, not ${id}: it lost its nodes.conf (data volume not attached or reformatted?)`, { node: key });
        }
        const repl = parseInfo(String(await pool.call(key, "INFO", "replication")));
        if (opts.expectMaster) {
            if (repl.role !== "master") return (last = `${node.name} is a ${repl.role}, expected its master role back`), false;
        } else {
            if (repl.role !== "slave") return (last = `${node.name} is a ${repl.role}, not yet a replica again`), false;
            if (repl.master_link_status !== "up") return (last = `${node.name}: replication link ${repl.master_link_status ?? "?"}${repl.master_sync_in_progress === "1" ? " (full sync in progress)" : ""}`), false;
            if (target === undefined) {
                const masterKey = `${repl.master_host}:${repl.master_port}`;
                target = Number(parseInfo(String(await pool.call(masterKey, "INFO", "replication"))).master_repl_offset);
            }
            const offset = Number(repl.slave_repl_offset);
            if (offset < target) return (last = `${node.name}: ${target - offset} byte(s) behind its master`), false;
        }
        const view = await ClusterView.read(pool, allKeys);
        const down = view.unreachable();
        if (down.length) return (last = `${down.map((v) => v.key).join(", ")} do(es) not answer`), false;
        const notOk = view.reachable().filter((v) => v.info.cluster_state !== "ok");
        if (notOk.length) return (last = `cluster_state is ${notOk[0].info.cluster_state} on ${notOk.map((v) => v.key).join(", ")}`), false;
        const flagging = view.reachable().filter((v) => v.nodes.some((n) => n.id === id && (n.flags.includes("fail") || n.flags.includes("fail?"))));
        if (flagging.length) return (last = `${flagging.length} node(s) still flag ${node.name} as failing`), false;
        return true;
    }, { timeoutMs: opts.timeoutMs, signal: opts.signal, intervalMs: 50, maxIntervalMs: 500, what: `${node.name} to be back in the cluster` }, () => last);
}

/** Versions (INFO server redis_version) of some nodes; unreachable ones are left out. */
async function versionsOf(pool: NodePool, keys: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    await Promise.all(keys.map(async (k) => {
        try {
            out.set(k, parseInfo(String(await pool.call(k, "INFO", "server"))).redis_version);
        } catch {
            /* unreachable: not a candidate */
        }
    }));
    return out;
}

/** CLUSTER FAILOVER of `step.from`'s shard to its best in-sync replica (another zone first, never an older engine). */
async function failoverStep(pool: NodePool, topology: Topology, step: Extract<RollStep, { kind: "failover" }>, opts: RollOptions): Promise<RollReport["failovers"][number] | undefined> {
    const op = opts.op ?? "roll";
    const view = await readCluster(pool, topology);
    const shards = await readShards(pool, view, topology);
    const shard = shards.find((s) => s.shard === step.shard);
    if (!shard) throw new StepError({ op, step: "failover", node: step.from, cause: `no master of shard ${step.shard} owns slots`, resume: opts.resume });
    if (shard.master.name !== step.from) {
        opts.out.info(`shard ${step.shard}: ${step.from} is no longer the master (${shard.master.name ?? shard.master.key} is): failover already done`);
        return undefined;
    }
    const versions = await versionsOf(pool, [shard.master.key, ...shard.replicas.map((r) => r.key)]);
    const masterVersion = versions.get(shard.master.key);
    const safe: ShardState = { ...shard, replicas: shard.replicas.filter((r) => (compareVersions(versions.get(r.key), masterVersion) ?? 0) >= 0) };
    let choice = chooseReplica(safe, { avoidZone: shard.master.az });
    if (!choice.ok) choice = chooseReplica(safe);
    if (!choice.ok) {
        const older = shard.replicas.filter((r) => !safe.replicas.includes(r));
        throw new StepError({
            op, step: "failover", node: step.from,
            cause: `shard ${step.shard} cannot fail over: ${choice.reason}${older.length ? `; ${older.map((r) => `${r.name ?? r.key} runs ${versions.get(r.key)}, older than the master's ${masterVersion} (unsafe: it could not resync from it)`).join("; ")}` : ""}`,
            state: `${step.from} is still the master and was not changed`, resume: `repair the shard's replica (npm run cluster -- status), then ${opts.resume}`,
        });
    }
    const to = choice.replica;
    opts.out.info(`shard ${step.shard}: failover ${step.from} → ${to.name ?? to.key}${to.az ? ` (${to.az})` : ""}`);
    try {
        const ms = await runFailover(pool, to, shard.master.id, "default", view.reachable().map((v) => v.key), opts.failoverTimeoutMs ?? 30000);
        // The old master is a replica now; it goes down next only once its link is up and caught up,
        // so the cluster is in the same state before every node's update.
        const old = topology.nodes.find((n) => n.name === step.from);
        if (old) await waitNodeBack(pool, topology, old, shard.master.id, { timeoutMs: opts.failoverTimeoutMs ?? 30000 });
        return { shard: step.shard, from: step.from, to: to.name ?? to.key, ms };
    } catch (e) {
        throw new StepError({
            op, step: "failover", node: to.name ?? to.key, cause: e,
            state: "CLUSTER FAILOVER was sent; the promotion, or the old master following the new one, was not seen everywhere in time", resume: `check with npm run cluster -- status, then ${opts.resume}`,
        });
    }
}

/** Runs the planned steps in order. `ids`: node name -> node id read when the plan was made. */
export async function executeRoll(pool: NodePool, topology: Topology, steps: RollStep[], ids: Map<string, string>, action: NodeAction, opts: RollOptions): Promise<RollReport> {
    const op = opts.op ?? "roll";
    const t0 = Date.now();
    const byName = new Map(topology.nodes.map((n) => [n.name, n]));
    const report: RollReport = { nodes: [], failovers: [], skipped: [], ms: 0 };
    const total = steps.filter((s) => s.kind === "update").length;
    let done = 0;
    for (const step of steps) {
        if (opts.signal.aborted) {
            throw interruption(opts.signal, { op, during: "the roll, between two nodes", state: `${done} of ${total} node(s) rolled; every rolled node is back in the cluster`, resume: opts.resume });
        }
        if (step.kind === "failover") {
            const f = await failoverStep(pool, topology, step, opts);
            if (f) {
                report.failovers.push(f);
                opts.out.event("failover", f, `shard ${f.shard}: ${f.to} is the master, seen by every node after ${fmtDuration(f.ms)}`);
            }
            continue;
        }
        const node = byName.get(step.node)!;
        const key = keyOfNode(node);
        const id = ids.get(step.node)!;
        // A node must not be a master when it goes down, unless the plan accepted its shard's outage.
        let role: string | undefined;
        try {
            role = parseInfo(String(await pool.call(key, "INFO", "replication"))).role;
        } catch {
            pool.drop(key); // down (an interrupted earlier run stopped it): the action brings it back
        }
        if (role === "master" && !step.unavailable) {
            throw new StepError({
                op, step: "check-role", node: step.node, cause: `${step.node} is a master; it must be a replica before it is updated`,
                state: "nothing was changed on it", resume: opts.resume,
            });
        }
        done++;
        const n0 = Date.now();
        opts.out.event("node", { node: step.node, role: step.role, index: done, total, changes: step.changes }, `[${done}/${total}] ${step.node} (${step.role}): ${action.name}${step.changes.length ? ` (${step.changes.join("; ")})` : ""}`);
        try {
            await action.apply(node, opts.signal);
        } catch (e) {
            if (e instanceof StepError) throw e;
            throw new StepError({ op, step: action.name, node: step.node, cause: e, state: `${step.node} may be stopped or half-updated`, resume: opts.resume });
        }
        try {
            // Not interrupted by Ctrl-C: a node half-way is finished first (the signal stops the roll between nodes).
            await waitNodeBack(pool, topology, node, id, { timeoutMs: opts.nodeTimeoutMs, expectMaster: step.unavailable });
        } catch (e) {
            throw new StepError({
                op, step: "wait-back", node: step.node, cause: e,
                state: `${step.node} was updated (${action.name}) but is not back in the cluster; no other node was touched`,
                resume: `look at ${step.node} (its log; npm run cluster -- status), then ${opts.resume}`,
            });
        }
        const ms = Date.now() - n0;
        report.nodes.push({ node: step.node, role: step.role, ms });
        const elapsed = Date.now() - t0;
        const eta = done < total ? `, ETA ${fmtDuration((elapsed / done) * (total - done))}` : "";
        opts.out.event("node-back", { node: step.node, ms, index: done, total }, `[${done}/${total}] ${step.node} back (same id, link up and caught up, cluster ok) in ${fmtDuration(ms)}${eta}`);
    }
    report.ms = Date.now() - t0;
    return report;
}
