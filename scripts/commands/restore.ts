/**
 * `restore --from DIR|s3://… [--backup ID] --topology FILE|--stack NAME`: a backup into a
 * running cluster of any shard count (engine: scripts/backup/restore.ts). Into a cluster
 * that holds keys only with --yes or the cluster name typed at the prompt; existing keys
 * are reported and kept unless --replace. Ends with the counts verified against the
 * manifests, per shard; exits 1 on any difference or checksum mismatch.
 */
import type { CommandContext, CommonOptions } from "./context";
import { RefusedError, UsageError } from "../errors";
import { fmtBytes, fmtDuration } from "../output";
import { openSession } from "./session";
import { clustersIn, loadBackup } from "../backup/catalog";
import { ownerKeys, restoreBackup, RestoreResult } from "../backup/restore";
import { openFromStore } from "./backup";
import { ask } from "./prompt";

/** RESTOREs per write to a master (one buffer, one syscall). */
const RESTORE_BATCH = 1024;

export interface RestoreCommandOptions extends CommonOptions {
    from: string;
    cluster?: string;
    backup?: string;
    replace?: boolean;
    yes?: boolean;
    memoryMb?: number;
    pipeline?: number;
    s3Endpoint?: string;
    region?: string;
}

export function renderRestore(r: RestoreResult, label: string): string {
    const head = ["shard", "expected", "read", "restored", "expired", "kept", "element-wise", "bytes", "checksum"];
    const rows = r.shards.map((c) => [String(c.shard), String(c.keysExpected), String(c.keysRead), String(c.restored), String(c.expired), String(c.conflicts), String(c.elementWise), fmtBytes(c.bytes), c.checksumOk ? "ok" : "BAD"]);
    const tot = (f: (c: RestoreResult["shards"][number]) => number) => String(r.shards.reduce((a, c) => a + f(c), 0));
    rows.push(["all", tot((c) => c.keysExpected), tot((c) => c.keysRead), tot((c) => c.restored), tot((c) => c.expired), tot((c) => c.conflicts), tot((c) => c.elementWise), fmtBytes(r.shards.reduce((a, c) => a + c.bytes, 0)), ""]);
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i].length)));
    const fmt = (x: string[]) => x.map((c, i) => c.padStart(w[i])).join("  ");
    const keys = r.shards.reduce((a, c) => a + c.keysRead, 0);
    return [
        `${r.ok ? "restored" : "restore INCOMPLETE:"} ${label} in ${fmtDuration(r.durationMs)} (${Math.round(keys / Math.max(r.durationMs / 1000, 0.001))} keys/s)`,
        fmt(head), ...rows.map(fmt),
        ...(r.functions ? [`function libraries: ${r.functions}`] : []),
        ...(r.conflictSamples.length ? [`kept existing keys (no --replace), e.g. ${r.conflictSamples.slice(0, 5).join(", ")}`] : []),
        ...r.problems.map((p) => `MISMATCH ${p}`),
    ].join("\n");
}

export async function run(opts: RestoreCommandOptions, ctx: CommandContext): Promise<number> {
    const store = openFromStore(opts.from, opts);
    const session = await openSession(opts, ctx, "restore");
    const { target, pool, view } = session;
    try {
        const name = target.topology.clusterName;
        let cluster = opts.cluster;
        if (!cluster) {
            const names = await clustersIn(store);
            cluster = names.includes(name) ? name : names.length === 1 ? names[0] : undefined;
            if (!cluster) throw new UsageError(`${store.location} holds backups of ${names.length ? names.join(", ") : "no cluster"}; name one with --cluster`);
        }
        const loaded = await loadBackup(store, { clusterName: cluster, backupId: opts.backup });
        const label = `backup ${loaded.backup.backupId} of "${cluster}" (${loaded.shards.length} shards, ${loaded.backup.totalKeys} keys, ${fmtBytes(loaded.backup.totalBytes)}) into "${name}"`;
        const masters = [...new Set(ownerKeys(view).filter((k): k is string => k !== undefined))];
        const lost = view.unreachable().filter((v) => masters.includes(v.key));
        if (lost.length) throw new RefusedError(`restore: master(s) ${lost.map((v) => v.key).join(", ")} cannot be reached; nothing was restored`);
        const sizes = await Promise.all(masters.map(async (k) => Number(await pool.call(k, "DBSIZE"))));
        // This run's own lease (docs/lease.md) is a key too: not the user's data.
        const existing = sizes.reduce((a, b) => a + b, 0) - (session.lease ? 1 : 0);
        if (existing > 0 && !opts.yes) {
            const typed = await ask(`Cluster "${name}" (${target.source}) holds ${existing} key(s). Restoring ${label} ${opts.replace ? "OVERWRITES keys of the same name" : "keeps keys that exist (--replace to overwrite)"}.\nType the cluster name to go on: `);
            if (typed === undefined) throw new RefusedError(`restore refused: "${name}" holds ${existing} key(s); confirm with --yes (no terminal to ask on); nothing was restored`);
            if (typed !== name) throw new RefusedError(`restore refused: "${typed}" is not the cluster name "${name}"; nothing was restored`);
        }
        ctx.out.event("restore-start", { backupId: loaded.backup.backupId, cluster, target: name, shards: loaded.shards.length, masters: masters.length, keys: loaded.backup.totalKeys, bytes: loaded.backup.totalBytes },
            `restoring ${label}: ${loaded.shards.length} shard file(s) -> ${masters.length} master(s)${opts.replace ? ", replacing existing keys" : ""}`);
        const r = await restoreBackup(pool, view, store, loaded, {
            replace: !!opts.replace,
            memoryBytes: (opts.memoryMb ?? 256) * 1024 * 1024,
            batch: RESTORE_BATCH,
            batchesInFlight: Math.max(1, Math.ceil((opts.pipeline ?? 4096) / RESTORE_BATCH)),
            out: ctx.out,
            // Ctrl-C, or another run took the lease over: stop at the next batch.
            signal: session.signal,
        });
        ctx.out.result({ backupId: loaded.backup.backupId, cluster, target: name, ...r }, renderRestore(r, label));
        return r.ok ? 0 : 1;
    } finally {
        await pool.close();
    }
}
