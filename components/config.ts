/**
 * Typed, validated stack configuration.
 *
 * One module reads every key once. `parseStackConfig` is pure (no `@pulumi/*`
 * import) so the same rules apply to `pulumi up` (through `loadConfig`), to
 * `npm run render` and to local mode, which read `Pulumi.<stack>.yaml`
 * directly. Problems are gathered and thrown once, each naming the key, the
 * value and what would be valid.
 */

import { AutoscalePolicy, parseAutoscale } from "./autoscaleConfig";
import { MAX_REPLICAS_PER_SHARD, placementProblems } from "./plan/placement";
import { backupScheduleProblem, DEFAULT_BACKUP_SCHEDULE } from "./backupSchedule";
import { isXenInstanceType } from "./plan/ami";
import { rolloutProblems } from "./plan/rollout";
import { nodeName } from "./topology";

/** Config namespace: the `name` in Pulumi.yaml. Keys are `redis-cluster:<key>`. */
export const CONFIG_NAMESPACE = "redis-cluster";

/**
 * Engine package installed on the nodes. `valkey` (Valkey 8 on Amazon Linux
 * 2023) is the default; `redis6` (Redis 6.2) left security support on
 * 2025-08-31 (AL2023 support_info.xml, eol_redis6) and is kept for clusters
 * created with it; `redis` exists in local mode only (AL2023 has no such
 * package, so lookupEnvironment refuses it for a deployment).
 */
export type Engine = "valkey" | "redis6" | "redis";
export const ENGINES: readonly Engine[] = ["valkey", "redis6", "redis"];

export type MaxmemoryPolicy =
    | "noeviction" | "allkeys-lru" | "allkeys-lfu" | "allkeys-random"
    | "volatile-lru" | "volatile-lfu" | "volatile-random" | "volatile-ttl";
export const MAXMEMORY_POLICIES: readonly MaxmemoryPolicy[] = [
    "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
    "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
];

export interface StackConfig {
    /** Name of the cluster: prefix of resource names, shown by the tool, typed to confirm `flushall`. @default "<project>-<stack>" */
    clusterName: string;
    /** Number of masters (shards). At least 3, as Redis Cluster needs a majority of masters. @default 3 */
    shards: number;
    /** Replicas per master, 0–5. @default 1 */
    replicasPerShard: number;
    /** Availability zones to spread over (one private subnet each), 1–6. @default 3 */
    zones: number;
    /** Client port; the cluster bus is port + 10000. @default 6379 */
    port: number;
    /** TLS for clients, replication and the cluster bus. @default false */
    tls: boolean;
    /** EC2 instance type of every node. @default "r7g.large" */
    instanceType: string;
    /** Pinned AMI id. When unset, the newest Amazon Linux 2023 AMI is looked up once per deployment; pin it for production. @default undefined */
    amiId?: string;
    /** VPC CIDR; split into one private subnet per zone. Only when the stack creates its VPC (no `vpcId`). @default "10.42.0.0/16" */
    vpcCidr: string;
    /**
     * An existing VPC to deploy into instead of creating one; needs `subnetIds`. The stack then
     * creates no VPC, subnets, route tables, endpoints or flow logs (README, "Deploy into an
     * existing VPC", lists what the nodes then need; existingVpc.ts checks it). Fixed at creation.
     * @default undefined (the stack creates its own VPC)
     */
    vpcId?: string;
    /**
     * With `vpcId`: private subnets of that VPC, one per zone used, at least 1 + replicasPerShard
     * (each node of a shard in its own zone). Zone i of the placement is subnetIds[i]; `zones`
     * is their count. @default []
     */
    subnetIds: string[];
    /** CIDRs allowed to reach the Redis port. @default [] */
    clientCidrs: string[];
    /** Security groups allowed to reach the Redis port. @default [] */
    clientSecurityGroupIds: string[];
    /** Engine package on the nodes: `valkey` (Valkey 8), or `redis6` (Redis 6.2, out of security support since 2025-08-31). @default "valkey" */
    engine: Engine;
    /** Data volume (gp3) size. @default 50 */
    dataVolumeSizeGiB: number;
    /** Data volume provisioned IOPS, 3000–16000 and at most 500 per GiB. @default 3000 */
    dataVolumeIops: number;
    /** Data volume throughput, 125–1000 MiB/s and at most IOPS/4. @default 125 */
    dataVolumeThroughputMiBps: number;
    /** Share of the instance's memory given to Redis as `maxmemory`, 10–90. @default 70 */
    maxmemoryPercent: number;
    /** Eviction policy; `noeviction` for a datastore. @default "noeviction" */
    maxmemoryPolicy: MaxmemoryPolicy;
    /** `cluster-node-timeout`. @default 5000 */
    clusterNodeTimeoutMs: number;
    /** `cluster-replica-validity-factor`. @default 10 */
    clusterReplicaValidityFactor: number;
    /** `min-replicas-to-write`: refuse writes unless this many replicas are connected. @default 0 */
    minReplicasToWrite: number;
    /** `min-replicas-max-lag`. @default 10 */
    minReplicasMaxLagSec: number;
    /**
     * When the nodes back up to S3: a systemd OnCalendar expression in UTC (`daily`, `*-*-* 03:00`,
     * `Mon..Fri 02:30`), or `off`. Seconds must be 00. @default "daily"
     */
    backupSchedule: string;
    /** Days before backups move to STANDARD_IA (0 disables). @default 30 */
    backupTransitionDays: number;
    /** Days before backups (and noncurrent versions) expire. @default 90 */
    backupExpirationDays: number;
    /** EBS snapshots kept by the Data Lifecycle Manager schedule. @default 7 */
    snapshotRetentionCount: number;
    /** Hours between EBS snapshots (1, 2, 3, 4, 6, 8, 12 or 24). @default 24 */
    snapshotIntervalHours: number;
    /** E-mail address subscribed to the alarm topic. @default undefined */
    alarmEmail?: string;
    /** CPU alarm threshold per node. @default 80 */
    cpuAlarmThresholdPercent: number;
    /** Protect data volumes and the backup bucket from deletion (`protect` + `retainOnDelete`). @default false */
    protectData: boolean;
    /** Let `pulumi destroy` delete a non-empty backup bucket. @default false */
    backupBucketForceDestroy: boolean;
    /** Create SSM/CloudWatch interface endpoints (billed per zone-hour). Without them nodes need another way out. @default true */
    interfaceEndpoints: boolean;
    /** Retention of VPC flow logs and node logs. @default 30 */
    logRetentionDays: number;
    /**
     * IAM roles/users (ARNs) that administer the cluster's KMS key and may use it through
     * SSM, EC2 and S3 (deploy, refresh, restore backups), besides the node and snapshot roles.
     * Name every principal that runs `pulumi up` (CI and people). @default the principal running `pulumi up`
     */
    keyAdministratorArns: string[];
    /** Memory alarm (warning): DatabaseMemoryUsagePercentage above this. @default 80 */
    alarmMemoryWarningPercent: number;
    /** Memory alarm (critical): above this; writes fail at 100 with noeviction. @default 90 */
    alarmMemoryCriticalPercent: number;
    /** EngineCPUUtilization above this percent of one core (ElastiCache's guidance: 90). @default 90 */
    alarmEngineCpuPercent: number;
    /** ReplicationLag above this many seconds. @default 30 */
    alarmReplicationLagSeconds: number;
    /** DataVolumeUsedPercent above this. @default 80 */
    alarmDataVolumePercent: number;
    /** LastBackupAgeSeconds above this many hours (a daily schedule plus 2 h of slack). @default 26 */
    alarmBackupMaxAgeHours: number;
    /** LastVerifiedRestoreAgeSeconds above this many days: no `backup verify` succeeded lately. @default 7 */
    backupVerifyMaxAgeDays: number;
    /** Automatic scaling policy (components/autoscaleConfig.ts); off unless `enabled`. */
    autoscale: AutoscalePolicy;
    /**
     * The one node whose instance may take the current instanceType, amiId and user data
     * (every other existing node keeps what it was deployed with). Set only by
     * `npm run cluster -- roll`, for one targeted update. @default undefined
     */
    rollout?: string;
}

/** A raw value as found in pulumi.Config or in a stack YAML file. */
export type RawValue = string | number | boolean | unknown[] | Record<string, unknown> | undefined | null;

export class ConfigError extends Error {
    readonly problems: string[];
    constructor(problems: string[], where = "stack config") {
        super(`Invalid ${where}:\n${problems.map((p) => ` - ${p}`).join("\n")}`);
        this.name = "ConfigError";
        this.problems = problems;
    }
}

export const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
/** The VPC CIDR the stack creates when none is configured. */
export const DEFAULT_VPC_CIDR = "10.42.0.0/16";
export const SNAPSHOT_INTERVALS = [1, 2, 3, 4, 6, 8, 12, 24];

/** Whether a value is a `secure:` entry of a stack YAML that could not be decrypted here. */
export function isSecureValue(v: RawValue): v is { secure: string } {
    return typeof v === "object" && v !== null && !Array.isArray(v) && typeof (v as { secure?: unknown }).secure === "string";
}

/** Parses an IPv4 CIDR; returns undefined when malformed. */
export function parseCidr(cidr: string): { base: number; prefix: number } | undefined {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
    if (!m) return undefined;
    const octets = m.slice(1, 5).map(Number);
    const prefix = Number(m[5]);
    if (octets.some((o) => o > 255) || prefix > 32) return undefined;
    const addr = ((octets[0] << 24) >>> 0) + (octets[1] << 16) + (octets[2] << 8) + octets[3];
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    if ((addr & ~mask) >>> 0 !== 0) return undefined; // host bits set: "10.0.0.1/16"
    return { base: addr, prefix };
}

/**
 * Validates raw config values (strings from `pulumi config`, or typed YAML values)
 * and fills defaults. `get(key)` returns the raw value of `redis-cluster:<key>`.
 * Throws one ConfigError listing every problem.
 */
export function parseStackConfig(
    get: (key: string) => RawValue,
    ctx: { project: string; stack: string },
): StackConfig {
    const problems: string[] = [];
    const key = (k: string) => `${CONFIG_NAMESPACE}:${k}`;
    const show = (v: RawValue) => (typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v));

    const raw = (k: string): RawValue => {
        const v = get(k);
        if (isSecureValue(v)) return v; // handled per type below
        return v === null || v === "" ? undefined : v;
    };

    function int(k: string, def: number, min: number, max: number, hint = ""): number {
        const v = raw(k);
        if (v === undefined) return def;
        const n = typeof v === "number" ? v : typeof v === "string" && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
        if (!Number.isInteger(n) || n < min || n > max) {
            problems.push(`${key(k)} must be an integer from ${min} to ${max}${hint} (got ${show(v)})`);
            return def;
        }
        return n;
    }
    function bool(k: string, def: boolean): boolean {
        const v = raw(k);
        if (v === undefined) return def;
        if (typeof v === "boolean") return v;
        if (typeof v === "string" && /^(true|false)$/i.test(v.trim())) return v.trim().toLowerCase() === "true";
        problems.push(`${key(k)} must be true or false (got ${show(v)})`);
        return def;
    }
    function str(k: string, def: string | undefined, secretOk = false): string | undefined {
        const v = raw(k);
        if (v === undefined) return def;
        if (isSecureValue(v)) {
            if (secretOk) return "<secret>";
            problems.push(`${key(k)} cannot be a secret value here`);
            return def;
        }
        if (typeof v !== "string") {
            problems.push(`${key(k)} must be a string (got ${show(v)})`);
            return def;
        }
        return v.trim();
    }
    function list(k: string): string[] {
        const v = raw(k);
        if (v === undefined) return [];
        let arr: unknown = v;
        if (typeof v === "string") {
            const t = v.trim();
            if (t.startsWith("[")) {
                try { arr = JSON.parse(t); } catch { arr = undefined; }
            } else {
                arr = t.split(",").map((s) => s.trim()).filter(Boolean);
            }
        }
        if (!Array.isArray(arr) || !arr.every((x) => typeof x === "string")) {
            problems.push(`${key(k)} must be a list of strings, e.g. ["10.0.0.0/8"] (got ${show(v)})`);
            return [];
        }
        return (arr as string[]).map((s) => s.trim());
    }
    function oneOf<T extends string>(k: string, def: T, allowed: readonly T[]): T {
        const v = str(k, def) as string;
        if (!allowed.includes(v as T)) {
            problems.push(`${key(k)} must be one of ${allowed.join(", ")} (got ${show(v)})`);
            return def;
        }
        return v as T;
    }

    const clusterName = str("clusterName", `${ctx.project}-${ctx.stack}`)!;
    if (!/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/.test(clusterName)) {
        problems.push(`${key("clusterName")} must be 2–32 lowercase letters, digits or '-', starting with a letter (got ${show(clusterName)})`);
    }
    const shards = int("shards", 3, 3, 500, " (Redis Cluster needs at least 3 masters to keep a majority through one failure)");
    const replicasPerShard = int("replicasPerShard", 1, 0, MAX_REPLICAS_PER_SHARD);
    const vpcId = str("vpcId", undefined);
    const subnetIds = list("subnetIds");
    // In an existing VPC the subnets are the zones.
    const zones = int("zones", vpcId !== undefined && subnetIds.length > 0 ? subnetIds.length : 3, 1, 6);
    const port = int("port", 6379, 1024, 55535, " (the cluster bus uses port + 10000, which must stay ≤ 65535)");
    const tls = bool("tls", false);
    const instanceType = str("instanceType", "r7g.large")!;
    if (!/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(instanceType)) {
        problems.push(`${key("instanceType")} must be an EC2 instance type such as r7g.large (got ${show(instanceType)})`);
    } else if (isXenInstanceType(instanceType)) {
        problems.push(`${key("instanceType")} ${instanceType} is a Xen (non-Nitro) type: its EBS volumes have no NVMe serial, by which the nodes find their data volume; choose a Nitro type such as r7g.large, m7i.large or t4g.medium (got ${show(instanceType)})`);
    }
    const amiId = str("amiId", undefined);
    if (amiId !== undefined && !/^ami-[0-9a-f]{8,17}$/.test(amiId)) {
        problems.push(`${key("amiId")} must be an AMI id such as ami-0123456789abcdef0 (got ${show(amiId)})`);
    }
    const vpcCidr = str("vpcCidr", DEFAULT_VPC_CIDR)!;
    const parsedVpc = parseCidr(vpcCidr);
    if (!parsedVpc) {
        problems.push(`${key("vpcCidr")} must be an IPv4 CIDR such as 10.42.0.0/16 (got ${show(vpcCidr)})`);
    } else if (parsedVpc.prefix < 16 || parsedVpc.prefix > 24) {
        problems.push(`${key("vpcCidr")} prefix must be /16 to /24, as AWS allows for a VPC that holds ${zones} subnets (got ${show(vpcCidr)})`);
    }
    const clientCidrs = list("clientCidrs");
    for (const c of clientCidrs) {
        const p = parseCidr(c);
        if (!p) problems.push(`${key("clientCidrs")} entry must be an IPv4 CIDR such as 10.0.0.0/8 (got ${show(c)})`);
        else if (p.prefix === 0) problems.push(`${key("clientCidrs")} must not open Redis to the whole internet (got ${show(c)}); name the networks of your clients`);
    }
    for (const c of new Set(clientCidrs.filter((c, i) => clientCidrs.indexOf(c) !== i))) {
        problems.push(`${key("clientCidrs")} lists ${show(c)} more than once`);
    }
    const clientSecurityGroupIds = list("clientSecurityGroupIds");
    for (const g of new Set(clientSecurityGroupIds.filter((g, i) => clientSecurityGroupIds.indexOf(g) !== i))) {
        problems.push(`${key("clientSecurityGroupIds")} lists ${show(g)} more than once`);
    }
    for (const g of clientSecurityGroupIds) {
        if (!/^sg-[0-9a-f]{8,17}$/.test(g)) problems.push(`${key("clientSecurityGroupIds")} entry must be a security group id such as sg-0123456789abcdef0 (got ${show(g)})`);
    }
    const engine = oneOf("engine", "valkey", ENGINES);
    const dataVolumeSizeGiB = int("dataVolumeSizeGiB", 50, 1, 16384, " (gp3 limits)");
    const dataVolumeIops = int("dataVolumeIops", 3000, 3000, 16000, " (gp3 limits)");
    const dataVolumeThroughputMiBps = int("dataVolumeThroughputMiBps", 125, 125, 1000, " (gp3 limits)");
    if (dataVolumeIops > 500 * dataVolumeSizeGiB && dataVolumeIops > 3000) {
        problems.push(`${key("dataVolumeIops")} may be at most 500 per GiB on gp3: ${dataVolumeSizeGiB} GiB allows ${Math.max(3000, 500 * dataVolumeSizeGiB)} (got ${dataVolumeIops}); raise ${key("dataVolumeSizeGiB")} or lower the IOPS`);
    }
    if (dataVolumeThroughputMiBps > 125 && dataVolumeThroughputMiBps > dataVolumeIops / 4) {
        problems.push(`${key("dataVolumeThroughputMiBps")} may be at most IOPS/4 on gp3: ${dataVolumeIops} IOPS allow ${Math.floor(dataVolumeIops / 4)} MiB/s (got ${dataVolumeThroughputMiBps})`);
    }
    const maxmemoryPercent = int("maxmemoryPercent", 70, 10, 90, " (leave room for fork copy-on-write and the OS)");
    const maxmemoryPolicy = oneOf("maxmemoryPolicy", "noeviction", MAXMEMORY_POLICIES);
    const clusterNodeTimeoutMs = int("clusterNodeTimeoutMs", 5000, 1000, 120000);
    const clusterReplicaValidityFactor = int("clusterReplicaValidityFactor", 10, 0, 1000);
    const minReplicasToWrite = int("minReplicasToWrite", 0, 0, 5);
    if (minReplicasToWrite > replicasPerShard) {
        problems.push(`${key("minReplicasToWrite")} (${minReplicasToWrite}) cannot exceed ${key("replicasPerShard")} (${replicasPerShard}): every write would be refused`);
    }
    const minReplicasMaxLagSec = int("minReplicasMaxLagSec", 10, 1, 3600);
    const backupSchedule = str("backupSchedule", DEFAULT_BACKUP_SCHEDULE)!;
    const scheduleProblem = backupScheduleProblem(backupSchedule);
    if (scheduleProblem) {
        problems.push(`${key("backupSchedule")} must be a systemd OnCalendar expression in UTC such as daily, hourly or "*-*-* 03:00", or off: ${scheduleProblem} (got ${show(backupSchedule)})`);
    }
    const backupTransitionDays = int("backupTransitionDays", 30, 0, 3650, " (0 disables; S3 needs at least 30 for STANDARD_IA)");
    if (backupTransitionDays > 0 && backupTransitionDays < 30) {
        problems.push(`${key("backupTransitionDays")} must be 0 (off) or at least 30, the minimum S3 allows for STANDARD_IA (got ${backupTransitionDays})`);
    }
    const backupExpirationDays = int("backupExpirationDays", 90, 1, 36500);
    if (backupTransitionDays > 0 && backupExpirationDays <= backupTransitionDays) {
        problems.push(`${key("backupExpirationDays")} (${backupExpirationDays}) must be greater than ${key("backupTransitionDays")} (${backupTransitionDays})`);
    }
    const snapshotRetentionCount = int("snapshotRetentionCount", 7, 1, 1000);
    const snapshotIntervalHours = int("snapshotIntervalHours", 24, 1, 24);
    if (!SNAPSHOT_INTERVALS.includes(snapshotIntervalHours)) {
        problems.push(`${key("snapshotIntervalHours")} must be one of ${SNAPSHOT_INTERVALS.join(", ")} (got ${snapshotIntervalHours})`);
    }
    const alarmEmail = str("alarmEmail", undefined, true);
    if (alarmEmail !== undefined && alarmEmail !== "<secret>" && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(alarmEmail)) {
        problems.push(`${key("alarmEmail")} must be an e-mail address (got ${show(alarmEmail)})`);
    }
    const cpuAlarmThresholdPercent = int("cpuAlarmThresholdPercent", 80, 1, 100);
    const protectData = bool("protectData", false);
    const backupBucketForceDestroy = bool("backupBucketForceDestroy", false);
    if (protectData && backupBucketForceDestroy) {
        problems.push(`${key("protectData")} and ${key("backupBucketForceDestroy")} are both true: a protected bucket cannot be force-destroyed; set one of them to false`);
    }
    const interfaceEndpoints = bool("interfaceEndpoints", true);
    const keyAdministratorArns = list("keyAdministratorArns");
    for (const a of keyAdministratorArns) {
        if (!/^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/[\w+=,.@/-]{1,512}$/.test(a)) problems.push(`${key("keyAdministratorArns")} entry must be an IAM role or user ARN such as arn:aws:iam::123456789012:role/ops (got ${show(a)})`);
    }
    const logRetentionDays = int("logRetentionDays", 30, 1, 3653);
    if (!LOG_RETENTION_DAYS.includes(logRetentionDays)) {
        problems.push(`${key("logRetentionDays")} must be one of CloudWatch's values ${LOG_RETENTION_DAYS.join(", ")} (got ${logRetentionDays})`);
    }
    const alarmMemoryWarningPercent = int("alarmMemoryWarningPercent", 80, 1, 100);
    const alarmMemoryCriticalPercent = int("alarmMemoryCriticalPercent", 90, 1, 100);
    if (alarmMemoryCriticalPercent <= alarmMemoryWarningPercent) {
        problems.push(`${key("alarmMemoryCriticalPercent")} (${alarmMemoryCriticalPercent}) must be above ${key("alarmMemoryWarningPercent")} (${alarmMemoryWarningPercent})`);
    }
    const alarmEngineCpuPercent = int("alarmEngineCpuPercent", 90, 1, 100, " (percent of one core: the engine runs commands on one thread)");
    const alarmReplicationLagSeconds = int("alarmReplicationLagSeconds", 30, 1, 86400);
    const alarmDataVolumePercent = int("alarmDataVolumePercent", 80, 1, 100);
    const alarmBackupMaxAgeHours = int("alarmBackupMaxAgeHours", 26, 1, 8760);
    const backupVerifyMaxAgeDays = int("backupVerifyMaxAgeDays", 7, 1, 365);

    // The default vpcCidr passes through (a validated config fed back in carries it); any other is a mistake.
    problems.push(...vpcKeyProblems({ vpcId, subnetIds, zones, replicasPerShard, vpcCidrSet: raw("vpcCidr") !== undefined && vpcCidr !== DEFAULT_VPC_CIDR }));
    const autoscale = parseAutoscale(raw("autoscale"), { shards, replicasPerShard, minReplicasToWrite, ns: CONFIG_NAMESPACE }, problems);
    const rollout = str("rollout", undefined);
    if (!problems.some((p) => ["shards", "replicasPerShard", "clusterName"].some((k) => p.startsWith(`${key(k)} `)))) {
        const names: string[] = [];
        for (let s = 0; s < shards; s++) for (let r = 0; r <= replicasPerShard; r++) names.push(nodeName(clusterName, s, r));
        problems.push(...rolloutProblems(rollout, names, key("rollout")));
    }

    // Fixed node addresses must fit the subnets; only judged when the shape keys are valid on their own.
    // In an existing VPC the subnets' CIDRs are only known from AWS: lookupEnvironment judges them.
    const shapeKeys = ["shards", "replicasPerShard", "zones", "vpcCidr"].map(key);
    if (vpcId === undefined && parsedVpc && !problems.some((p) => shapeKeys.some((k) => p.startsWith(`${k} `)))) {
        problems.push(...placementProblems({ shards, replicasPerShard, zones, vpcCidr }, CONFIG_NAMESPACE));
        // The largest shape the autoscaler may reach must fit too, or its `pulumi up` would fail half-way.
        if (autoscale.enabled && !problems.some((p) => p.startsWith(`${CONFIG_NAMESPACE}:autoscale.`))) {
            for (const p of placementProblems({ shards: autoscale.maxShards, replicasPerShard: autoscale.maxReplicas, zones, vpcCidr }, CONFIG_NAMESPACE)) {
                problems.push(`${CONFIG_NAMESPACE}:autoscale.maxShards/maxReplicas (${autoscale.maxShards}/${autoscale.maxReplicas}) do not fit: ${p}`);
            }
        }
    }

    if (problems.length > 0) throw new ConfigError(problems);
    return {
        clusterName, shards, replicasPerShard, zones, port, tls, instanceType, amiId, vpcCidr, vpcId, subnetIds,
        clientCidrs, clientSecurityGroupIds, engine, dataVolumeSizeGiB, dataVolumeIops,
        dataVolumeThroughputMiBps, maxmemoryPercent, maxmemoryPolicy, clusterNodeTimeoutMs,
        clusterReplicaValidityFactor, minReplicasToWrite, minReplicasMaxLagSec, backupSchedule, backupTransitionDays,
        backupExpirationDays, snapshotRetentionCount, snapshotIntervalHours, alarmEmail,
        cpuAlarmThresholdPercent, protectData, backupBucketForceDestroy, interfaceEndpoints, logRetentionDays,
        keyAdministratorArns,
        alarmMemoryWarningPercent, alarmMemoryCriticalPercent, alarmEngineCpuPercent, alarmReplicationLagSeconds,
        alarmDataVolumePercent, alarmBackupMaxAgeHours, backupVerifyMaxAgeDays, autoscale, rollout,
    };
}

/**
 * What can be said about `vpcId`/`subnetIds` without asking AWS: both or neither, id formats,
 * one subnet per zone and enough of them for every node of a shard to sit in its own zone.
 * The rest (the subnets belong to the VPC, distinct zones, room for the fixed addresses, a
 * way to S3/SSM/CloudWatch) needs the account: see environment.ts.
 */
export function vpcKeyProblems(v: { vpcId?: string; subnetIds: string[]; zones: number; replicasPerShard: number; vpcCidrSet: boolean }): string[] {
    const key = (k: string) => `${CONFIG_NAMESPACE}:${k}`;
    const problems: string[] = [];
    if (v.vpcId === undefined) {
        if (v.subnetIds.length > 0) problems.push(`${key("subnetIds")} is set but ${key("vpcId")} is not: set ${key("vpcId")} to the VPC those subnets belong to, or remove ${key("subnetIds")} to let the stack create its own VPC`);
        return problems;
    }
    if (!/^vpc-[0-9a-f]{8,17}$/.test(v.vpcId)) problems.push(`${key("vpcId")} must be a VPC id such as vpc-0123456789abcdef0 (got ${JSON.stringify(v.vpcId)})`);
    if (v.vpcCidrSet) problems.push(`${key("vpcCidr")} only applies when the stack creates its VPC; with ${key("vpcId")} the subnets' own CIDRs are used: remove ${key("vpcCidr")}`);
    if (v.subnetIds.length === 0) {
        problems.push(`${key("vpcId")} needs ${key("subnetIds")}: the private subnets of ${v.vpcId} to place nodes in, one per availability zone, e.g. ["subnet-0aaa…", "subnet-0bbb…", "subnet-0ccc…"]`);
        return problems;
    }
    for (const s of v.subnetIds) {
        if (!/^subnet-[0-9a-f]{8,17}$/.test(s)) problems.push(`${key("subnetIds")} entry must be a subnet id such as subnet-0123456789abcdef0 (got ${JSON.stringify(s)})`);
    }
    for (const s of new Set(v.subnetIds.filter((s, i) => v.subnetIds.indexOf(s) !== i))) {
        problems.push(`${key("subnetIds")} lists ${JSON.stringify(s)} more than once`);
    }
    if (v.zones !== v.subnetIds.length) {
        problems.push(`${key("zones")} is ${v.zones} but ${key("subnetIds")} lists ${v.subnetIds.length} subnets: in an existing VPC each subnet is one zone; remove ${key("zones")} (it follows the subnets)`);
    }
    if (v.subnetIds.length < 1 + v.replicasPerShard) {
        problems.push(`${key("subnetIds")} lists ${v.subnetIds.length} subnet${v.subnetIds.length === 1 ? "" : "s"}, but ${key("replicasPerShard")} ${v.replicasPerShard} needs ${1 + v.replicasPerShard} (a master and each of its replicas in its own zone, so a shard survives losing a zone): add subnets in other zones or lower ${key("replicasPerShard")}`);
    }
    if (v.subnetIds.length > 6) problems.push(`${key("subnetIds")} lists ${v.subnetIds.length} subnets; at most 6 zones are used`);
    return problems;
}

/** Every key parseStackConfig reads; anything else under the namespace is reported as unknown. */
export const KNOWN_KEYS = [
    "clusterName", "shards", "replicasPerShard", "zones", "port", "tls", "instanceType", "amiId", "vpcCidr",
    "vpcId", "subnetIds", "clientCidrs", "clientSecurityGroupIds", "engine", "dataVolumeSizeGiB", "dataVolumeIops",
    "dataVolumeThroughputMiBps", "maxmemoryPercent", "maxmemoryPolicy", "clusterNodeTimeoutMs",
    "clusterReplicaValidityFactor", "minReplicasToWrite", "minReplicasMaxLagSec", "backupSchedule", "backupTransitionDays",
    "backupExpirationDays", "snapshotRetentionCount", "snapshotIntervalHours", "alarmEmail",
    "cpuAlarmThresholdPercent", "protectData", "backupBucketForceDestroy", "interfaceEndpoints", "logRetentionDays",
    "keyAdministratorArns",
    "alarmMemoryWarningPercent", "alarmMemoryCriticalPercent", "alarmEngineCpuPercent", "alarmReplicationLagSeconds",
    "alarmDataVolumePercent", "alarmBackupMaxAgeHours", "backupVerifyMaxAgeDays", "autoscale", "rollout",
] as const;

/**
 * Reads a committed `Pulumi.<stack>.yaml` (without the Pulumi CLI), for local mode
 * and `npm run render`. `secure:` values stay opaque (shown as `<secret>`).
 */
export function parseStackYaml(text: string, stack: string, project = CONFIG_NAMESPACE): StackConfig {
    // Lazy import keeps this module free of dependencies for the Pulumi program.
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const YAML = require("yaml") as typeof import("yaml");
    const doc = (YAML.parse(text) ?? {}) as { config?: Record<string, RawValue> };
    const cfg = doc.config ?? {};
    const unknown = Object.keys(cfg)
        .filter((k) => k.startsWith(`${CONFIG_NAMESPACE}:`))
        .map((k) => k.slice(CONFIG_NAMESPACE.length + 1))
        .filter((k) => !(KNOWN_KEYS as readonly string[]).includes(k));
    const unwrap = (v: RawValue): RawValue =>
        typeof v === "object" && v !== null && !Array.isArray(v) && "value" in v ? ((v as { value: RawValue }).value) : v;
    try {
        const parsed = parseStackConfig((k) => unwrap(cfg[`${CONFIG_NAMESPACE}:${k}`]), { project, stack });
        if (unknown.length > 0) throw new ConfigError(unknown.map((k) => `${CONFIG_NAMESPACE}:${k} is not a known key (known: ${KNOWN_KEYS.join(", ")})`), `Pulumi.${stack}.yaml`);
        return parsed;
    } catch (e) {
        if (e instanceof ConfigError) {
            const extra = unknown.map((k) => `${CONFIG_NAMESPACE}:${k} is not a known key`);
            const all = [...e.problems, ...extra.filter((x) => !e.problems.some((p) => p.startsWith(x)))];
            throw new ConfigError(all, `Pulumi.${stack}.yaml`);
        }
        throw e;
    }
}
