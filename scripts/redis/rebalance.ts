/**
 * Plan → check → move: plans the slot moves for a set of masters, prints them with
 * key counts, checks that the receivers have the memory (plan/headroom.ts), then
 * moves (reshard.ts). Shared by `rebalance` and `scale`.
 */
import type { CommandContext } from "../context";
import { interruption, PlanError, RefusedError } from "../errors";
import { fmtDuration } from "../output";
import { checkHeadroom, NodeMemory } from "../plan/headroom";
import { MasterInput, planRebalance, RebalancePlan } from "../plan/rebalance";
import { formatRanges, toRanges } from "./clusterNodes";
import { ClusterView, parseInfo } from "./clusterView";
import { keyOfNode } from "./members";
import { NodeKey, NodePool } from "./pool";
import { countKeys, executePlan, nodeRefs, ReshardResult } from "./reshard";
import type { Topology } from "../../components/topology";

export interface MoveOptions {
    op: string;
    dryRun?: boolean;
    thresholdPct?: number;
    parallel?: number;
    batchKeys?: number;
    /** Big-key threshold in MiB (0: no check). @default 8 */
    bigKeyMb?: number;
    /** Refuse when a receiver would exceed maxmemory minus this share. @default 10 */
    headroomPct?: number;
    /** Topology names by node key, so refusals say "t-s1-r0 (10.0.1.12:6379)". */
    names?: Map<NodeKey, string>;
}

/** Topology name by node key. */
export function namesOf(topology: Topology): Map<NodeKey, string> {
    return new Map(topology.nodes.map((n) => [keyOfNode(n), n.name]));
}

export interface MoveOutcome {
    plan: RebalancePlan;
    keysToMove: number;
    result?: ReshardResult;
}

/** Masters of the view (reachable, not failing) as planner input, weights from the topology. */
export function mastersFromView(view: ClusterView, topology: Topology, drain: Set<string> = new Set()): MasterInput[] {
    const weightByKey = new Map(topology.nodes.map((n) => [keyOfNode(n), n.weight]));
    const out: MasterInput[] = [];
    for (const v of view.reachable()) {
        const me = v.myself;
        if (!me || me.role !== "master") continue;
        // A master that knows no one and owns nothing is not (yet) a member.
        if (v.nodes.length <= 1 && me.slots.length === 0) continue;
        out.push({ id: me.id, slots: me.slots, weight: weightByKey.get(v.key) ?? 1, drain: drain.has(me.id) });
    }
    return out;
}

/** INFO memory + DBSIZE of each node, for the headroom check. */
export async function readMemory(pool: NodePool, keys: Map<string, NodeKey>, names?: Map<NodeKey, string>): Promise<NodeMemory[]> {
    return Promise.all([...keys].map(async ([id, key]) => {
        const c = await pool.get(key);
        const [[e1, mem], [e2, dbsize]] = (await c.pipeline().call("INFO", "memory").call("DBSIZE").exec())!;
        if (e1 || e2) throw e1 ?? e2;
        const m = parseInfo(mem as string);
        const used = Number(m.used_memory ?? 0);
        const name = names?.get(key);
        return { id, label: name ? `${name} (${key})` : key, usedBytes: used, datasetBytes: Number(m.used_memory_dataset ?? used), maxBytes: Number(m.maxmemory ?? 0), keys: Number(dbsize) };
    }));
}

/**
 * Plans the moves for `masters`, prints them, checks memory headroom and (unless
 * dry-run) moves. Throws RefusedError when a receiver lacks memory.
 */
export async function planAndMove(pool: NodePool, view: ClusterView, masters: MasterInput[], o: MoveOptions, ctx: CommandContext): Promise<MoveOutcome> {
    let plan: RebalancePlan;
    try {
        plan = planRebalance(masters, { thresholdPct: o.thresholdPct });
    } catch (e) {
        if (e instanceof PlanError) throw new RefusedError(`${o.op}: ${e.message}`);
        throw e;
    }
    const refs = nodeRefs(view);
    // Masters not joined yet (scale --dry-run) carry "new:<host:port>" ids.
    const label = (id: string) => refs.get(id)?.key ?? (id.startsWith("new:") ? `${id.slice(4)} (new)` : id.slice(0, 8));
    const ownerKey = new Map<number, NodeKey>();
    for (const m of plan.moves) ownerKey.set(m.slot, label(m.from));
    const keyCounts = plan.moves.length ? await countKeys(pool, (s) => ownerKey.get(s)!, plan.moves.map((m) => m.slot)) : new Map<number, number>();
    const streams = plan.streams.map((s) => ({
        from: label(s.from), to: label(s.to), slots: s.slots.length, keys: s.slots.reduce((n, x) => n + (keyCounts.get(x) ?? 0), 0), ranges: formatRanges(toRanges(s.slots)),
    }));
    const keysToMove = streams.reduce((n, s) => n + s.keys, 0);
    const lines = [
        `${o.op}: ${masters.length} master(s); target slots: ${masters.map((m) => `${label(m.id)}=${plan.target[m.id]}${m.drain ? " (drain)" : ""}`).join(", ")}`,
        ...(plan.moves.length === 0 ? [`${o.op}: nothing to move${plan.skipped ? ` (${plan.skipped})` : ""}`] : [
            `${o.op}: move ${plan.moves.length} slot(s) with ${keysToMove} key(s):`,
            ...streams.map((s) => `  ${s.from} → ${s.to}: ${s.slots} slot(s), ${s.keys} key(s) [${s.ranges.length > 60 ? s.ranges.slice(0, 57) + "..." : s.ranges}]`),
        ]),
    ];
    ctx.out.event("plan", { op: o.op, dryRun: !!o.dryRun, target: Object.fromEntries(Object.entries(plan.target).map(([id, n]) => [label(id), n])), slots: plan.moves.length, keys: keysToMove, streams, skipped: plan.skipped }, lines.join("\n"));
    if (plan.moves.length === 0 || o.dryRun) return { plan, keysToMove };

    // Safe before fast: receivers must have the memory for what they get.
    const involved = new Map<string, NodeKey>();
    for (const s of plan.streams) for (const id of [s.from, s.to]) involved.set(id, label(id));
    const memory = await readMemory(pool, involved, o.names);
    const flows = plan.streams.map((s) => ({ from: s.from, to: s.to, keys: s.slots.reduce((n, x) => n + (keyCounts.get(x) ?? 0), 0) }));
    const head = checkHeadroom(memory, flows, o.headroomPct ?? 10);
    if (head.unchecked.length) ctx.out.info(`${o.op}: no maxmemory set on ${head.unchecked.join(", ")}: memory headroom not checked there`);
    if (!head.ok) {
        throw new RefusedError(`${o.op}: not enough memory on the receiving masters; nothing was moved:\n  ${head.problems.join("\n  ")}\n  Add shards or larger instances first (or free memory), then rerun.`);
    }

    const result = await executePlan(pool, view, plan, {
        op: o.op, parallel: o.parallel, batchKeys: o.batchKeys, keyCounts, bigKeyBytes: Math.round((o.bigKeyMb ?? 8) * 1024 * 1024),
        resumeHint: `rerun \`${o.op}\`: open slots are finished or rolled back first, then the rest moves`,
    }, ctx);
    const rate = result.ms > 0 ? Math.round((result.keys / result.ms) * 1000) : 0;
    ctx.out.event("moved", { op: o.op, slots: result.slots, keys: result.keys, bigKeys: result.bigKeys, replacedSlots: result.replacedSlots.length, ms: result.ms, keysPerSec: rate, method: result.method, interrupted: result.interrupted },
        `${o.op}: moved ${result.slots} slot(s) and ${result.keys} key(s) in ${fmtDuration(result.ms)} (${rate} keys/s${result.method !== "keys" ? `, ${result.method}` : ""})`);
    if (result.interrupted) {
        throw interruption(ctx.signal, {
            op: o.op, during: "the slot moves", state: `${result.slots} of ${plan.moves.length} slot(s) moved; the cluster is serving and consistent`, resume: `rerun \`${o.op}\` to move the rest`,
        });
    }
    return { plan, keysToMove, result };
}
