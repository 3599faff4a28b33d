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
 *   BACKUP_BUCKET, AWS_REGION       the cluster's bucket (the hook's env file): backups are read from
 *                                   s3://$BACKUP_BUCKET/backups with the instance role
 *   METRICS_BACKUPS_FROM            another backup root (DIR or s3://bucket/prefix), METRICS_S3_ENDPOINT
 *                                   for an S3-compatible store (tests)
 *
 * The backup facts (LastBackupAgeSeconds, LastVerifiedRestoreAgeSeconds) are read at
 * most every 15 minutes and kept in the state file between runs: a ListObjectsV2 and a
 * few small GETs per quarter hour, not per minute. Every node publishes them: they carry
 * ClusterName only, so the nodes' data points land on one metric, and the alarms take
 * its Minimum, which stays right with one node gone (no node is special).
 */
import { mkdirSync, readFileSync, renameSync, statfsSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { connect } from "node:net";
import { Topology } from "../../components/topology";
import { NodePool } from "../redis/pool";
import { collectMetrics } from "../redis/collector";
import { BackupFacts, CollectorState, parseCollectorState } from "../plan/metrics";
import { BACKUP_PREFIX } from "../../components/naming";
import { openStore } from "../backup/store";
import { readBackupFacts } from "./backupFacts";
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
    /** Backup facts (newest complete backup, newest verified restore). @default read from the backup root of the environment, every 15 min */
    backupFacts?: () => Promise<BackupFacts | undefined>;
    now?: () => number;
}

/** How often the node reads the backup store. */
export const BACKUP_FACTS_EVERY_MS = 15 * 60_000;

/** The state file: the collector's state plus the last backup read. */
interface NodeState extends CollectorState {
    backup?: { readAt: number; facts: BackupFacts };
}

/** The backup root of this node's environment, or undefined (no bucket: nothing to publish). */
export function backupRootFromEnv(e: NodeJS.ProcessEnv = process.env): string | undefined {
    if (e.METRICS_BACKUPS_FROM) return e.METRICS_BACKUPS_FROM;
    if (e.BACKUP_BUCKET) return `s3://${e.BACKUP_BUCKET}/${BACKUP_PREFIX.replace(/\/$/, "")}`;
    return undefined;
}

/**
 * The cached facts when fresh, else a new read (warnings on stderr: the journal). When
 * the store cannot be read, the previous facts stay (the ages are computed against now,
 * so they keep growing and the alarm still fires) and the next run tries again.
 */
async function nodeBackupFacts(clusterName: string, cached: NodeState["backup"], now: number): Promise<NodeState["backup"]> {
    if (cached && now - cached.readAt >= 0 && now - cached.readAt < BACKUP_FACTS_EVERY_MS) return cached;
    const root = backupRootFromEnv();
    if (!root) return undefined;
    let store;
    try {
        store = openStore(root, { s3Endpoint: process.env.METRICS_S3_ENDPOINT || undefined });
    } catch (e) {
        process.stderr.write(`backup facts: ${(e as Error).message}\n`);
        return undefined;
    }
    const { facts, warnings, failed } = await readBackupFacts(store, clusterName);
    for (const w of warnings) {
        process.stderr.write(`${failed && cached ? `${w.replace(/; the backup age metrics are not published$/, "")}; publishing the ages from the read of ${new Date(cached.readAt).toISOString()}` : w}\n`);
    }
    return failed ? cached : { readAt: now, facts };
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
    const previous = parseCollectorState(previousText) as NodeState | undefined;
    const now = (deps.now ?? Date.now)();
    try {
        let backup: NodeState["backup"];
        let facts: BackupFacts | undefined;
        if (deps.backupFacts) facts = await deps.backupFacts().catch(() => undefined);
        else {
            backup = await nodeBackupFacts(clusterName, previous?.backup, now);
            facts = backup?.facts;
        }
        const { snapshot, state } = await collectMetrics(pool, topology, {
            previous,
            followMasters: true,
            dataVolumeUsedPercent: volume !== undefined ? { [nodeName]: volume } : undefined,
            backupFacts: facts,
            now: deps.now,
        });
        mkdirSync(dirname(stateFile), { recursive: true });
        const next: NodeState = backup ? { ...state, backup } : state;
        writeFileSync(`${stateFile}.tmp`, JSON.stringify(next));
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
