/**
 * What the cluster reports about itself, as metric samples: the one mapping from
 * what was read on a node (INFO, CLUSTER INFO, its own CLUSTER NODES line, its
 * master's replication offsets, the data volume) to named samples, shared by every
 * outlet (`metrics --format`, `metrics --serve`, `status --watch`, the node's
 * CloudWatch publisher). Pure: data in, data out.
 *
 * Names and units follow ElastiCache's (AWS/ElastiCache, "Metrics for Redis",
 * https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/CacheMetrics.Redis.html)
 * wherever it has an equivalent, so runbooks and dashboards carry over; the
 * cluster ones (ClusterStateOk ...) and the backup ages are ours.
 *
 * Counters (NewConnections, Evictions ...) are deltas over the interval for
 * CloudWatch, as ElastiCache publishes them, and raw totals for Prometheus (which
 * takes rate() itself). Deltas need the previous reading: `CollectorState`, kept by
 * the caller between runs (a JSON file on the node, memory in `status --watch`).
 */

import { METRICS, MetricUnit } from "../../components/monitoring";

export { METRIC_BY_NAME, METRICS, metricCount } from "../../components/monitoring";
export type { Aggregate, MetricDef, MetricKind, MetricUnit } from "../../components/monitoring";

/** What was read from one node; plain data (the executor in scripts/redis fills it). */
export interface MetricsNodeInput {
    /** Topology name, e.g. `redis-cluster-s0-r1`; the NodeName dimension. */
    name: string;
    /** Declared shard; the Shard dimension. */
    shard: number;
    key: string;
    reachable: boolean;
    error?: string;
    /** Default INFO plus INFO errorstats, flattened (field -> value). */
    info: Record<string, string>;
    /** Whether INFO errorstats answered with its section (Redis 6.2+): without it, ErrorOOM is unknown, not 0. */
    hasErrorstats: boolean;
    /** CLUSTER INFO fields. */
    clusterInfo: Record<string, string>;
    /** INFO replication of this replica's master, when it could be read. */
    masterReplication?: Record<string, string>;
    /** Used percent of the data volume, measured on the node only. */
    dataVolumeUsedPercent?: number;
    /** Milliseconds since the epoch when the node was read. */
    at: number;
}

/** Backup facts from the manifests (backup layout: backup.json completedAt, verified.json verifiedAt). */
export interface BackupFacts {
    lastCompletedAt?: string | Date;
    lastVerifiedAt?: string | Date;
}

export interface Dimensions {
    ClusterName: string;
    Shard?: string;
    NodeName?: string;
}

export interface MetricSample {
    name: string;
    unit: MetricUnit;
    dimensions: Dimensions;
    /** What CloudWatch gets: the level, the delta over the interval (counters) or percent of one core (cpu). Absent when it needs a previous reading that is missing. */
    value?: number;
    /** Counters and cpu: the running total as the server reports it (Prometheus). */
    total?: number;
}

export interface NodeMetrics {
    name: string;
    shard: number;
    key: string;
    reachable: boolean;
    error?: string;
    role: "master" | "replica" | "unknown";
    samples: MetricSample[];
}

export interface MetricsSnapshot {
    version: 1;
    clusterName: string;
    /** ISO time of the read. */
    at: string;
    nodes: NodeMetrics[];
    /** Cluster facts (backup ages), ClusterName dimension only. */
    cluster: MetricSample[];
}

/** What the next run needs for deltas: per node, the previous totals. */
export interface CollectorState {
    version: 1;
    nodes: Record<string, { at: number; runId: string; totals: Record<string, number> }>;
}

const num = (v: string | undefined): number | undefined => {
    if (v === undefined || v === "") return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
};

/** `db0:keys=12,expires=0,avg_ttl=0` -> 12, summed over every db line. */
export function keysInKeyspace(info: Record<string, string>): number {
    let total = 0;
    for (const [k, v] of Object.entries(info)) {
        if (!/^db\d+$/.test(k)) continue;
        const m = /(?:^|,)keys=(\d+)/.exec(v);
        if (m) total += Number(m[1]);
    }
    return total;
}

/** `errorstat_OOM:count=3` -> 3 (0 when the section is there without an OOM line). */
export function oomErrors(info: Record<string, string>): number {
    const v = info.errorstat_OOM;
    const m = v ? /count=(\d+)/.exec(v) : null;
    return m ? Number(m[1]) : 0;
}

/** The master's `slaveN:ip=…,port=…,state=…,offset=…,lag=…` entry for a replica (by ip:port, else by port when only one matches). */
export function replicaEntry(masterRepl: Record<string, string>, replica: { host: string; port: number }): { offset: number; lag: number; state: string } | undefined {
    const entries = Object.entries(masterRepl)
        .filter(([k]) => /^slave\d+$/.test(k))
        .map(([, v]) => Object.fromEntries(v.split(",").map((kv) => kv.split("=") as [string, string])));
    const byAddr = entries.filter((e) => e.ip === replica.host && Number(e.port) === replica.port);
    const byPort = entries.filter((e) => Number(e.port) === replica.port);
    const e = byAddr[0] ?? (byPort.length === 1 ? byPort[0] : undefined);
    if (!e) return undefined;
    return { offset: Number(e.offset), lag: Number(e.lag), state: e.state };
}

/** Raw totals of the counter-like metrics, from INFO. */
function totalsOf(n: MetricsNodeInput): Record<string, number> {
    const i = n.info;
    const t: Record<string, number | undefined> = {
        EngineCPUUtilization: (num(i.used_cpu_sys) ?? NaN) + (num(i.used_cpu_user) ?? NaN),
        NewConnections: num(i.total_connections_received),
        RejectedConnections: num(i.rejected_connections),
        CommandsProcessed: num(i.total_commands_processed),
        Evictions: num(i.evicted_keys),
        Reclaimed: num(i.expired_keys),
        CacheHits: num(i.keyspace_hits),
        CacheMisses: num(i.keyspace_misses),
        ErrorOOM: n.hasErrorstats ? oomErrors(i) : undefined,
    };
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(t)) if (v !== undefined && Number.isFinite(v)) out[k] = v;
    return out;
}

/** Gauge values, from INFO, CLUSTER INFO, the master's offsets and the volume. */
function gaugesOf(n: MetricsNodeInput, role: "master" | "replica" | "unknown"): Record<string, number> {
    const i = n.info;
    const c = n.clusterInfo;
    const g: Record<string, number | undefined> = {};
    const used = num(i.used_memory);
    const max = num(i.maxmemory);
    if (used !== undefined && max) g.DatabaseMemoryUsagePercentage = round((used / max) * 100, 2);
    g.CurrConnections = num(i.connected_clients);
    g.CurrItems = keysInKeyspace(i);
    g.IsMaster = role === "master" ? 1 : 0;
    if (role === "replica") {
        const up = i.master_link_status === "up";
        g.MasterLinkHealthStatus = up ? 1 : 0;
        const own = num(i.slave_repl_offset);
        const mr = n.masterReplication;
        const entry = mr ? replicaEntry(mr, { host: hostOf(n.key), port: portOf(n.key) }) : undefined;
        if (!up) {
            // Down: how long, as the replica counts it (-1 until it ever connected).
            const since = num(i.master_link_down_since_seconds);
            g.ReplicationLag = since !== undefined && since >= 0 ? since : undefined;
        } else if (entry) {
            g.ReplicationLag = entry.lag;
        }
        const masterOffset = num(mr?.master_repl_offset);
        if (own !== undefined && masterOffset !== undefined && own >= 0) g.ReplicationBytes = Math.max(0, masterOffset - own);
    }
    if (role === "master") g.ConnectedReplicas = num(i.connected_slaves);
    g.ClusterStateOk = c.cluster_state === "ok" ? 1 : 0;
    g.ClusterSlotsFail = num(c.cluster_slots_fail);
    g.ClusterSlotsPfail = num(c.cluster_slots_pfail);
    g.ClusterKnownNodes = num(c.cluster_known_nodes);
    if (i.aof_last_write_status !== undefined) g.AofLastWriteOk = i.aof_last_write_status === "ok" ? 1 : 0;
    if (i.rdb_last_bgsave_status !== undefined) g.RdbLastBgsaveOk = i.rdb_last_bgsave_status === "ok" ? 1 : 0;
    if (n.dataVolumeUsedPercent !== undefined) g.DataVolumeUsedPercent = round(n.dataVolumeUsedPercent, 2);
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(g)) if (v !== undefined && Number.isFinite(v)) out[k] = v;
    return out;
}

function hostOf(key: string): string {
    const i = key.lastIndexOf(":");
    return key.slice(0, i).replace(/^\[|\]$/g, "");
}
function portOf(key: string): number {
    return Number(key.slice(key.lastIndexOf(":") + 1));
}
function round(v: number, digits: number): number {
    const f = 10 ** digits;
    return Math.round(v * f) / f;
}

function ageSeconds(when: string | Date | undefined, now: number): number | undefined {
    if (when === undefined) return undefined;
    const t = when instanceof Date ? when.getTime() : Date.parse(when);
    if (!Number.isFinite(t)) return undefined;
    return Math.max(0, Math.round((now - t) / 1000));
}

export interface ToSamplesInput {
    clusterName: string;
    nodes: MetricsNodeInput[];
    /** The previous run's state; without it counters have totals but no values. */
    previous?: CollectorState;
    backupFacts?: BackupFacts;
    /** ms since the epoch. */
    now: number;
}

/**
 * Turns what was read into samples, and the state the next run needs. A node that
 * did not answer gets one sample, ClusterStateOk 0, so the alarm fires at once and
 * not only after CloudWatch notices missing data.
 */
export function toSamples(input: ToSamplesInput): { snapshot: MetricsSnapshot; state: CollectorState } {
    const state: CollectorState = { version: 1, nodes: {} };
    const nodes: NodeMetrics[] = [];
    for (const n of input.nodes) {
        const dims: Dimensions = { ClusterName: input.clusterName, Shard: String(n.shard), NodeName: n.name };
        if (!n.reachable) {
            nodes.push({ name: n.name, shard: n.shard, key: n.key, reachable: false, error: n.error, role: "unknown", samples: [{ name: "ClusterStateOk", unit: "None", dimensions: dims, value: 0 }] });
            continue;
        }
        const roleInfo = n.info.role;
        const role = roleInfo === "master" ? "master" : roleInfo === "slave" ? "replica" : "unknown";
        const totals = totalsOf(n);
        const gauges = gaugesOf(n, role);
        const runId = n.info.run_id ?? "";
        state.nodes[n.name] = { at: n.at, runId, totals };
        const prev = input.previous?.nodes[n.name];
        // A restart (new run_id) or a reset counter leaves no valid delta for this interval.
        const prevUsable = prev && prev.runId === runId && n.at > prev.at ? prev : undefined;
        const samples: MetricSample[] = [];
        for (const def of METRICS) {
            if (def.clusterOnly) continue;
            if (def.role && def.role !== role) continue;
            if (def.kind === "gauge") {
                if (gauges[def.name] !== undefined) samples.push({ name: def.name, unit: def.unit, dimensions: dims, value: gauges[def.name] });
                continue;
            }
            const total = totals[def.name];
            if (total === undefined) continue;
            const s: MetricSample = { name: def.name, unit: def.unit, dimensions: dims, total };
            const before = prevUsable?.totals[def.name];
            if (before !== undefined && total >= before) {
                const delta = total - before;
                s.value = def.kind === "cpu" ? round((delta / ((n.at - prevUsable!.at) / 1000)) * 100, 2) : delta;
            }
            samples.push(s);
        }
        nodes.push({ name: n.name, shard: n.shard, key: n.key, reachable: true, role, samples });
    }
    const cluster: MetricSample[] = [];
    const backupAge = ageSeconds(input.backupFacts?.lastCompletedAt, input.now);
    if (backupAge !== undefined) cluster.push({ name: "LastBackupAgeSeconds", unit: "Seconds", dimensions: { ClusterName: input.clusterName }, value: backupAge });
    const verifyAge = ageSeconds(input.backupFacts?.lastVerifiedAt, input.now);
    if (verifyAge !== undefined) cluster.push({ name: "LastVerifiedRestoreAgeSeconds", unit: "Seconds", dimensions: { ClusterName: input.clusterName }, value: verifyAge });
    return {
        snapshot: { version: 1, clusterName: input.clusterName, at: new Date(input.now).toISOString(), nodes, cluster },
        state,
    };
}

/** Reads a state document back; anything unrecognised counts as no previous state (one interval without deltas). */
export function parseCollectorState(text: string | undefined): CollectorState | undefined {
    if (!text) return undefined;
    try {
        const doc = JSON.parse(text) as CollectorState;
        if (doc && doc.version === 1 && typeof doc.nodes === "object" && doc.nodes !== null) return doc;
    } catch {
        /* a torn write: start over */
    }
    return undefined;
}
