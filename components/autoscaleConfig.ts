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
    /**
     * Where the AWS runner (components/autoscaleRunner.ts) finds the stack's state: the
     * backend URL `pulumi login` takes, `s3://bucket[/path][?region=…]` (self-managed) or
     * `https://…` (Pulumi Cloud or a self-hosted one). Required with `enabled`. @default undefined
     */
    runnerBackendUrl?: string;
    /**
     * A Secrets Manager secret (ARN) whose SecretString unlocks the stack for the runner:
     * PULUMI_CONFIG_PASSPHRASE with an s3:// backend and the passphrase secrets provider,
     * PULUMI_ACCESS_TOKEN with an https:// backend. Required with `enabled`, unless an s3://
     * backend uses an AWS KMS secrets provider (`runnerSecretsKmsKeyArn`). @default undefined
     */
    runnerSecretArn?: string;
    /** The KMS key of an `awskms://` secrets provider: the runner may Encrypt/Decrypt with it. @default undefined */
    runnerSecretsKmsKeyArn?: string;
    /**
     * The runner's instance type, Graviton (arm64: the runner runs Amazon Linux 2023 arm64).
     * `pulumi up` runs the program (Node.js with @pulumi/aws) and the AWS provider side by side. @default t4g.small
     */
    runnerInstanceType: string;
    /**
     * In an existing VPC (`vpcId`), the subnet the runner is launched in: private, with a
     * route to the internet through a NAT (the runner downloads Node.js packages and the
     * Pulumi CLI and plugins, and calls the EC2, ELB, CloudWatch, STS and KMS APIs). With a
     * VPC the stack creates, it creates that subnet and its NAT gateway. @default undefined
     */
    runnerSubnetId?: string;
}

/** The runner's default instance type (see the README's cost table). */
export const DEFAULT_RUNNER_INSTANCE_TYPE = "t4g.small";

export const AUTOSCALE_KEYS = [
    "enabled", "intervalSeconds", "targetMemoryPercent", "targetMasterCpuPercent", "targetReplicaCpuPercent",
    "minShards", "maxShards", "minReplicas", "maxReplicas", "scaleOutDatapoints", "scaleOutCooldownSeconds",
    "scaleInCooldownSeconds", "scaleInWindowSeconds", "disableScaleIn", "scaleInMaintenanceWindow",
    "runnerBackendUrl", "runnerSecretArn", "runnerSecretsKmsKeyArn", "runnerInstanceType", "runnerSubnetId",
] as const;

/** `s3://bucket[/path][?query]`: the bucket name as S3 allows it (3–63 lowercase letters, digits, dots, hyphens). */
const S3_BACKEND = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(\/[^?#\s]*)?(\?[^#\s]*)?$/;
const HTTPS_BACKEND = /^https:\/\/[A-Za-z0-9.-]+(:\d+)?(\/[^\s]*)?$/;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z]{2}(-[a-z]+)+-\d:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/;
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z]{2}(-[a-z]+)+-\d:\d{12}:key\/[0-9a-f-]{36}$/;
const GRAVITON_TYPE = /^([a-z]+\d+g[a-z]*)\.(nano|micro|small|medium|large|\d*xlarge)$/;

/** The state backend of an `s3://` URL: bucket and the key prefix Pulumi writes under (`<path>/.pulumi/`). */
export function s3Backend(url: string): { bucket: string; prefix: string; region?: string } | undefined {
    const m = S3_BACKEND.exec(url);
    if (!m) return undefined;
    const path = (m[2] ?? "").replace(/^\/+|\/+$/g, "");
    const region = /[?&]region=([a-z0-9-]+)/.exec(m[3] ?? "")?.[1];
    return { bucket: m[1], prefix: path ? `${path}/` : "", ...(region ? { region } : {}) };
}

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
    const str = (f: string, valid: RegExp, what: string): string | undefined => {
        const v = get(f);
        if (v === undefined) return undefined;
        if (typeof v !== "string" || !valid.test(v.trim())) {
            problems.push(`${key(f)} must be ${what} (got ${show(v)})`);
            return undefined;
        }
        return v.trim();
    };
    let runnerBackendUrl = get("runnerBackendUrl") === undefined ? undefined
        : str("runnerBackendUrl", /^(s3|https):\/\/\S+$/, "the state backend URL the runner logs in to: s3://bucket[/path][?region=…] (self-managed) or https://api.pulumi.com (Pulumi Cloud); " +
            "file:// and local paths are on your machine, not the runner's, and azblob:// or gs:// cannot be granted by an AWS role");
    if (runnerBackendUrl?.startsWith("s3://") && !s3Backend(runnerBackendUrl)) {
        problems.push(`${key("runnerBackendUrl")} must name an S3 bucket as s3://bucket[/path][?region=…], the bucket 3–63 lowercase letters, digits, dots or hyphens (got ${show(runnerBackendUrl)})`);
        runnerBackendUrl = undefined;
    } else if (runnerBackendUrl?.startsWith("https://") && !HTTPS_BACKEND.test(runnerBackendUrl)) {
        problems.push(`${key("runnerBackendUrl")} must be an https:// URL such as https://api.pulumi.com (got ${show(runnerBackendUrl)})`);
        runnerBackendUrl = undefined;
    }
    const runnerSecretArn = str("runnerSecretArn", SECRET_ARN, "the ARN of a Secrets Manager secret, arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters> (the full ARN: IAM grants the exact secret)");
    const runnerSecretsKmsKeyArn = str("runnerSecretsKmsKeyArn", KMS_KEY_ARN, "a KMS key ARN, arn:aws:kms:<region>:<account>:key/<key id> (the key of an awskms:// secrets provider; an alias cannot be granted)");
    const runnerInstanceType = str("runnerInstanceType", GRAVITON_TYPE, "a Graviton (arm64) instance type such as t4g.small or m7g.medium: the runner runs Amazon Linux 2023 for arm64") ?? DEFAULT_RUNNER_INSTANCE_TYPE;
    const runnerSubnetId = str("runnerSubnetId", /^subnet-([0-9a-f]{8}|[0-9a-f]{17})$/, "a subnet id such as subnet-0123456789abcdef0");
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
        runnerBackendUrl, runnerSecretArn, runnerSecretsKmsKeyArn, runnerInstanceType, runnerSubnetId,
    };
}

/**
 * What the AWS stack needs besides a valid policy when `enabled` creates the runner
 * (components/autoscaleRunner.ts): where the state is, how to unlock its secrets, and, in an
 * existing VPC, a subnet with a way out. Checked where the stack is built (RedisCluster),
 * not by local mode or the tool, which act without a runner.
 */
export function runnerConfigProblems(a: AutoscalePolicy, ctx: { ns: string; vpcId?: string }): string[] {
    if (!a.enabled) return [];
    const key = (f: string) => `${ctx.ns}:autoscale.${f}`;
    const problems: string[] = [];
    // The runner runs `pulumi up` with nobody at the keyboard: it must find the state and unlock its secrets.
    if (!a.runnerBackendUrl) {
        problems.push(`${key("enabled")} is true, which creates the AWS runner, but ${key("runnerBackendUrl")} is not set: the runner runs pulumi up unattended and must find the stack's state. ` +
            `Set it to the URL you log in to (pulumi whoami -v shows it), e.g. pulumi config set --path autoscale.runnerBackendUrl s3://my-state-bucket`);
    }
    const kmsProvider = !!a.runnerBackendUrl?.startsWith("s3://") && a.runnerSecretsKmsKeyArn !== undefined;
    if (!a.runnerSecretArn && !kmsProvider) {
        problems.push(`${key("enabled")} is true, which creates the AWS runner, but ${key("runnerSecretArn")} is not set: the runner needs a Secrets Manager secret holding ` +
            `${a.runnerBackendUrl?.startsWith("https://") ? "a Pulumi access token (PULUMI_ACCESS_TOKEN)" : "the stack's passphrase (PULUMI_CONFIG_PASSPHRASE)"} to read the stack's secrets; ` +
            `create it (aws secretsmanager create-secret --name redis-autoscale/<stack> --secret-string …) and set its full ARN, or, with an s3:// backend and an awskms:// secrets provider, set ${key("runnerSecretsKmsKeyArn")}`);
    }
    if (ctx.vpcId !== undefined && !a.runnerSubnetId) {
        problems.push(`${key("enabled")} is true in an existing VPC (${ctx.ns}:vpcId), but ${key("runnerSubnetId")} is not set: name a private subnet of that VPC with a route to a NAT gateway ` +
            `(the runner downloads Node.js packages and the Pulumi CLI, and calls the EC2, ELB, CloudWatch, STS and KMS APIs)`);
    }
    if (ctx.vpcId === undefined && a.runnerSubnetId) {
        problems.push(`${key("runnerSubnetId")} is for an existing VPC (${ctx.ns}:vpcId); with the VPC this stack creates, the stack creates the runner's subnet and NAT gateway itself: remove it (got ${JSON.stringify(a.runnerSubnetId)})`);
    }
    return problems;
}
