/**
 * `backups --from DIR|s3://… [--cluster NAME]` (or `--stack NAME`): every backup with its
 * time, shards, keys, bytes, whether it is complete, whether its RDB files still hash to
 * their manifests' SHA-256 (`--no-verify` skips the download), and its last verification.
 */
import type { CommandContext, CommonOptions } from "./context";
import { backupS3Root } from "../../components/bootstrap/backupHook";
import { automationOutputs, StackOutputsReader } from "../inventory";
import { UsageError } from "../errors";
import { fmtBytes } from "../output";
import { listBackups } from "../backup/catalog";
import { openFromStore } from "./backup";

export interface BackupsOptions extends CommonOptions {
    from?: string;
    cluster?: string;
    s3Endpoint?: string;
    region?: string;
    /** commander's --no-verify */
    verify?: boolean;
}

/** `--from`, or the stack's bucket with its cluster name. */
export async function sourceOf(opts: { from?: string; stack?: string; cluster?: string }, read: StackOutputsReader = automationOutputs()): Promise<{ from: string; cluster?: string }> {
    if (opts.from) return { from: opts.from, cluster: opts.cluster };
    if (!opts.stack) throw new UsageError("name the backups: --from DIR|s3://bucket/prefix, or --stack NAME");
    const outs = await read(opts.stack);
    if (typeof outs.backupBucketName !== "string") throw new UsageError(`stack "${opts.stack}" has no backupBucketName output: pass --from s3://bucket/prefix`);
    const topo = outs.topology as { clusterName?: string } | undefined;
    return { from: backupS3Root(outs.backupBucketName), cluster: opts.cluster ?? topo?.clusterName };
}

export async function run(opts: BackupsOptions, ctx: CommandContext, deps: { readStackOutputs?: StackOutputsReader } = {}): Promise<number> {
    const src = await sourceOf(opts, deps.readStackOutputs);
    const store = openFromStore(src.from, opts);
    const verify = opts.verify !== false;
    if (verify) ctx.out.info(`reading ${store.location}${src.cluster ? `/${src.cluster}` : ""} and hashing every RDB (--no-verify to skip) …`);
    const list = await listBackups(store, { clusterName: src.cluster, verify });
    const rows = list.map((l) => [
        l.clusterName, l.backupId, l.time.replace(/\.000Z$/, "Z"), String(l.shards), String(l.keys), fmtBytes(l.bytes),
        l.complete ? "yes" : "NO", l.checksums, l.verified ? `${l.verified.ok ? "ok" : "FAILED"} ${l.verified.verifiedAt.replace(/\.\d+Z$/, "Z")}` : "-",
    ]);
    const head = ["cluster", "backup", "time", "shards", "keys", "bytes", "complete", "checksums", "verified"];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
    const problems = list.flatMap((l) => l.problems.map((p) => `${l.clusterName}/${l.backupId}: ${p}`));
    const text = list.length
        ? [fmt(head), ...rows.map(fmt), ...(problems.length ? ["", ...problems] : [])].join("\n")
        : `no backups in ${store.location}${src.cluster ? ` for cluster ${src.cluster}` : ""}`;
    ctx.out.result({ location: store.location, backups: list }, text);
    // A checksum that no longer matches is a damaged backup: say so in the exit code.
    return list.some((l) => l.checksums === "mismatch") ? 1 : 0;
}
