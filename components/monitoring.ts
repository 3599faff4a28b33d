/**
 * What the cluster publishes and what pages someone, in one place: the metric
 * catalog (names, units, dimensions) the collector maps to, and the alarm table
 * the stack's alarms and dashboard are generated from. Pure: no `@pulumi/*`
 * import, so the tool and the node's collector bundle share it.
 */
import type { StackConfig } from "./config";

/** CloudWatch units used here (MetricDatum's list). */
export type MetricUnit = "Percent" | "Count" | "Seconds" | "Bytes" | "None";

export type MetricKind =
    /** A level, published as read. */
    | "gauge"
    /** A monotonic total: CloudWatch gets the delta over the interval, Prometheus the total. */
    | "counter"
    /** CPU seconds: CloudWatch gets the delta as a percentage of one core over the interval. */
    | "cpu";

/** Extra dimension sets a metric is also published under, for alarms that need one value per cluster or shard. */
export type Aggregate = "cluster" | "shard";

export interface MetricDef {
    /** CloudWatch name (ElastiCache's where it has one). */
    name: string;
    unit: MetricUnit;
    kind: MetricKind;
    /** Prometheus name (snake_case, counters end in _total, as `promtool check metrics` wants). */
    prom: string;
    help: string;
    /** Only nodes in this role publish it (a replica has no connected replicas, a master no link to its master). */
    role?: "master" | "replica";
    /** Per-node dimensions, plus these sets. */
    aggregates?: Aggregate[];
    /** A fact about the cluster, not a node: published with ClusterName only, never per node. */
    clusterOnly?: boolean;
}

/**
 * Every metric, once. The number of CloudWatch metrics per node is the number of
 * rows without `clusterOnly` (each aggregate set adds one per cluster or shard):
 * see `metricCount`, which the README's cost table is computed from.
 */
export const METRICS: readonly MetricDef[] = [
    { name: "EngineCPUUtilization", unit: "Percent", kind: "cpu", prom: "redis_cluster_engine_cpu_seconds_total", help: "CPU time of the engine process (used_cpu_sys + used_cpu_user); CloudWatch: percent of one core over the interval" },
    { name: "DatabaseMemoryUsagePercentage", unit: "Percent", kind: "gauge", prom: "redis_cluster_database_memory_usage_percent", help: "used_memory / maxmemory, in percent (absent without maxmemory)" },
    { name: "CurrConnections", unit: "Count", kind: "gauge", prom: "redis_cluster_curr_connections", help: "Client connections (connected_clients)" },
    { name: "NewConnections", unit: "Count", kind: "counter", prom: "redis_cluster_connections_received_total", help: "Connections accepted (total_connections_received)" },
    { name: "RejectedConnections", unit: "Count", kind: "counter", prom: "redis_cluster_rejected_connections_total", help: "Connections refused because of maxclients (rejected_connections)" },
    { name: "CommandsProcessed", unit: "Count", kind: "counter", prom: "redis_cluster_commands_processed_total", help: "Commands processed (total_commands_processed); ElastiCache has no total, only per command type" },
    { name: "Evictions", unit: "Count", kind: "counter", prom: "redis_cluster_evicted_keys_total", help: "Keys evicted because of maxmemory (evicted_keys)" },
    { name: "Reclaimed", unit: "Count", kind: "counter", prom: "redis_cluster_expired_keys_total", help: "Key expiration events (expired_keys)" },
    { name: "CacheHits", unit: "Count", kind: "counter", prom: "redis_cluster_keyspace_hits_total", help: "Successful key lookups (keyspace_hits)" },
    { name: "CacheMisses", unit: "Count", kind: "counter", prom: "redis_cluster_keyspace_misses_total", help: "Failed key lookups (keyspace_misses)" },
    { name: "ErrorOOM", unit: "Count", kind: "counter", prom: "redis_cluster_oom_errors_total", help: "Commands refused with -OOM (errorstat_OOM)" },
    { name: "CurrItems", unit: "Count", kind: "gauge", prom: "redis_cluster_curr_items", help: "Keys in every database (keyspace section)" },
    { name: "IsMaster", unit: "None", kind: "gauge", prom: "redis_cluster_is_master", help: "1 when the node is a master" },
    { name: "ReplicationLag", unit: "Seconds", kind: "gauge", prom: "redis_cluster_replication_lag_seconds", role: "replica", help: "Seconds since the master last heard from this replica (its `lag`, what min-replicas-max-lag uses); while the link is down, seconds it has been down" },
    { name: "ReplicationBytes", unit: "Bytes", kind: "gauge", prom: "redis_cluster_replication_lag_bytes", role: "replica", help: "Bytes this replica is behind its master (master_repl_offset - slave_repl_offset): Redis reports lag in whole seconds only" },
    { name: "MasterLinkHealthStatus", unit: "None", kind: "gauge", prom: "redis_cluster_master_link_up", role: "replica", help: "1 when the replica's link to its master is up (master_link_status)" },
    { name: "ConnectedReplicas", unit: "Count", kind: "gauge", prom: "redis_cluster_connected_replicas", role: "master", aggregates: ["shard"], help: "Replicas connected to this master (connected_slaves)" },
    { name: "ClusterStateOk", unit: "None", kind: "gauge", prom: "redis_cluster_state_ok", help: "1 when the node answers and reports cluster_state:ok; 0 when it does not answer" },
    { name: "ClusterSlotsFail", unit: "Count", kind: "gauge", prom: "redis_cluster_slots_fail", aggregates: ["cluster"], help: "Slots whose master this node sees as failed (cluster_slots_fail)" },
    { name: "ClusterSlotsPfail", unit: "Count", kind: "gauge", prom: "redis_cluster_slots_pfail", help: "Slots whose master this node suspects (cluster_slots_pfail)" },
    { name: "ClusterKnownNodes", unit: "Count", kind: "gauge", prom: "redis_cluster_known_nodes", help: "Nodes this node knows (cluster_known_nodes)" },
    { name: "AofLastWriteOk", unit: "None", kind: "gauge", prom: "redis_cluster_aof_last_write_ok", help: "1 when the last AOF write succeeded (aof_last_write_status)" },
    { name: "RdbLastBgsaveOk", unit: "None", kind: "gauge", prom: "redis_cluster_rdb_last_bgsave_ok", help: "1 when the last BGSAVE succeeded (rdb_last_bgsave_status)" },
    { name: "DataVolumeUsedPercent", unit: "Percent", kind: "gauge", prom: "redis_cluster_data_volume_used_percent", help: "Used space of the data volume (as df counts it), measured on the node itself" },
    { name: "LastBackupAgeSeconds", unit: "Seconds", kind: "gauge", prom: "redis_cluster_last_backup_age_seconds", clusterOnly: true, help: "Seconds since the newest complete backup (backup.json completedAt)" },
    { name: "LastVerifiedRestoreAgeSeconds", unit: "Seconds", kind: "gauge", prom: "redis_cluster_last_verified_restore_age_seconds", clusterOnly: true, help: "Seconds since the newest successful `backup verify` (verified.json verifiedAt, ok)" },
];

export const METRIC_BY_NAME: ReadonlyMap<string, MetricDef> = new Map(METRICS.map((m) => [m.name, m]));

/** CloudWatch custom metrics a cluster of this shape publishes: one per (name, dimension values). */
export function metricCount(shape: { shards: number; nodes: number }): { perNode: number; nodes: number; shard: number; cluster: number; total: number } {
    const perNode = METRICS.filter((m) => !m.clusterOnly).length;
    const shard = METRICS.filter((m) => m.aggregates?.includes("shard")).length * shape.shards;
    const cluster = METRICS.filter((m) => m.clusterOnly || m.aggregates?.includes("cluster")).length;
    return { perNode, nodes: perNode * shape.nodes, shard, cluster, total: perNode * shape.nodes + shard + cluster };
}


/** A node as the alarms and dashboard see it. */
export interface MonitoredNode {
    /** `<cluster>-s<shard>-r<replica>`: the NodeName dimension. */
    name: string;
    shard: number;
    /** Pulumi resource name prefix of the node (`${name}-s<shard>-r<replica>`). */
    resourceName: string;
}

/** What the alarm table needs from the stack config (the keys' docs and defaults are there). */
export type AlarmSettings = Pick<StackConfig,
    | "clusterName"
    | "replicasPerShard"
    | "alarmMemoryWarningPercent"
    | "alarmMemoryCriticalPercent"
    | "alarmEngineCpuPercent"
    | "alarmReplicationLagSeconds"
    | "alarmDataVolumePercent"
    | "alarmBackupMaxAgeHours"
    | "backupVerifyMaxAgeDays">;

export type AlarmScope = "node" | "shard" | "cluster";

/** One row of the alarm table: one alarm per node, per shard or per cluster. */
export interface AlarmRule {
    /** Suffix of the alarm's name and resource name. */
    id: string;
    metric: string;
    scope: AlarmScope;
    statistic: "Minimum" | "Maximum" | "Average" | "Sum";
    comparison: "LessThanThreshold" | "GreaterThanThreshold";
    threshold: (s: AlarmSettings) => number;
    /** Seconds per datapoint. */
    period: number;
    /** Datapoints that must breach, out of as many periods. */
    datapoints: number;
    /**
     * breaching: silence is a failure (a node that stops reporting its state);
     * notBreaching: only some nodes publish it (replicas' link and lag, masters' replicas);
     * missing: stay INSUFFICIENT_DATA until the first value (backup facts).
     */
    missing: "breaching" | "notBreaching" | "missing";
    /** critical alarms make up the composite "cluster unhealthy" alarm. */
    severity: "critical" | "warning";
    when?: (s: AlarmSettings) => boolean;
    /** What happened and what to do: the alarm description, shown in the notification. */
    describe: (subject: string, threshold: number, s: AlarmSettings) => string;
}

const STATUS = (s: AlarmSettings) => `npm run cluster -- status --stack <stack> (or status --watch)`;

/**
 * The alarms, with defaults from config (components/config.ts) and AWS's guidance for
 * ElastiCache ("Which Metrics Should I Monitor?": EngineCPUUtilization at 90% of one
 * core; memory before maxmemory). Every period is 60 s, the collector's interval.
 */
export const ALARM_RULES: readonly AlarmRule[] = [
    {
        id: "cluster-state", metric: "ClusterStateOk", scope: "node", statistic: "Minimum", comparison: "LessThanThreshold", threshold: () => 1,
        period: 60, datapoints: 2, missing: "breaching", severity: "critical",
        describe: (n, _t, s) => `${n}: cluster_state is not ok, the node does not answer, or it stopped reporting (2 of 2 minutes). ` +
            `Run ${STATUS(s)}: an unreachable node or failed master shows there. If the instance is down, EC2 recovers it; if Redis is down, look at journalctl -u the engine on the node (Session Manager). Slots of a failed master with no replica stay down until it is back.`,
    },
    {
        id: "slots-fail", metric: "ClusterSlotsFail", scope: "cluster", statistic: "Maximum", comparison: "GreaterThanThreshold", threshold: () => 0,
        period: 60, datapoints: 1, missing: "notBreaching", severity: "critical",
        describe: (c, _t, s) => `${c}: some node sees slots whose master has failed: those keys are unavailable. Run ${STATUS(s)}; if no replica took over, bring the master back or promote one with npm run cluster -- failover --shard N --force.`,
    },
    {
        id: "replica-link", metric: "MasterLinkHealthStatus", scope: "node", statistic: "Minimum", comparison: "LessThanThreshold", threshold: () => 1,
        period: 60, datapoints: 3, missing: "notBreaching", severity: "critical",
        describe: (n) => `${n}: this replica's link to its master has been down for more than 2 minutes; it is not receiving writes and cannot take over safely. Check the master and the network between them; a full resync after a long break shows as SYNC in the replica's log.`,
    },
    {
        id: "no-replica", metric: "ConnectedReplicas", scope: "shard", statistic: "Maximum", comparison: "LessThanThreshold", threshold: () => 1,
        period: 60, datapoints: 2, missing: "breaching", severity: "critical", when: (s) => s.replicasPerShard > 0,
        describe: (sh, _t, s) => `${sh}: the shard's master has no connected replica (or no master reports): one more failure loses its slots. Run ${STATUS(s)}; restart or replace the replica, then npm run cluster -- replicate REPLICA MASTER if it does not rejoin.`,
    },
    {
        id: "memory-warning", metric: "DatabaseMemoryUsagePercentage", scope: "node", statistic: "Maximum", comparison: "GreaterThanThreshold", threshold: (s) => s.alarmMemoryWarningPercent,
        period: 60, datapoints: 5, missing: "notBreaching", severity: "warning",
        describe: (n, t) => `${n}: used memory above ${t}% of maxmemory for 5 minutes. Plan capacity now: add shards (pulumi up, then npm run cluster -- scale), a larger instanceType, or expire keys; with noeviction writes fail at 100%.`,
    },
    {
        id: "memory-critical", metric: "DatabaseMemoryUsagePercentage", scope: "node", statistic: "Maximum", comparison: "GreaterThanThreshold", threshold: (s) => s.alarmMemoryCriticalPercent,
        period: 60, datapoints: 2, missing: "notBreaching", severity: "critical",
        describe: (n, t) => `${n}: used memory above ${t}% of maxmemory: writes will soon fail with OOM (noeviction) or keys be evicted. Scale out now (pulumi up + npm run cluster -- scale) or free memory; find big keys with redis-cli --bigkeys.`,
    },
    {
        id: "oom-errors", metric: "ErrorOOM", scope: "node", statistic: "Sum", comparison: "GreaterThanThreshold", threshold: () => 0,
        period: 60, datapoints: 1, missing: "notBreaching", severity: "critical",
        describe: (n) => `${n}: commands were refused with OOM: clients see write errors now. Free memory or scale out (see the memory alarms); raise maxmemoryPercent only if the instance has room for fork copy-on-write.`,
    },
    {
        id: "engine-cpu", metric: "EngineCPUUtilization", scope: "node", statistic: "Average", comparison: "GreaterThanThreshold", threshold: (s) => s.alarmEngineCpuPercent,
        period: 60, datapoints: 5, missing: "notBreaching", severity: "warning",
        describe: (n, t) => `${n}: the engine used more than ${t}% of one core for 5 minutes (commands run on one thread): latency rises. Look for slow commands (SLOWLOG GET), hot keys, or too many new connections; spread load by adding shards or read replicas.`,
    },
    {
        id: "replication-lag", metric: "ReplicationLag", scope: "node", statistic: "Maximum", comparison: "GreaterThanThreshold", threshold: (s) => s.alarmReplicationLagSeconds,
        period: 60, datapoints: 2, missing: "notBreaching", severity: "critical",
        describe: (n, t) => `${n}: this replica is more than ${t} s behind its master for 2 minutes: a failover now loses those writes, and min-replicas-to-write may refuse writes. Check the replica's CPU and network, and the master's write rate (ReplicationBytes).`,
    },
    {
        id: "data-volume", metric: "DataVolumeUsedPercent", scope: "node", statistic: "Maximum", comparison: "GreaterThanThreshold", threshold: (s) => s.alarmDataVolumePercent,
        period: 60, datapoints: 5, missing: "notBreaching", severity: "critical",
        describe: (n, t) => `${n}: the data volume is more than ${t}% full: AOF rewrites and RDB saves need free space and fail when it runs out. Raise dataVolumeSizeGiB and pulumi up (the filesystem grows at the next bootstrap run), or look for a stuck AOF rewrite.`,
    },
    {
        id: "backup-age", metric: "LastBackupAgeSeconds", scope: "cluster", statistic: "Minimum", comparison: "GreaterThanThreshold", threshold: (s) => s.alarmBackupMaxAgeHours * 3600,
        period: 300, datapoints: 1, missing: "missing", severity: "critical",
        describe: (c, t) => `${c}: no complete backup in the last ${t / 3600} h. Look at the nodes' backup service logs (journalctl -u the backup unit, Session Manager), then take one with npm run cluster -- backup --stack <stack>.`,
    },
    {
        id: "restore-verify-age", metric: "LastVerifiedRestoreAgeSeconds", scope: "cluster", statistic: "Minimum", comparison: "GreaterThanThreshold", threshold: (s) => s.backupVerifyMaxAgeDays * 86400,
        period: 300, datapoints: 1, missing: "missing", severity: "warning",
        describe: (c, t) => `${c}: no backup has been restored and verified in ${t / 86400} days: you do not know that the backups restore. Run npm run cluster -- backup verify --stack <stack> (or fix its scheduled job).`,
    },
];

/** One concrete alarm, planned from a rule for one node, shard or the cluster. */
export interface PlannedAlarm {
    rule: AlarmRule;
    /** AlarmName, unique per account and region: starts with the cluster's or node's name. */
    name: string;
    /** Pulumi resource name. */
    resourceName: string;
    dimensions: Record<string, string>;
    threshold: number;
    description: string;
}

/** Every alarm of the table for this cluster's nodes. Pure. */
export function planAlarms(s: AlarmSettings, nodes: MonitoredNode[], resourcePrefix: string): PlannedAlarm[] {
    const out: PlannedAlarm[] = [];
    const shards = [...new Set(nodes.map((n) => n.shard))].sort((a, b) => a - b);
    for (const rule of ALARM_RULES) {
        if (rule.when && !rule.when(s)) continue;
        const t = rule.threshold(s);
        if (rule.scope === "node") {
            for (const n of nodes) {
                out.push({ rule, name: `${n.name}-${rule.id}`, resourceName: `${n.resourceName}-${rule.id}`, threshold: t,
                    dimensions: { ClusterName: s.clusterName, Shard: String(n.shard), NodeName: n.name }, description: rule.describe(n.name, t, s) });
            }
        } else if (rule.scope === "shard") {
            for (const sh of shards) {
                out.push({ rule, name: `${s.clusterName}-s${sh}-${rule.id}`, resourceName: `${resourcePrefix}-s${sh}-${rule.id}`, threshold: t,
                    dimensions: { ClusterName: s.clusterName, Shard: String(sh) }, description: rule.describe(`${s.clusterName} shard ${sh}`, t, s) });
            }
        } else {
            out.push({ rule, name: `${s.clusterName}-${rule.id}`, resourceName: `${resourcePrefix}-${rule.id}`, threshold: t,
                dimensions: { ClusterName: s.clusterName }, description: rule.describe(s.clusterName, t, s) });
        }
    }
    return out;
}

/** CloudWatch allows at most 100 children in one composite alarm rule. */
export const COMPOSITE_CHILDREN_MAX = 100;

/** The composite alarm rule `ALARM("a") OR ALARM("b") …` over alarm names. */
export function compositeRule(alarmNames: string[]): string {
    return alarmNames.map((n) => `ALARM(${JSON.stringify(n)})`).join(" OR ");
}

/** Splits children into groups a composite alarm can hold. */
export function chunk<T>(items: T[], size = COMPOSITE_CHILDREN_MAX): T[][] {
    const out: T[][] = [];
    for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
    return out;
}

/** One graph of the dashboard: a metric, its statistic and the lines (dimension sets). */
interface GraphSpec {
    title: string;
    metric: string;
    stat: string;
    lines: { label: string; dimensions: Record<string, string> }[];
    unitLabel?: string;
}

/** The per-shard row: which metric each graph shows, from the same catalog. */
export const SHARD_ROW: readonly { title: string; metric: string; stat: string }[] = [
    { title: "memory % of maxmemory", metric: "DatabaseMemoryUsagePercentage", stat: "Maximum" },
    { title: "commands / min", metric: "CommandsProcessed", stat: "Sum" },
    { title: "engine CPU % of one core", metric: "EngineCPUUtilization", stat: "Average" },
    { title: "replication lag (s)", metric: "ReplicationLag", stat: "Maximum" },
    { title: "connections", metric: "CurrConnections", stat: "Maximum" },
];

/** The cluster row. */
export const CLUSTER_ROW: readonly { title: string; metric: string; stat: string; perNode: boolean }[] = [
    { title: "cluster_state ok (per node)", metric: "ClusterStateOk", stat: "Minimum", perNode: true },
    { title: "slots failing (any node)", metric: "ClusterSlotsFail", stat: "Maximum", perNode: false },
    { title: "slots suspected (per node)", metric: "ClusterSlotsPfail", stat: "Maximum", perNode: true },
    { title: "known nodes (per node)", metric: "ClusterKnownNodes", stat: "Minimum", perNode: true },
    { title: "last backup age (s)", metric: "LastBackupAgeSeconds", stat: "Minimum", perNode: false },
];

/**
 * The dashboard body (CloudWatch dashboard body structure): a header, the cluster row,
 * then a row per shard with one line per node. `alarmArns` adds an alarm status
 * widget (the composite first).
 */
export function planDashboard(opts: { clusterName: string; region: string; namespace: string; nodes: MonitoredNode[]; alarmArns?: string[] }): { widgets: unknown[] } {
    const { clusterName, region, namespace, nodes } = opts;
    const widgets: unknown[] = [];
    let y = 0;
    const graph = (g: GraphSpec, x: number, w: number) => ({
        type: "metric", x, y, width: w, height: 6,
        properties: {
            title: g.title, region, view: "timeSeries", stacked: false, period: 60, stat: g.stat,
            metrics: g.lines.map((l) => [namespace, g.metric, ...Object.entries(l.dimensions).flat(), { label: l.label }]),
        },
    });
    widgets.push({ type: "text", x: 0, y, width: 24, height: 2, properties: { markdown: `# ${clusterName}\nRedis Cluster metrics published by every node each minute (namespace ${namespace}). Alarms and what to do: README "Monitoring".` } });
    y += 2;
    if (opts.alarmArns?.length) {
        widgets.push({ type: "alarm", x: 0, y, width: 24, height: 3, properties: { title: "alarms", alarms: opts.alarmArns.slice(0, 100), sortBy: "stateUpdatedTimestamp" } });
        y += 3;
    }
    const cluster = { ClusterName: clusterName };
    const w = Math.floor(24 / CLUSTER_ROW.length);
    CLUSTER_ROW.forEach((c, i) => {
        const lines = c.perNode
            ? nodes.map((n) => ({ label: n.name, dimensions: { ClusterName: clusterName, Shard: String(n.shard), NodeName: n.name } }))
            : [{ label: clusterName, dimensions: cluster }];
        widgets.push(graph({ title: c.title, metric: c.metric, stat: c.stat, lines }, i * w, w));
    });
    y += 6;
    const shards = [...new Set(nodes.map((n) => n.shard))].sort((a, b) => a - b);
    for (const sh of shards) {
        const members = nodes.filter((n) => n.shard === sh);
        const sw = Math.floor(24 / SHARD_ROW.length);
        SHARD_ROW.forEach((r, i) => {
            widgets.push(graph({
                title: `shard ${sh}: ${r.title}`, metric: r.metric, stat: r.stat,
                lines: members.map((n) => ({ label: n.name, dimensions: { ClusterName: clusterName, Shard: String(sh), NodeName: n.name } })),
            }, i * sw, sw));
        });
        y += 6;
    }
    return { widgets };
}
