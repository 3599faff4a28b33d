/**
 * `status`: one table per shard and the cluster-wide checks; exit 0 only when
 * healthy (1 otherwise), so it can gate CI and monitoring. --json prints one document.
 */
import type { CommandContext, CommonOptions } from "./context";
import { UsageError } from "../errors";
import { openPool, resolveTarget, Target } from "../inventory";
import { fmtBytes } from "../output";
import { MetricsSnapshot } from "../plan/metrics";
import { collectMetrics } from "../redis/collector";
import { describeLease, readLease } from "../redis/lease";
import { automationOutputs, StackOutputsReader } from "../inventory";
import { cachedBackupFacts } from "../metrics/backupFacts";
import { backupFactsReader, backupsSource } from "./metrics";
import { collectStatus, evaluateStatus, NodeStatus, StatusInput, StatusReport } from "../redis/healthReport";

export interface StatusOptions extends CommonOptions {
    /** `--watch [seconds]`: true without a value. */
    watch?: boolean | number;
    /** With --watch: backups for the header's backup ages (as `metrics --backups-from`). */
    backupsFrom?: string;
    s3Endpoint?: string;
    region?: string;
}

function table(rows: string[][]): string[] {
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("  ").trimEnd());
}

function roleOf(n: NodeStatus): string {
    if (!n.reachable) return n.role === "unknown" ? "down" : `${n.role}(down)`;
    if (!n.inCluster) return "alone";
    return n.role;
}

function linkOf(n: NodeStatus): string {
    if (n.role === "replica") return n.masterLinkStatus ?? "-";
    if (n.role === "master" && n.connectedReplicas !== undefined) return `${n.connectedReplicas} repl`;
    return "-";
}

/** The human rendering of a report. */
export function renderStatus(r: StatusReport): string {
    const out: string[] = [];
    for (const g of r.shards) {
        out.push(`${g.label}${g.masterKey ? `  slots ${g.slots}${g.slotRanges ? ` (${g.slotRanges})` : ""}` : ""}`);
        const rows = [["  ROLE", "NAME", "ZONE", "ADDRESS", "SLOTS", "KEYS", "MEMORY", "LINK", "OFFSET", "LAG", "FAIL-REPORTS"]];
        for (const n of g.nodes) {
            rows.push([
                `  ${roleOf(n)}${n.flaggedBy.length ? "!" : ""}`,
                n.name ?? "(not in topology)",
                n.zone ?? "-",
                n.key,
                n.slots ? String(n.slots) : "-",
                n.keys !== undefined ? String(n.keys) : "-",
                n.usedMemoryBytes !== undefined ? fmtBytes(n.usedMemoryBytes) : "-",
                linkOf(n),
                n.replOffset !== undefined ? String(n.replOffset) : "-",
                n.lagBytes !== undefined ? `${n.lagBytes} B` : "-",
                n.failureReports !== undefined ? String(n.failureReports) : "-",
            ]);
        }
        out.push(...table(rows), "");
    }
    const c = r.cluster;
    out.push(`cluster ${r.clusterName}${c.engines.length ? ` (${c.engines.join(", ")})` : ""}: ${c.reachable}/${c.nodes} nodes reachable, cluster_state ok on ${c.stateOk}, ` +
        `${c.slotsAssigned}/16384 slots assigned, slot maps ${c.slotMapsAgree ? "agree" : "DISAGREE"}, ` +
        `${c.openSlots.length} open slot(s), ${c.failing.length} node(s) flagged failing`);
    if (r.problems.length) out.push("problems:", ...r.problems.map((p) => ` - ${p}`));
    if (r.warnings.length) out.push("warnings:", ...r.warnings.map((w) => ` - ${w}`));
    out.push(r.healthy ? "HEALTHY" : `UNHEALTHY: ${r.problems.length} problem(s)`);
    return out.join("\n");
}

export async function run(opts: StatusOptions, ctx: CommandContext): Promise<number> {
    const target = await resolveTarget(opts);
    if (opts.watch !== undefined && opts.watch !== false) return watch(target, opts, ctx);
    const pool = openPool(target, { connectTimeoutMs: opts.connectTimeout });
    try {
        const report = evaluateStatus(await collectStatus(pool, target.topology));
        // A changing command at work (docs/lease.md); unreadable when the cluster is down.
        const lease = await readLease(pool, target.topology.nodes.map((n) => `${n.host}:${n.port}`)).catch(() => undefined);
        const leaseLine = lease && (lease.expires > lease.now
            ? `lease: ${describeLease(lease)} (a changing command is running; expires in ${Math.round((lease.expires - lease.now) / 1000)} s unless renewed)`
            : `lease: ${describeLease(lease)} expired ${Math.round((lease.now - lease.expires) / 1000)} s ago (that run probably died; the next changing command needs --take-over-lease)`);
        ctx.out.result({ ...report, lease: lease ? { command: lease.command, owner: lease.owner, started: lease.started, expires: lease.expires, expired: lease.expires <= lease.now } : null },
            renderStatus(report) + (leaseLine ? `\n${leaseLine}` : ""));
        return report.healthy ? 0 : 1;
    } finally {
        await pool.close();
    }
}

/** One row per node of the live view. */
export interface WatchRow {
    shard: string;
    role: string;
    name: string;
    key: string;
    opsPerSec?: number;
    memoryPercent?: number;
    lagSeconds?: number;
    lagBytes?: number;
    link: string;
    failReports: string;
}

/** The rows of one refresh, from the status reader's samples and the collector's samples. Pure. */
export function watchRows(report: StatusReport, status: StatusInput, snapshot: MetricsSnapshot): WatchRow[] {
    const sampleOf = new Map(status.samples.map((s) => [s.key, s]));
    const metricOf = new Map(snapshot.nodes.map((n) => [n.key, new Map(n.samples.map((x) => [x.name, x.value]))]));
    const rows: WatchRow[] = [];
    for (const g of report.shards) {
        for (const n of g.nodes) {
            const m = metricOf.get(n.key);
            const info = sampleOf.get(n.key)?.info;
            const ops = info?.instantaneous_ops_per_sec;
            rows.push({
                shard: g.shard !== undefined ? String(g.shard) : g.label,
                role: `${roleOf(n)}${n.flaggedBy.length ? "!" : ""}`,
                name: n.name ?? "(not in topology)",
                key: n.key,
                opsPerSec: n.reachable && ops !== undefined ? Number(ops) : undefined,
                memoryPercent: m?.get("DatabaseMemoryUsagePercentage"),
                lagSeconds: m?.get("ReplicationLag"),
                lagBytes: m?.get("ReplicationBytes") ?? n.lagBytes,
                link: linkOf(n),
                failReports: `${n.failureReports ?? 0}${n.flaggedBy.length ? ` (${n.flaggedBy.length} flag it)` : ""}`,
            });
        }
    }
    return rows;
}

/** The text of one refresh. */
/** "3d 4h", "23h 55m", "12m", "40s". */
export function fmtAge(seconds: number): string {
    const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600), m = Math.floor((seconds % 3600) / 60);
    return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m` : `${seconds}s`;
}

/** The backup line of a frame, from the collector's cluster samples; undefined without backup facts. */
export function backupLine(snapshot: MetricsSnapshot): string | undefined {
    const age = (name: string) => snapshot.cluster.find((s) => s.name === name)?.value;
    const b = age("LastBackupAgeSeconds"), v = age("LastVerifiedRestoreAgeSeconds");
    if (b === undefined && v === undefined) return undefined;
    return `backups: last complete ${b !== undefined ? `${fmtAge(b)} ago` : "none"}, last verified restore ${v !== undefined ? `${fmtAge(v)} ago` : "none"}`;
}

export function renderWatch(report: StatusReport, rows: WatchRow[], at: Date, everySec: number, backups?: string): string {
    const c = report.cluster;
    const head = `${report.clusterName}  ${at.toISOString().replace("T", " ").slice(0, 19)} UTC  every ${everySec}s  ` +
        `${c.reachable}/${c.nodes} reachable, state ok on ${c.stateOk}, ${c.slotsAssigned}/16384 slots, ` +
        `${report.healthy ? "HEALTHY" : `UNHEALTHY (${report.problems.length} problem(s))`}`;
    const table_ = [["SHARD", "ROLE", "NAME", "ADDRESS", "OPS/S", "MEM%", "LAG", "LINK", "FAIL-REPORTS"]];
    for (const r of rows) {
        const lag = r.lagSeconds !== undefined || r.lagBytes !== undefined
            ? `${r.lagSeconds !== undefined ? `${r.lagSeconds}s` : "-"}/${r.lagBytes !== undefined ? fmtBytes(r.lagBytes) : "-"}`
            : "-";
        table_.push([r.shard, r.role, r.name, r.key, r.opsPerSec !== undefined ? String(r.opsPerSec) : "-",
            r.memoryPercent !== undefined ? r.memoryPercent.toFixed(1) : "-", lag, r.link, r.failReports]);
    }
    const lines = [head, ...(backups ? [backups] : []), "", ...table(table_)];
    if (report.problems.length) lines.push("", ...report.problems.slice(0, 8).map((p) => ` - ${p}`), ...(report.problems.length > 8 ? [` - … ${report.problems.length - 8} more`] : []));
    return lines.join("\n");
}

/** `status --watch`: the `redis-cli --stat` habit for a whole cluster. Stops cleanly on Ctrl-C (exit 0). */
async function watch(target: Target, opts: StatusOptions, ctx: CommandContext, read: StackOutputsReader = automationOutputs()): Promise<number> {
    const everySec = opts.watch === true ? 2 : Number(opts.watch);
    if (!Number.isInteger(everySec) || everySec < 1) throw new UsageError(`--watch takes a whole number of seconds, at least 1 (got "${opts.watch}")`);
    // Backups are read once per 15 minutes, not per frame (a ListObjectsV2 every 2 s would be silly).
    const reader = backupFactsReader(await backupsSource(opts, ctx, read), target.topology.clusterName, opts);
    const facts = reader ? cachedBackupFacts(reader, 15 * 60_000) : undefined;
    const pool = openPool(target, { connectTimeoutMs: opts.connectTimeout, commandTimeoutMs: Math.max(1000, everySec * 1000) });
    const tty = !ctx.out.json && process.stdout.isTTY;
    try {
        while (!ctx.signal.aborted) {
            let backupFacts;
            if (facts) {
                const r = await facts();
                for (const w of r.warnings) ctx.out.warn(w);
                backupFacts = r.facts;
            }
            const { snapshot, status } = await collectMetrics(pool, target.topology, { backupFacts });
            const report = evaluateStatus(status);
            const rows = watchRows(report, status, snapshot);
            if (ctx.out.json) {
                ctx.out.event("status", { healthy: report.healthy, problems: report.problems, nodes: rows, cluster: snapshot.cluster });
            } else {
                // Home + clear on a terminal (as watch(1) does); a pipe gets the frames one after another.
                ctx.out.result(undefined, (tty ? "\x1b[H\x1b[2J" : "") + renderWatch(report, rows, new Date(snapshot.at), everySec, backupLine(snapshot)) + (tty ? "" : "\n"));
            }
            await new Promise<void>((resolve) => {
                const t = setTimeout(resolve, everySec * 1000);
                ctx.signal.addEventListener("abort", () => {
                    clearTimeout(t);
                    resolve();
                }, { once: true });
            });
        }
        return 0;
    } finally {
        await pool.close();
    }
}
