/**
 * The autoscaler's decision: pure. Policy, the history of metric samples, the
 * current shape and what the cluster reports about itself in; one decision out,
 * with the rule that produced it or held it back. No I/O: the executor
 * (scripts/autoscale/) reads the metrics, keeps the history and acts.
 *
 * Target tracking as ElastiCache does it (Auto Scaling for ElastiCache for Redis
 * clusters, "target tracking scaling policies"):
 * - scale out when the tracked metric (average DatabaseMemoryUsagePercentage of the
 *   masters, optionally their EngineCPUUtilization) stays above the target for
 *   `scaleOutDatapoints` consecutive samples, by the larger of the breach
 *   percentage and 20 % of the current shards (at least one);
 * - scale in, one shard at a time, only when every sample of the whole scale-in
 *   window is below 75 % of the target, and only if the remaining shards would
 *   stay under the target (the step that prevents flapping: 4 -> 3 shards at 60 %
 *   would land at 80 %);
 * - replicas on the replicas' CPU, one at a time, the same way.
 * Shards are decided before replicas; one change per decision.
 */
import type { AutoscalePolicy } from "../../components/autoscaleConfig";
import { inMaintenanceWindow, parseMaintenanceWindow } from "../../components/autoscaleConfig";
import { checkHeadroom, NodeMemory } from "./headroom";
import type { MetricsSnapshot } from "./metrics";

export type { AutoscalePolicy };

/** One reading of the cluster, reduced to what the policy tracks (percent; undefined when not measured). */
export interface AutoscaleSample {
    /** ms since the epoch. */
    at: number;
    /** Average DatabaseMemoryUsagePercentage over the masters (undefined when any master has none). */
    memoryPercent?: number;
    /** Highest master's memory percent: shown in the reason, not tracked. */
    maxMemoryPercent?: number;
    masterCpuPercent?: number;
    replicaCpuPercent?: number;
}

export type AutoscaleActionKind = "add-shards" | "remove-shards" | "add-replicas" | "remove-replicas";

/** A change the autoscaler made, kept in the history for the cool-downs. */
export interface AutoscaleActionRecord {
    at: number;
    action: AutoscaleActionKind;
    from: number;
    to: number;
}

export interface AutoscaleHistory {
    version: 1;
    samples: AutoscaleSample[];
    actions: AutoscaleActionRecord[];
}

export interface Shape {
    shards: number;
    replicas: number;
}

/** What the cluster says about itself at decision time. */
export interface ClusterFacts {
    now: number;
    /** Problems of the status reader (empty when healthy). */
    problems: string[];
    openSlots: number;
    /** Nodes running BGSAVE or an AOF rewrite (a backup, or a replica's full sync). */
    backupRunning: string[];
    /** Keys too big to move within the migration timeout, as `node key (size)`. */
    oversizedKeys: string[];
    /** The masters' memory, in shard order; the last one is the one a scale-in drains. */
    masters: NodeMemory[];
    /** A lease held by another run (docs/lease.md), described. */
    leaseHeldBy?: string;
}

export type HeldBy =
    | "metrics-missing" | "unhealthy" | "open-slot" | "lease" | "backup" | "oversized-key" | "cooldown"
    | "max-shards" | "min-shards" | "max-replicas" | "min-replicas" | "disable-scale-in" | "maintenance-window"
    | "headroom" | "would-breach" | "datapoints" | "window";

export interface Decision {
    action: "none" | AutoscaleActionKind;
    /** Shards (or replicas per shard) now, and after the action (equal for none). */
    from: number;
    to: number;
    reason: string;
    /** The rule that held a due or possible change back. */
    heldBy?: HeldBy;
    /** The samples the decision read, for the log. */
    metrics?: Omit<AutoscaleSample, "at">;
}

/** Scale-in is considered below this share of the target (issue 14: 75 %; a 70 % memory target scales in below 52.5 %). */
export const SCALE_IN_RATIO = 0.75;
/** Scale-in refused unless the remaining masters have 1.5× the memory of what they would receive. */
export const SCALE_IN_HEADROOM = 1.5;

const fmt = (n: number | undefined) => (n === undefined ? "n/a" : `${n.toFixed(1)} %`);
const sec = (ms: number) => `${Math.ceil(ms / 1000)} s`;

/** Reduces a collector snapshot to one sample. Pure. */
export function sampleFromSnapshot(s: MetricsSnapshot, at = Date.parse(s.at)): AutoscaleSample {
    const value = (n: MetricsSnapshot["nodes"][number], name: string) => n.samples.find((x) => x.name === name)?.value;
    const round = (x: number) => Math.round(x * 100) / 100;
    const avg = (xs: Array<number | undefined>) => (xs.length && xs.every((x) => x !== undefined) ? round((xs as number[]).reduce((a, b) => a + b, 0) / xs.length) : undefined);
    const masters = s.nodes.filter((n) => n.role === "master");
    const replicas = s.nodes.filter((n) => n.role === "replica");
    const unreachable = s.nodes.some((n) => !n.reachable);
    const mem = masters.map((n) => value(n, "DatabaseMemoryUsagePercentage"));
    return {
        at,
        memoryPercent: unreachable ? undefined : avg(mem),
        maxMemoryPercent: mem.every((x) => x !== undefined) && mem.length ? Math.max(...(mem as number[])) : undefined,
        masterCpuPercent: unreachable ? undefined : avg(masters.map((n) => value(n, "EngineCPUUtilization"))),
        replicaCpuPercent: unreachable || !replicas.length ? undefined : avg(replicas.map((n) => value(n, "EngineCPUUtilization"))),
    };
}

/** The history with one more sample, pruned to what any rule can still read. Pure. */
export function recordSample(h: AutoscaleHistory, s: AutoscaleSample, policy: AutoscalePolicy): AutoscaleHistory {
    const keepMs = Math.max(policy.scaleInWindowSeconds, policy.intervalSeconds * (policy.scaleOutDatapoints + 1)) * 1000 + policy.intervalSeconds * 2000;
    const keepActionsMs = Math.max(policy.scaleInCooldownSeconds, policy.scaleOutCooldownSeconds) * 1000 + 86400_000;
    return {
        version: 1,
        samples: [...h.samples, s].filter((x) => x.at >= s.at - keepMs).slice(-10_000),
        actions: h.actions.filter((a) => a.at >= s.at - keepActionsMs),
    };
}

export function emptyHistory(): AutoscaleHistory {
    return { version: 1, samples: [], actions: [] };
}

/** Parses a history file; an unreadable one starts afresh (the cool-downs then count from the cluster's own facts only). */
export function parseHistory(text: string | undefined): AutoscaleHistory {
    if (!text) return emptyHistory();
    try {
        const h = JSON.parse(text) as AutoscaleHistory;
        if (h?.version === 1 && Array.isArray(h.samples) && Array.isArray(h.actions)) return h;
    } catch {
        /* fall through */
    }
    return emptyHistory();
}

type Metric = "memoryPercent" | "masterCpuPercent" | "replicaCpuPercent";

/**
 * The decision. `history` holds the samples so far, the newest last (the current
 * reading included) and the autoscaler's own past actions.
 */
export function decide(policy: AutoscalePolicy, history: AutoscaleHistory, shape: Shape, facts: ClusterFacts): Decision {
    const now = facts.now;
    const latest = history.samples[history.samples.length - 1];
    const none = (reason: string, heldBy?: HeldBy, kind: "shards" | "replicas" = "shards"): Decision => ({
        action: "none", from: kind === "shards" ? shape.shards : shape.replicas, to: kind === "shards" ? shape.shards : shape.replicas, reason, heldBy,
        metrics: latest ? { memoryPercent: latest.memoryPercent, maxMemoryPercent: latest.maxMemoryPercent, masterCpuPercent: latest.masterCpuPercent, replicaCpuPercent: latest.replicaCpuPercent } : undefined,
    });
    const act = (action: AutoscaleActionKind, from: number, to: number, reason: string): Decision => ({ ...none(reason), action, from, to, heldBy: undefined });

    // --- facts that forbid any change
    const staleMs = policy.intervalSeconds * 2000 + 5000;
    if (!latest || now - latest.at > staleMs || latest.memoryPercent === undefined) {
        const why = !latest ? "no sample yet" : now - latest.at > staleMs ? `the newest sample is ${sec(now - latest.at)} old` : "DatabaseMemoryUsagePercentage missing on a master (unreachable, or no maxmemory set)";
        return none(`metrics missing: ${why}; nothing is decided without them`, "metrics-missing");
    }
    if (facts.problems.length) return none(`cluster unhealthy: ${facts.problems.slice(0, 3).join("; ")}`, "unhealthy");
    if (facts.openSlots > 0) return none(`${facts.openSlots} slot(s) open (MIGRATING/IMPORTING): a move is under way or was interrupted`, "open-slot");
    if (facts.leaseHeldBy) return none(`another run holds the cluster lease (${facts.leaseHeldBy})`, "lease");

    const tracked: Array<{ m: Metric; target: number; label: string }> = [{ m: "memoryPercent", target: policy.targetMemoryPercent, label: "master memory" }];
    if (policy.targetMasterCpuPercent !== undefined) tracked.push({ m: "masterCpuPercent", target: policy.targetMasterCpuPercent, label: "master CPU" });

    const lastOf = (kinds: AutoscaleActionKind[]) => history.actions.filter((a) => kinds.includes(a.action)).reduce<number | undefined>((m, a) => Math.max(m ?? 0, a.at), undefined);
    const lastOut = lastOf(["add-shards", "add-replicas"]);
    const lastAny = lastOf(["add-shards", "add-replicas", "remove-shards", "remove-replicas"]);
    const recent = (n: number) => history.samples.slice(-n);

    // --- shard scale-out
    const outNeed = policy.scaleOutDatapoints;
    for (const t of tracked) {
        const v = latest[t.m];
        if (v === undefined || v <= t.target) continue;
        const last = recent(outNeed);
        const above = last.filter((s) => (s[t.m] ?? 0) > t.target).length;
        if (last.length < outNeed || above < outNeed) {
            return none(`${t.label} ${fmt(v)} above the ${t.target} % target in ${above} of the last ${outNeed} sample(s); scale-out needs ${outNeed} in a row`, "datapoints");
        }
        if (shape.shards >= policy.maxShards) return none(`${t.label} ${fmt(v)} above the ${t.target} % target, but the cluster has maxShards (${policy.maxShards}) already`, "max-shards");
        if (lastOut !== undefined && now - lastOut < policy.scaleOutCooldownSeconds * 1000) {
            return none(`${t.label} ${fmt(v)} above the ${t.target} % target; scale-out cool-down: ${sec(policy.scaleOutCooldownSeconds * 1000 - (now - lastOut))} left`, "cooldown");
        }
        const breach = (v - t.target) / t.target;
        const step = Math.max(Math.ceil(shape.shards * breach), Math.ceil(shape.shards * 0.2), 1);
        const to = Math.min(policy.maxShards, shape.shards + step);
        const held = shardMoveHeld(facts);
        if (held) return none(`${t.label} ${fmt(v)} above the ${t.target} % target for ${outNeed} sample(s), but ${held.reason}`, held.heldBy);
        return act("add-shards", shape.shards, to,
            `${t.label} ${fmt(v)} above the ${t.target} % target for ${outNeed} sample(s) (breach ${(breach * 100).toFixed(0)} %): +${to - shape.shards} shard(s), the larger of the breach and 20 % of ${shape.shards}${to < shape.shards + step ? `, capped at maxShards ${policy.maxShards}` : ""}`);
    }
    if (shape.shards < policy.minShards) {
        const held = shardMoveHeld(facts);
        if (held) return none(`below minShards (${policy.minShards}), but ${held.reason}`, held.heldBy);
        return act("add-shards", shape.shards, policy.minShards, `${shape.shards} shard(s) is below minShards ${policy.minShards}`);
    }

    // --- replica scale-out (replica CPU)
    const rt = policy.targetReplicaCpuPercent;
    const rv = latest.replicaCpuPercent;
    if (rt !== undefined && rv !== undefined && rv > rt) {
        const last = recent(outNeed);
        const above = last.filter((s) => (s.replicaCpuPercent ?? 0) > rt).length;
        if (above < outNeed) return none(`replica CPU ${fmt(rv)} above the ${rt} % target in ${above} of the last ${outNeed} sample(s)`, "datapoints", "replicas");
        if (shape.replicas >= policy.maxReplicas) return none(`replica CPU ${fmt(rv)} above the ${rt} % target, but every shard has maxReplicas (${policy.maxReplicas})`, "max-replicas", "replicas");
        if (lastOut !== undefined && now - lastOut < policy.scaleOutCooldownSeconds * 1000) {
            return none(`replica CPU ${fmt(rv)} above the ${rt} % target; scale-out cool-down: ${sec(policy.scaleOutCooldownSeconds * 1000 - (now - lastOut))} left`, "cooldown", "replicas");
        }
        if (facts.backupRunning.length) return none(`replica CPU above target, but a backup or sync runs on ${facts.backupRunning.join(", ")}`, "backup", "replicas");
        return { ...act("add-replicas", shape.replicas, shape.replicas + 1, `replica CPU ${fmt(rv)} above the ${rt} % target for ${outNeed} sample(s): +1 replica per shard`) };
    }

    // --- scale-in: shards first, then replicas
    const inCandidates: Array<{ kind: "shards" | "replicas"; ok: boolean; why: string }> = [];
    const windowMs = policy.scaleInWindowSeconds * 1000;
    const inWindow = history.samples.filter((s) => s.at >= now - windowMs);
    // The window is covered when the history reaches back to its start (one interval of slack).
    const covered = history.samples.some((s) => s.at <= now - windowMs + policy.intervalSeconds * 1000);
    const allBelow = (m: Metric, target: number) => inWindow.length > 0 && inWindow.every((s) => s[m] !== undefined && (s[m] as number) < target * SCALE_IN_RATIO);

    const shardsLow = tracked.every((t) => allBelow(t.m, t.target));
    const replicasLow = rt !== undefined && allBelow("replicaCpuPercent", rt);
    if (shardsLow && shape.shards > policy.minShards) inCandidates.push({ kind: "shards", ok: true, why: "" });
    if (replicasLow && shape.replicas > policy.minReplicas) inCandidates.push({ kind: "replicas", ok: true, why: "" });
    if (!inCandidates.length) {
        const parts = tracked.map((t) => `${t.label} ${fmt(latest[t.m])} (target ${t.target} %, scale-in below ${(t.target * SCALE_IN_RATIO).toFixed(1)} %)`);
        if (shardsLow && shape.shards <= policy.minShards) return none(`${parts.join(", ")}: low, but the cluster has minShards (${policy.minShards})`, "min-shards");
        const lowNow = tracked.every((t) => latest[t.m] !== undefined && (latest[t.m] as number) < t.target * SCALE_IN_RATIO);
        if (lowNow && shape.shards > policy.minShards) {
            const since = [...history.samples].reverse().findIndex((s) => !tracked.every((t) => s[t.m] !== undefined && (s[t.m] as number) < t.target * SCALE_IN_RATIO));
            const lowFor = since < 0 ? now - history.samples[0].at : now - history.samples[history.samples.length - since].at;
            return none(`${parts.join(", ")}: low for ${sec(lowFor)} of the ${policy.scaleInWindowSeconds} s scale-in window`, "window");
        }
        return none(`${parts.join(", ")}${rt !== undefined ? `, replica CPU ${fmt(rv)} (target ${rt} %)` : ""}: within target`);
    }
    const c = inCandidates[0];
    const from = c.kind === "shards" ? shape.shards : shape.replicas;
    const label = c.kind === "shards" ? `${tracked.map((t) => `${t.label} ${fmt(latest[t.m])}`).join(", ")} below ${SCALE_IN_RATIO * 100} % of the target` : `replica CPU ${fmt(rv)} below ${SCALE_IN_RATIO * 100} % of the ${rt} % target`;
    if (policy.disableScaleIn) return none(`${label}, but scale-in is disabled (disableScaleIn)`, "disable-scale-in", c.kind);
    if (!covered) return none(`${label}; scale-in needs the whole ${policy.scaleInWindowSeconds} s window below it (history covers ${sec(now - history.samples[0].at)})`, "window", c.kind);
    if (lastAny !== undefined && now - lastAny < policy.scaleInCooldownSeconds * 1000) {
        return none(`${label} for the whole window; scale-in cool-down: ${sec(policy.scaleInCooldownSeconds * 1000 - (now - lastAny))} left`, "cooldown", c.kind);
    }
    if (policy.scaleInMaintenanceWindow && !inMaintenanceWindow(parseMaintenanceWindow(policy.scaleInMaintenanceWindow)!, now)) {
        return none(`${label} for the whole window; scale-in waits for the maintenance window ${policy.scaleInMaintenanceWindow} (UTC)`, "maintenance-window", c.kind);
    }
    if (c.kind === "replicas") {
        if (facts.backupRunning.length) return none(`${label}, but a backup or sync runs on ${facts.backupRunning.join(", ")}`, "backup", "replicas");
        return act("remove-replicas", from, from - 1, `${label} for the whole ${policy.scaleInWindowSeconds} s window: -1 replica per shard`);
    }
    // Would the remaining shards breach the target right away? Then scaling in only starts a flap.
    for (const t of tracked) {
        const after = (latest[t.m] as number) * shape.shards / (shape.shards - 1);
        if (after >= t.target) return none(`${label}, but ${shape.shards - 1} shard(s) would run at ~${fmt(after)}, at or above the ${t.target} % target`, "would-breach");
    }
    const held = shardMoveHeld(facts);
    if (held) return none(`${label} for the whole window, but ${held.reason}`, held.heldBy);
    const hr = scaleInHeadroom(facts.masters);
    if (!hr.ok) return none(`${label} for the whole window, but the remaining masters would not keep ${SCALE_IN_HEADROOM}× the memory of the data they receive: ${hr.problems.join("; ")}`, "headroom");
    return act("remove-shards", from, from - 1, `${label} for the whole ${policy.scaleInWindowSeconds} s window: -1 shard (one at a time)`);
}

/** Facts that forbid moving slots either way. */
function shardMoveHeld(f: ClusterFacts): { reason: string; heldBy: HeldBy } | undefined {
    if (f.backupRunning.length) return { reason: `a backup or sync runs on ${f.backupRunning.join(", ")} (BGSAVE/AOF rewrite)`, heldBy: "backup" };
    if (f.oversizedKeys.length) return { reason: `key(s) too big to move within the migration timeout: ${f.oversizedKeys.slice(0, 3).join(", ")}`, heldBy: "oversized-key" };
    return undefined;
}

/**
 * Drains the last master onto the others, evenly by keys, and checks every receiver
 * keeps 1.5× the incoming data free: the headroom planner (scripts/plan/headroom.ts)
 * with the flows inflated by 1.5 and no extra margin.
 */
export function scaleInHeadroom(masters: NodeMemory[]): { ok: boolean; problems: string[] } {
    if (masters.length < 2) return { ok: false, problems: ["fewer than two masters"] };
    const leaving = masters[masters.length - 1];
    const stay = masters.slice(0, -1);
    const flows = stay.map((m) => ({ from: leaving.id, to: m.id, keys: Math.ceil(leaving.keys * SCALE_IN_HEADROOM / stay.length) }));
    // Inflating keys inflates the bytes the source gives away too; only receivers are judged.
    const r = checkHeadroom(masters, flows, 0);
    return { ok: r.ok, problems: [...r.problems, ...r.unchecked.map((u) => `${u} has no maxmemory (not checked)`)].slice(0, 3) };
}
