/**
 * The outlets' formats for one snapshot: Prometheus text exposition and
 * CloudWatch embedded metric format (EMF) documents. Pure.
 */
import { METRIC_BY_NAME, METRICS, MetricSample, MetricsSnapshot } from "./metrics";

/** Label value escaping of the text format: backslash, double quote and line feed. */
function escapeLabel(v: string): string {
    return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text escaping: backslash and line feed. */
function escapeHelp(v: string): string {
    return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function fmtValue(v: number): string {
    if (Number.isNaN(v)) return "NaN";
    if (v === Infinity) return "+Inf";
    if (v === -Infinity) return "-Inf";
    return String(v);
}

/**
 * Prometheus text format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/):
 * one HELP/TYPE block per metric family with all its samples together (a family
 * split in two is invalid), labels cluster_name/shard/node_name. Counters carry the
 * server's totals; gauges the value. Cluster facts carry cluster_name only.
 */
export function renderPrometheus(snapshot: MetricsSnapshot): string {
    const byName = new Map<string, MetricSample[]>();
    for (const n of snapshot.nodes) for (const s of n.samples) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
    for (const s of snapshot.cluster) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
    const out: string[] = [];
    for (const def of METRICS) {
        const samples = byName.get(def.name);
        if (!samples?.length) continue;
        const counter = def.kind !== "gauge";
        const lines: string[] = [];
        for (const s of samples) {
            const v = counter ? s.total : s.value;
            if (v === undefined) continue;
            const labels = [`cluster_name="${escapeLabel(s.dimensions.ClusterName)}"`];
            if (s.dimensions.Shard !== undefined) labels.push(`shard="${escapeLabel(s.dimensions.Shard)}"`);
            if (s.dimensions.NodeName !== undefined) labels.push(`node_name="${escapeLabel(s.dimensions.NodeName)}"`);
            lines.push(`${def.prom}{${labels.join(",")}} ${fmtValue(v)}`);
        }
        if (!lines.length) continue;
        out.push(`# HELP ${def.prom} ${escapeHelp(def.help)}`, `# TYPE ${def.prom} ${counter ? "counter" : "gauge"}`, ...lines);
    }
    return out.join("\n") + "\n";
}

export interface EmfOptions {
    namespace: string;
    /** Agent-only metadata: the log group the CloudWatch agent writes the document to. */
    logGroupName?: string;
    /** Agent-only metadata: the log stream (the node name). */
    logStreamName?: string;
}

/** One EMF document (a JSON object) per node that has samples with values, plus one for the cluster facts. */
export interface EmfDocument {
    _aws: {
        Timestamp: number;
        CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[];
        LogGroupName?: string;
        LogStreamName?: string;
    };
    [member: string]: unknown;
}

/**
 * CloudWatch embedded metric format
 * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
 * per node one document whose root carries the dimension values (ClusterName,
 * Shard, NodeName) and one member per metric; one directive per dimension-set
 * combination, so aggregates (ClusterSlotsFail per cluster, ConnectedReplicas per
 * shard) are the same value published under a second set. Samples without a value
 * (a counter's first run) are left out. At most 100 metrics per directive (the
 * specification's limit; we have fewer than 30).
 */
export function renderEmf(snapshot: MetricsSnapshot, opts: EmfOptions): EmfDocument[] {
    const ts = Date.parse(snapshot.at);
    const meta = (stream?: string) => ({
        ...(opts.logGroupName ? { LogGroupName: opts.logGroupName } : {}),
        ...(stream ?? opts.logStreamName ? { LogStreamName: stream ?? opts.logStreamName } : {}),
    });
    const docs: EmfDocument[] = [];
    for (const n of snapshot.nodes) {
        const withValue = n.samples.filter((s) => s.value !== undefined);
        if (!withValue.length) continue;
        const groups = new Map<string, { dims: string[][]; metrics: { Name: string; Unit: string }[] }>();
        const root: Record<string, unknown> = { ClusterName: snapshot.clusterName, Shard: String(n.shard), NodeName: n.name };
        for (const s of withValue) {
            const def = METRIC_BY_NAME.get(s.name)!;
            const dims: string[][] = [["ClusterName", "Shard", "NodeName"]];
            if (def.aggregates?.includes("shard")) dims.push(["ClusterName", "Shard"]);
            if (def.aggregates?.includes("cluster")) dims.push(["ClusterName"]);
            const k = JSON.stringify(dims);
            const g = groups.get(k) ?? { dims, metrics: [] };
            g.metrics.push({ Name: s.name, Unit: s.unit });
            groups.set(k, g);
            root[s.name] = s.value;
        }
        docs.push({
            _aws: {
                Timestamp: ts,
                CloudWatchMetrics: [...groups.values()].map((g) => ({ Namespace: opts.namespace, Dimensions: g.dims, Metrics: g.metrics })),
                ...meta(opts.logStreamName ?? n.name),
            },
            ...root,
        });
    }
    const facts = snapshot.cluster.filter((s) => s.value !== undefined);
    if (facts.length) {
        const root: Record<string, unknown> = { ClusterName: snapshot.clusterName };
        for (const s of facts) root[s.name] = s.value;
        docs.push({
            _aws: {
                Timestamp: ts,
                CloudWatchMetrics: [{ Namespace: opts.namespace, Dimensions: [["ClusterName"]], Metrics: facts.map((s) => ({ Name: s.name, Unit: s.unit })) }],
                ...meta(),
            },
            ...root,
        });
    }
    return docs;
}
