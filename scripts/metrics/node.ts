/**
 * The node's metrics publisher: the cluster tool's collector run against this one
 * node, once per systemd timer tick (redis-cluster-metrics.timer, every 60 s), its
 * samples sent as CloudWatch embedded-metric-format lines to the CloudWatch agent's
 * EMF listener, which writes them to the node log group where CloudWatch extracts
 * the metrics. The stack bundles this file with esbuild (components/metricsPublisher.ts)
 * and publishes it to the backup bucket; the metrics hook installs it. There is no
 * second implementation of the mapping: this is scripts/plan/metrics.ts.
 *
 * State between runs (previous counter totals and CPU seconds, for the deltas)
 * lives in METRICS_STATE_FILE, written atomically (temp file + rename) after each
 * run; systemd's StateDirectory= keeps it across reboots. A missing or torn file
 * costs one interval without counter values, nothing else.
 *
 * Environment (set by the unit the hook writes):
 *   REDIS_CLUSTER_NAME, REDIS_NODE_NAME, REDIS_SHARD, REDIS_HOST, REDIS_PORT   this node
 *   REDISCLI_AUTH (admin password), REDIS_USER (default admin)
 *   REDIS_TLS=1 and REDIS_TLS_CA=<pem file>                                     when TLS is on
 *   REDIS_DATA_DIR                  the data volume's mount (DataVolumeUsedPercent)
 *   METRICS_NAMESPACE, METRICS_LOG_GROUP, METRICS_STATE_FILE
 *   METRICS_AGENT                   tcp:HOST:PORT (the agent, default tcp:127.0.0.1:25888) or "-" for stdout
 */
import { mkdirSync, readFileSync, renameSync, statfsSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { connect } from "node:net";
import { Topology } from "../../components/topology";
import { NodePool } from "../redis/pool";
import { collectMetrics } from "../redis/collector";
import { BackupFacts, parseCollectorState } from "../plan/metrics";
import { renderEmf } from "../plan/metricsFormat";

function env(name: string, fallback?: string): string {
    const v = process.env[name] ?? fallback;
    if (v === undefined || v === "") throw new Error(`metrics publisher: environment variable ${name} is not set (the redis-cluster-metrics unit sets it; see components/bootstrap/metricsHook.ts)`);
    return v;
}

/** Used space as df reports it: used / (used + available to unprivileged users). */
export function usedPercent(path: string): number | undefined {
    try {
        const s = statfsSync(path);
        const used = s.blocks - s.bfree;
        const total = used + s.bavail;
        return total > 0 ? (used / total) * 100 : undefined;
    } catch {
        return undefined;
    }
}

/** Sends the lines to the agent's EMF TCP listener (newline-delimited JSON). */
function sendTcp(host: string, port: number, payload: string, timeoutMs = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
        const sock = connect({ host, port });
        const timer = setTimeout(() => sock.destroy(new Error(`no answer from the CloudWatch agent at ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
        sock.once("error", (e) => {
            clearTimeout(timer);
            reject(new Error(`cannot send to the CloudWatch agent at ${host}:${port}: ${e.message} (is amazon-cloudwatch-agent running with logs.metrics_collected.emf?)`));
        });
        sock.once("connect", () => sock.end(payload));
        sock.once("close", (hadError) => {
            clearTimeout(timer);
            if (!hadError) resolve();
        });
    });
}

export interface PublishDeps {
    /** Backup facts (backup layout: newest complete backup, newest verified restore); none until the backup store is wired in. */
    backupFacts?: () => Promise<BackupFacts | undefined>;
    now?: () => number;
}

export async function publishOnce(deps: PublishDeps = {}): Promise<{ lines: number; nodeReachable: boolean }> {
    const clusterName = env("REDIS_CLUSTER_NAME");
    const nodeName = env("REDIS_NODE_NAME");
    const shard = Number(env("REDIS_SHARD"));
    const host = env("REDIS_HOST", "127.0.0.1");
    const port = Number(env("REDIS_PORT", "6379"));
    const tls = process.env.REDIS_TLS === "1";
    const stateFile = env("METRICS_STATE_FILE", "/var/lib/redis-cluster-metrics/state.json");
    const topology: Topology = { clusterName, port, tls, nodes: [{ name: nodeName, shard, az: "", host, port }] };
    const pool = new NodePool({
        credentials: { user: process.env.REDIS_USER ?? "admin", password: process.env.REDISCLI_AUTH },
        tls: tls ? { caFile: env("REDIS_TLS_CA") } : undefined,
        connectTimeoutMs: 2000,
        commandTimeoutMs: 5000,
    });
    let previousText: string | undefined;
    try {
        previousText = readFileSync(stateFile, "utf8");
    } catch {
        /* first run */
    }
    const dataDir = process.env.REDIS_DATA_DIR;
    const volume = dataDir ? usedPercent(dataDir) : undefined;
    try {
        const facts = deps.backupFacts ? await deps.backupFacts().catch(() => undefined) : undefined;
        const { snapshot, state } = await collectMetrics(pool, topology, {
            previous: parseCollectorState(previousText),
            followMasters: true,
            dataVolumeUsedPercent: volume !== undefined ? { [nodeName]: volume } : undefined,
            backupFacts: facts,
            now: deps.now,
        });
        mkdirSync(dirname(stateFile), { recursive: true });
        writeFileSync(`${stateFile}.tmp`, JSON.stringify(state));
        renameSync(`${stateFile}.tmp`, stateFile);
        // The volume is measured even when Redis does not answer: a full disk is a likely reason.
        if (!snapshot.nodes[0].reachable && volume !== undefined) {
            snapshot.nodes[0].samples.push({ name: "DataVolumeUsedPercent", unit: "Percent", dimensions: { ClusterName: clusterName, Shard: String(shard), NodeName: nodeName }, value: Math.round(volume * 100) / 100 });
        }
        const docs = renderEmf(snapshot, { namespace: env("METRICS_NAMESPACE", "RedisCluster"), logGroupName: process.env.METRICS_LOG_GROUP, logStreamName: nodeName });
        const payload = docs.map((d) => JSON.stringify(d) + "\n").join("");
        const agent = env("METRICS_AGENT", "tcp:127.0.0.1:25888");
        if (agent === "-") process.stdout.write(payload);
        else {
            const m = /^tcp:(.+):(\d+)$/.exec(agent);
            if (!m) throw new Error(`METRICS_AGENT must be tcp:HOST:PORT or - (got "${agent}")`);
            await sendTcp(m[1], Number(m[2]), payload);
        }
        if (!snapshot.nodes[0].reachable) process.stderr.write(`${nodeName}: Redis did not answer (${snapshot.nodes[0].error}); published ClusterStateOk 0\n`);
        return { lines: docs.length, nodeReachable: snapshot.nodes[0].reachable };
    } finally {
        await pool.close();
    }
}

if (require.main === module) {
    publishOnce().then(
        (r) => process.exit(r.nodeReachable ? 0 : 1),
        (e: Error) => {
            process.stderr.write(`${e.message}\n`);
            process.exit(1);
        },
    );
}
