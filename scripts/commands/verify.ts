/**
 * `backup verify [--backup ID] --from DIR|s3://…|--stack NAME`: proof that a backup restores.
 * Starts a throw-away cluster shaped like the backup (one master per backup shard, real
 * redis-server processes on loopback, through local mode's own `up`/`down`), restores the
 * backup into it with the restore engine, compares per shard the keys read with the
 * manifest and the RDB's SHA-256 and CRC-64 (its digest) with the manifest, and the keys
 * the cluster holds with the keys restored; then removes the cluster. On success it
 * writes verified.json beside the backup (monitoring alarms on its age) and prints one
 * line with the result and how long the restore took.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { CommandContext, CommonOptions } from "./context";
import { RefusedError, StepError } from "../errors";
import { createOutput, fmtDuration } from "../output";
import { openPool, resolveTarget, StackOutputsReader } from "../inventory";
import { readCluster } from "../redis/members";
import { down, up } from "../local";
import { loadBackup } from "../backup/catalog";
import { backupPaths, VerifiedManifest } from "../backup/manifest";
import { ownerKeys, restoreBackup, RestoreResult } from "../backup/restore";
import { openFromStore } from "./backup";
import { sourceOf } from "./backups";

export interface VerifyOptions extends CommonOptions {
    from?: string;
    cluster?: string;
    backup?: string;
    keep?: boolean;
    s3Endpoint?: string;
    region?: string;
}

const sink = () => new Writable({ write: (_c, _e, cb) => cb() });

export async function run(opts: VerifyOptions, ctx: CommandContext, deps: { readStackOutputs?: StackOutputsReader } = {}): Promise<number> {
    const t0 = Date.now();
    const src = await sourceOf(opts, deps.readStackOutputs);
    const store = openFromStore(src.from, opts);
    const loaded = await loadBackup(store, { clusterName: src.cluster, backupId: opts.backup });
    const { backup } = loaded;
    const shards = loaded.shards.length;
    if (shards < 3) throw new RefusedError(`backup ${backup.backupId} has ${shards} shard(s); a cluster needs at least 3 masters to verify it in`);
    ctx.out.info(`verify ${backup.clusterName}/${backup.backupId}: starting a throw-away ${shards}-master cluster on loopback …`);

    const stateDir = mkdtempSync(join(tmpdir(), "redis-cluster-verify-"));
    const stack = "verify";
    const name = `verify-${backup.backupId.toLowerCase()}`;
    const config = join(stateDir, "verify.yaml");
    // The stack config local mode reads: one master per backup shard, no replica (nothing to fail over), one zone.
    writeFileSync(config, [
        "config:",
        `  redis-cluster:clusterName: ${name}`,
        `  redis-cluster:shards: ${shards}`,
        "  redis-cluster:replicasPerShard: 0",
        "  redis-cluster:zones: 1",
        "  redis-cluster:clusterNodeTimeoutMs: 5000",
        "",
    ].join("\n"));
    const quiet = createOutput({ json: true, quiet: true, stdout: sink(), stderr: sink() });
    const localOpts = { stack, config, stateDir, basePort: 42000 + Math.floor(Math.random() * 8000), json: true, quiet: true };
    let result: RestoreResult | undefined;
    let restoreMs = 0;
    let clusterKeys = 0;
    try {
        try {
            await up(localOpts, quiet);
        } catch (e) {
            throw new StepError({ op: "backup verify", step: "start-cluster", cause: e, state: `the throw-away cluster in ${stateDir} is stopped and removed`, resume: "fix the cause (redis-server installed? ports free?), then run `backup verify` again" });
        }
        const target = await resolveTarget({ topology: join(stateDir, stack, "topology.json") });
        const pool = openPool(target);
        try {
            // The cluster is ours and thrown away: no maxmemory, so a backup larger than local mode's share still loads.
            await Promise.all(target.topology.nodes.map((n) => pool.call(`${n.host}:${n.port}`, "CONFIG", "SET", "maxmemory", "0")));
            const view = await readCluster(pool, target.topology);
            const r0 = Date.now();
            result = await restoreBackup(pool, view, store, loaded, { replace: false, out: ctx.out, signal: ctx.signal });
            restoreMs = Date.now() - r0;
            const masters = [...new Set(ownerKeys(view).filter((k): k is string => k !== undefined))];
            clusterKeys = (await Promise.all(masters.map(async (k) => Number(await pool.call(k, "DBSIZE"))))).reduce((a, b) => a + b, 0);
        } finally {
            await pool.close();
        }
    } finally {
        if (opts.keep) ctx.out.info(`kept the throw-away cluster: ${join(stateDir, stack, "topology.json")} (npm run local -- down --stack ${stack} --state-dir ${stateDir})`);
        else {
            await down(localOpts, quiet).catch((e) => ctx.out.warn(`could not stop the throw-away cluster in ${stateDir}: ${(e as Error).message}`));
            rmSync(stateDir, { recursive: true, force: true });
        }
    }

    const restored = result.shards.reduce((a, c) => a + c.restored, 0);
    const problems = [...result.problems];
    // Keys restored with a TTL may expire while we count: the cluster may hold fewer, never more.
    const withTtl = result.shards.reduce((a, c) => a + c.withTtl, 0);
    const withinTtl = clusterKeys <= restored && clusterKeys >= restored - withTtl;
    if (!withinTtl) problems.push(`the cluster holds ${clusterKeys} keys after restoring ${restored}`);
    const ok = problems.length === 0;
    const durationMs = Date.now() - t0;
    const doc: VerifiedManifest = {
        version: 1, backupId: backup.backupId, verifiedAt: new Date().toISOString(), ok, durationMs: restoreMs,
        keys: restored,
        shards: result.shards.map((c) => ({ shard: c.shard, keysExpected: c.keysExpected, keysRestored: c.restored, digestOk: c.checksumOk && c.keysRead + c.emptySkipped === c.keysExpected })),
    };
    if (ok) await store.write(backupPaths(backup.clusterName, backup.backupId).verified, JSON.stringify(doc, null, 2) + "\n");
    const expired = result.shards.reduce((a, c) => a + c.expired, 0);
    const line = ok
        ? `verify ${backup.clusterName}/${backup.backupId}: OK, ${shards} shards, ${restored} keys restored${expired ? ` (${expired} expired since the backup, skipped)` : ""}, checksums and counts match the manifests; restore took ${fmtDuration(restoreMs)} (${fmtDuration(durationMs)} in all)`
        : `verify ${backup.clusterName}/${backup.backupId}: FAILED: ${problems.join("; ")}`;
    ctx.out.result({ ...doc, ok, totalDurationMs: durationMs, clusterKeys, problems }, line);
    return ok ? 0 : 1;
}
