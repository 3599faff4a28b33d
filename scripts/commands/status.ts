/**
 * `status`: one table per shard and the cluster-wide checks; exit 0 only when
 * healthy (1 otherwise), so it can gate CI and monitoring. --json prints one document.
 */
import { CommandContext, CommonOptions } from "../cli";
import { openPool, resolveTarget } from "../inventory";
import { fmtBytes } from "../output";
import { describeLease, readLease } from "../redis/lease";
import { collectStatus, evaluateStatus, NodeStatus, StatusReport } from "../redis/healthReport";

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
    out.push(`cluster ${r.clusterName}: ${c.reachable}/${c.nodes} nodes reachable, cluster_state ok on ${c.stateOk}, ` +
        `${c.slotsAssigned}/16384 slots assigned, slot maps ${c.slotMapsAgree ? "agree" : "DISAGREE"}, ` +
        `${c.openSlots.length} open slot(s), ${c.failing.length} node(s) flagged failing`);
    if (r.problems.length) out.push("problems:", ...r.problems.map((p) => ` - ${p}`));
    if (r.warnings.length) out.push("warnings:", ...r.warnings.map((w) => ` - ${w}`));
    out.push(r.healthy ? "HEALTHY" : `UNHEALTHY: ${r.problems.length} problem(s)`);
    return out.join("\n");
}

export async function run(opts: CommonOptions, ctx: CommandContext): Promise<number> {
    const target = await resolveTarget(opts);
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
