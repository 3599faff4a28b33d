/**
 * The `autoscale` block of the stack config (`redis-cluster:autoscale`), read by
 * parseStackConfig like every other key: one message per problem naming the key,
 * the value and what is valid. Pure (no `@pulumi/*`), so local mode, the cluster
 * tool and `pulumi up` read it alike.
 *
 * Defaults follow ElastiCache auto scaling where it has one (target 70 % memory,
 * scale-out cool-down 300 s, scale-in cool-down 900 s, scale-in after 15 minutes
 * below the scale-in threshold); see the README's "Automatic scaling" section.
 */
import { MAX_REPLICAS_PER_SHARD } from "./plan/placement";

export interface AutoscalePolicy {
    /** Whether the runner is created on AWS (and whether `autoscale` acts without --dry-run). @default false */
    enabled: boolean;
    /** Seconds between two decisions of a continuous run (and of the AWS runner's timer). @default 60 */
    intervalSeconds: number;
    /** Shard target: average DatabaseMemoryUsagePercentage of the masters. @default 70 */
    targetMemoryPercent: number;
    /** Optional shard target: average EngineCPUUtilization of the masters (percent of one core). @default undefined */
    targetMasterCpuPercent?: number;
    /** Optional replica target: average EngineCPUUtilization of the replicas. @default undefined */
    targetReplicaCpuPercent?: number;
    /** @default 3 */
    minShards: number;
    /** @default the larger of minShards and twice `shards` (at most 500) */
    maxShards: number;
    /** @default replicasPerShard */
    minReplicas: number;
    /** @default replicasPerShard */
    maxReplicas: number;
    /** Consecutive samples above a target before scaling out (a one-sample spike does not). @default 3 */
    scaleOutDatapoints: number;
    /** No scale-out this long after the last scale-out. @default 300 */
    scaleOutCooldownSeconds: number;
    /** No scale-in this long after the last change of either kind. @default 900 */
    scaleInCooldownSeconds: number;
    /** Scale in only when every sample of this window is below 75 % of the target. @default 900 */
    scaleInWindowSeconds: number;
    /** Never remove shards or replicas. @default false */
    disableScaleIn: boolean;
    /** Scale in only inside this weekly (UTC) window, ElastiCache's format `sun:03:00-sun:05:00`, or a daily `03:00-05:00`. @default undefined (any time) */
    scaleInMaintenanceWindow?: string;
}

export const AUTOSCALE_KEYS = [
    "enabled", "intervalSeconds", "targetMemoryPercent", "targetMasterCpuPercent", "targetReplicaCpuPercent",
    "minShards", "maxShards", "minReplicas", "maxReplicas", "scaleOutDatapoints", "scaleOutCooldownSeconds",
    "scaleInCooldownSeconds", "scaleInWindowSeconds", "disableScaleIn", "scaleInMaintenanceWindow",
] as const;

const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/** A maintenance window as minutes of the week (UTC) [start, end); daily windows give 7 ranges. Undefined when malformed. */
export function parseMaintenanceWindow(spec: string): Array<[number, number]> | undefined {
    const weekly = /^(sun|mon|tue|wed|thu|fri|sat):([01]\d|2[0-3]):([0-5]\d)-(sun|mon|tue|wed|thu|fri|sat):([01]\d|2[0-3]):([0-5]\d)$/i.exec(spec.trim());
    const week = 7 * 24 * 60;
    const split = (s: number, e: number): Array<[number, number]> => (e > s ? [[s, e]] : [[s, week], [0, e]]);
    if (weekly) {
        const s = DAYS.indexOf(weekly[1].toLowerCase()) * 1440 + Number(weekly[2]) * 60 + Number(weekly[3]);
        const e = DAYS.indexOf(weekly[4].toLowerCase()) * 1440 + Number(weekly[5]) * 60 + Number(weekly[6]);
        return s === e ? undefined : split(s, e);
    }
    const daily = /^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$/.exec(spec.trim());
    if (!daily) return undefined;
    const s = Number(daily[1]) * 60 + Number(daily[2]);
    const e = Number(daily[3]) * 60 + Number(daily[4]);
    if (s === e) return undefined;
    const out: Array<[number, number]> = [];
    for (let d = 0; d < 7; d++) {
        if (e > s) out.push([d * 1440 + s, d * 1440 + e]);
        else out.push([d * 1440 + s, d * 1440 + 1440], [d * 1440, d * 1440 + e]);
    }
    return out;
}

/** Whether `atMs` (UTC) falls inside the window. */
export function inMaintenanceWindow(ranges: Array<[number, number]>, atMs: number): boolean {
    const d = new Date(atMs);
    const m = d.getUTCDay() * 1440 + d.getUTCHours() * 60 + d.getUTCMinutes();
    return ranges.some(([s, e]) => m >= s && m < e);
}

/**
 * Reads the block: a YAML mapping in Pulumi.<stack>.yaml, or the JSON string
 * `pulumi config get` hands to the program for structured values
 * (`pulumi config set --path autoscale.enabled true`). Problems are pushed, named
 * `redis-cluster:autoscale.<field>`.
 */
export function parseAutoscale(
    raw: unknown,
    ctx: { shards: number; replicasPerShard: number; minReplicasToWrite: number; ns: string },
    problems: string[],
): AutoscalePolicy {
    const key = (f: string) => `${ctx.ns}:autoscale.${f}`;
    const show = (v: unknown) => JSON.stringify(v);
    let block: Record<string, unknown> = {};
    if (typeof raw === "string") {
        try {
            raw = JSON.parse(raw);
        } catch {
            problems.push(`${ctx.ns}:autoscale must be a mapping such as {"enabled": true, "maxShards": 6} (got ${show(raw)})`);
            raw = undefined;
        }
    }
    if (raw !== undefined && raw !== null) {
        if (typeof raw !== "object" || Array.isArray(raw)) problems.push(`${ctx.ns}:autoscale must be a mapping such as {"enabled": true, "maxShards": 6} (got ${show(raw)})`);
        else block = raw as Record<string, unknown>;
    }
    for (const f of Object.keys(block)) {
        if (!(AUTOSCALE_KEYS as readonly string[]).includes(f)) problems.push(`${key(f)} is not a known key (known: ${AUTOSCALE_KEYS.join(", ")})`);
    }
    const get = (f: string) => {
        const v = block[f];
        return v === null || v === "" ? undefined : v;
    };
    function int(f: string, def: number, min: number, max: number, hint?: string): number;
    function int(f: string, def: undefined, min: number, max: number, hint?: string): number | undefined;
    function int(f: string, def: number | undefined, min: number, max: number, hint = ""): number | undefined {
        const v = get(f);
        if (v === undefined) return def;
        const n = typeof v === "number" ? v : typeof v === "string" && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
        if (!Number.isInteger(n) || n < min || n > max) {
            problems.push(`${key(f)} must be an integer from ${min} to ${max}${hint} (got ${show(v)})`);
            return def;
        }
        return n;
    }
    function bool(f: string, def: boolean): boolean {
        const v = get(f);
        if (v === undefined) return def;
        if (typeof v === "boolean") return v;
        if (typeof v === "string" && /^(true|false)$/i.test(v.trim())) return v.trim().toLowerCase() === "true";
        problems.push(`${key(f)} must be true or false (got ${show(v)})`);
        return def;
    }

    const enabled = bool("enabled", false);
    const intervalSeconds = int("intervalSeconds", 60, 1, 3600);
    const targetMemoryPercent = int("targetMemoryPercent", 70, 10, 90, " (ElastiCache allows 35–70 for memory; above 90 leaves no room to move slots)");
    const targetMasterCpuPercent = int("targetMasterCpuPercent", undefined, 10, 90, " (percent of one core)");
    const targetReplicaCpuPercent = int("targetReplicaCpuPercent", undefined, 10, 90, " (percent of one core)");
    const minShards = int("minShards", 3, 3, 500, " (Redis Cluster needs at least 3 masters)");
    const maxShards = int("maxShards", Math.min(500, Math.max(minShards, ctx.shards * 2)), 3, 500);
    const minReplicas = int("minReplicas", ctx.replicasPerShard, 0, MAX_REPLICAS_PER_SHARD);
    const maxReplicas = int("maxReplicas", Math.max(minReplicas, ctx.replicasPerShard), 0, MAX_REPLICAS_PER_SHARD);
    const scaleOutDatapoints = int("scaleOutDatapoints", 3, 1, 60);
    const scaleOutCooldownSeconds = int("scaleOutCooldownSeconds", 300, 0, 86400);
    const scaleInCooldownSeconds = int("scaleInCooldownSeconds", 900, 0, 86400);
    const scaleInWindowSeconds = int("scaleInWindowSeconds", 900, 1, 86400);
    const disableScaleIn = bool("disableScaleIn", false);
    let scaleInMaintenanceWindow: string | undefined;
    const w = get("scaleInMaintenanceWindow");
    if (w !== undefined) {
        if (typeof w !== "string" || !parseMaintenanceWindow(w)) {
            problems.push(`${key("scaleInMaintenanceWindow")} must be a UTC window such as sun:03:00-sun:05:00 (weekly) or 03:00-05:00 (daily), start ≠ end (got ${show(w)})`);
        } else scaleInMaintenanceWindow = w.trim().toLowerCase();
    }
    if (minShards > maxShards) problems.push(`${key("minShards")} (${minShards}) cannot exceed ${key("maxShards")} (${maxShards})`);
    else if (ctx.shards < minShards || ctx.shards > maxShards) {
        problems.push(`${ctx.ns}:shards (${ctx.shards}) must lie within ${key("minShards")}–${key("maxShards")} (${minShards}–${maxShards}): the autoscaler keeps the cluster inside them`);
    }
    if (minReplicas > maxReplicas) problems.push(`${key("minReplicas")} (${minReplicas}) cannot exceed ${key("maxReplicas")} (${maxReplicas})`);
    else if (ctx.replicasPerShard < minReplicas || ctx.replicasPerShard > maxReplicas) {
        problems.push(`${ctx.ns}:replicasPerShard (${ctx.replicasPerShard}) must lie within ${key("minReplicas")}–${key("maxReplicas")} (${minReplicas}–${maxReplicas})`);
    }
    if (minReplicas < ctx.minReplicasToWrite) {
        problems.push(`${key("minReplicas")} (${minReplicas}) is below ${ctx.ns}:minReplicasToWrite (${ctx.minReplicasToWrite}): a scale-in to it would refuse every write`);
    }
    return {
        enabled, intervalSeconds, targetMemoryPercent, targetMasterCpuPercent, targetReplicaCpuPercent,
        minShards, maxShards, minReplicas, maxReplicas, scaleOutDatapoints, scaleOutCooldownSeconds,
        scaleInCooldownSeconds, scaleInWindowSeconds, disableScaleIn, scaleInMaintenanceWindow,
    };
}
