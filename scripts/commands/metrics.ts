/**
 * `metrics`: the collector's samples, read from every node directly (never
 * through the load balancer, which would answer from a different node on every
 * scrape).
 *   --format json|prometheus|emf   one snapshot on stdout, then exit
 *   --serve [host:]port            Prometheus endpoint: every scrape of /metrics reads every node
 */
import { createServer, IncomingMessage, ServerResponse } from "node:http";
import type { CommandContext, CommonOptions } from "./context";
import { UsageError } from "../errors";
import { automationOutputs, openPool, resolveTarget, StackOutputsReader } from "../inventory";
import { BACKUP_PREFIX } from "../../components/naming";
import { openStore } from "../backup/store";
import { BackupFactsRead, cachedBackupFacts, readBackupFacts } from "../metrics/backupFacts";
import { METRICS_NAMESPACE } from "../../components/naming";
import { renderEmf, renderPrometheus } from "../plan/metricsFormat";
import { collectMetrics } from "../redis/collector";

export interface MetricsOptions extends CommonOptions {
    format?: string;
    serve?: string;
    namespace?: string;
    /** Per-command timeout: a node that accepts but does not answer must not hold a scrape for 30 s. */
    commandTimeout?: number;
    backupsFrom?: string;
    s3Endpoint?: string;
    region?: string;
    /** Minutes between two reads of the backup store while serving. @default 15 */
    backupsEvery?: number;
}

export const FORMATS = ["json", "prometheus", "emf"] as const;

/** "9121", ":9121", "127.0.0.1:9121", "[::1]:9121" -> host and port (default host 127.0.0.1: nothing is exposed unless asked). */
export function parseListen(spec: string): { host: string; port: number } {
    const t = spec.trim();
    const i = t.lastIndexOf(":");
    const portText = i < 0 ? t : t.slice(i + 1);
    let host = i < 0 ? "" : t.slice(0, i);
    if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port > 65535 || /[\s/]/.test(host)) {
        throw new UsageError(`--serve must be [host:]port, e.g. 9121, :9121 or 0.0.0.0:9121 (got "${spec}")`);
    }
    return { host: host || "127.0.0.1", port };
}

/**
 * Where the backup facts come from: --backups-from, else the stack's backup bucket
 * (its `backupBucketName` output), else nowhere (the two backup metrics are absent).
 */
export async function backupsSource(opts: MetricsOptions, ctx: CommandContext, read: StackOutputsReader): Promise<string | undefined> {
    if (opts.backupsFrom) return opts.backupsFrom;
    if (!opts.stack) return undefined;
    try {
        const bucket = (await read(opts.stack)).backupBucketName;
        if (typeof bucket === "string" && bucket) return `s3://${bucket}/${BACKUP_PREFIX.replace(/\/$/, "")}`;
        ctx.out.warn(`stack "${opts.stack}" has no backupBucketName output: the backup age metrics are not published (pass --backups-from s3://bucket/prefix)`);
    } catch (e) {
        ctx.out.warn(`cannot read the outputs of stack "${opts.stack}" for its backup bucket: ${(e as Error).message.split("\n")[0]}; the backup age metrics are not published`);
    }
    return undefined;
}

/** The facts reader for a command, or undefined without a source; a bad location is a usage error. */
export function backupFactsReader(from: string | undefined, clusterName: string, opts: MetricsOptions): (() => Promise<BackupFactsRead>) | undefined {
    if (from === undefined) return undefined;
    let store;
    try {
        store = openStore(from, { s3Endpoint: opts.s3Endpoint, region: opts.region });
    } catch (e) {
        throw new UsageError(`--backups-from: ${(e as Error).message}`);
    }
    return () => readBackupFacts(store, clusterName);
}

export async function run(opts: MetricsOptions, ctx: CommandContext, deps: { readStackOutputs?: StackOutputsReader } = {}): Promise<number> {
    const format = opts.format ?? (opts.json && opts.serve === undefined ? "json" : undefined);
    if (format !== undefined && !(FORMATS as readonly string[]).includes(format)) {
        throw new UsageError(`--format must be one of ${FORMATS.join(", ")} (got "${format}")`);
    }
    if (opts.serve !== undefined && format !== undefined && format !== "prometheus") {
        throw new UsageError("--serve speaks the Prometheus text format only; drop --format (or use --format prometheus)");
    }
    const listen = opts.serve !== undefined ? parseListen(opts.serve) : undefined;
    const everyMin = opts.backupsEvery ?? 15;
    if (!(everyMin > 0)) throw new UsageError(`--backups-every takes minutes, more than 0 (got "${opts.backupsEvery}")`);
    const target = await resolveTarget(opts, { readStackOutputs: deps.readStackOutputs });
    const read = backupFactsReader(await backupsSource(opts, ctx, deps.readStackOutputs ?? automationOutputs()), target.topology.clusterName, opts);
    const facts = read ? cachedBackupFacts(read, everyMin * 60_000) : undefined;
    const backupFacts = async () => {
        if (!facts) return undefined;
        const r = await facts();
        for (const w of r.warnings) ctx.out.warn(w);
        return r.facts;
    };
    const pool = openPool(target, { connectTimeoutMs: opts.connectTimeout, commandTimeoutMs: opts.commandTimeout ?? 5000 });
    try {
        if (!listen) {
            const { snapshot } = await collectMetrics(pool, target.topology, { backupFacts: await backupFacts() });
            const f = format ?? "json";
            const text = f === "json" ? JSON.stringify(snapshot, null, 2)
                : f === "prometheus" ? renderPrometheus(snapshot)
                    : renderEmf(snapshot, { namespace: opts.namespace ?? METRICS_NAMESPACE }).map((d) => JSON.stringify(d)).join("\n");
            ctx.out.result(snapshot, text);
            const down = snapshot.nodes.filter((n) => !n.reachable);
            for (const n of down) ctx.out.warn(`${n.name} (${n.key}) did not answer: ${n.error ?? "no answer"}`);
            return down.length ? 1 : 0;
        }
        await serve(listen, ctx, async () => renderPrometheus((await collectMetrics(pool, target.topology, { backupFacts: await backupFacts() })).snapshot));
        return 0;
    } finally {
        await pool.close();
    }
}

/** Serves GET /metrics until Ctrl-C; each scrape reads the nodes afresh. */
async function serve(listen: { host: string; port: number }, ctx: CommandContext, scrape: () => Promise<string>): Promise<void> {
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
        const path = (req.url ?? "/").split("?")[0];
        if (req.method !== "GET" && req.method !== "HEAD") {
            res.writeHead(405, { Allow: "GET, HEAD" }).end();
            return;
        }
        if (path !== "/metrics") {
            res.writeHead(path === "/" ? 200 : 404, { "Content-Type": "text/plain; charset=utf-8" }).end(path === "/" ? "redis-cluster metrics: GET /metrics\n" : "not found: GET /metrics\n");
            return;
        }
        scrape().then((body) => {
            res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" }).end(req.method === "HEAD" ? undefined : body);
        }, (e: Error) => {
            res.writeHead(500, { "Content-Type": "text/plain; charset=utf-8" }).end(`scrape failed: ${e.message}\n`);
        });
    });
    await new Promise<void>((resolve, reject) => {
        server.once("error", (e: NodeJS.ErrnoException) => reject(new UsageError(`--serve ${listen.host}:${listen.port}: ${e.code === "EADDRINUSE" ? "the port is in use" : e.message}`)));
        server.listen(listen.port, listen.host, resolve);
    });
    const addr = server.address();
    const port = typeof addr === "object" && addr ? addr.port : listen.port;
    const url = `http://${listen.host.includes(":") ? `[${listen.host}]` : listen.host}:${port}/metrics`;
    ctx.out.event("listening", { url }, `listening on ${url} (Prometheus text format; Ctrl-C stops)`);
    await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        ctx.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
    });
}
