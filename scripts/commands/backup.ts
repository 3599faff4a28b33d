/**
 * `backup`: a cluster-wide backup now, waited for, with progress.
 *
 *   backup --stack NAME [--to s3://…]        the nodes' own backup service, started on every node
 *                                            through SSM Run Command (one implementation, on the nodes)
 *   backup --topology FILE --to DIR|s3://…   the tool does the same steps itself (local mode, or
 *                                            anyone who can read the nodes' files)
 *
 * Layout and manifests: scripts/backup/manifest.ts. Each shard is snapshotted on its
 * own, within seconds of the others: there is no cluster-wide point in time.
 */
import type { CommandContext, CommonOptions } from "./context";
import { backupS3Root, backupUnitFor } from "../../components/bootstrap/backupHook";
import { automationOutputs, openPool, resolveTarget, StackOutputsReader } from "../inventory";
import { RefusedError, StepError, UsageError } from "../errors";
import { fmtBytes, fmtDuration } from "../output";
import { readCluster } from "../redis/members";
import { backupIdOf, BackupManifest, backupPaths, buildBackupManifest, parseBackupManifest, parseShardManifest, ShardManifest } from "../backup/manifest";
import type { TopologyNode } from "../../components/topology";
import { BackupStore, openStore, StoreOptions } from "../backup/store";
import { takeBackup } from "../backup/take";
import type { ClaimTiming } from "../backup/claim";
import { NodeCommandRunner, ssmRunner } from "../backup/nodeRunner";

export interface BackupOptions extends CommonOptions {
    to?: string;
    s3Endpoint?: string;
    kmsKeyId?: string;
    region?: string;
    /** How long a shard's save and upload may take. */
    timeout?: number;
}

export interface BackupDeps {
    readStackOutputs?: StackOutputsReader;
    runner?: NodeCommandRunner;
    now?: () => Date;
    /** Claim timing of the tool's own backup (tests shorten it). */
    claimTiming?: Partial<ClaimTiming>;
}

function memo(read: StackOutputsReader): StackOutputsReader {
    const cache = new Map<string, Promise<Record<string, unknown>>>();
    return (stack) => {
        if (!cache.has(stack)) cache.set(stack, read(stack));
        return cache.get(stack)!;
    };
}

export function storeOptions(opts: { s3Endpoint?: string; kmsKeyId?: string; region?: string }): StoreOptions {
    return { s3Endpoint: opts.s3Endpoint, kmsKeyId: opts.kmsKeyId, region: opts.region };
}

/** The store `--from` names, for backups, restore and verify: a malformed location is a usage error. */
export function openFromStore(from: string, opts: { s3Endpoint?: string; kmsKeyId?: string; region?: string }): BackupStore {
    try {
        return openStore(from, storeOptions(opts));
    } catch (e) {
        throw new UsageError(`--from: ${(e as Error).message}`);
    }
}

export async function run(opts: BackupOptions, ctx: CommandContext, deps: BackupDeps = {}): Promise<number> {
    const t0 = Date.now();
    const readOutputs = memo(deps.readStackOutputs ?? automationOutputs());
    const target = await resolveTarget(opts, { readStackOutputs: readOutputs });
    const clusterName = target.topology.clusterName;
    const backupId = backupIdOf((deps.now ?? (() => new Date()))());
    let to = opts.to;
    if (!to && opts.stack) {
        const bucket = (await readOutputs(opts.stack)).backupBucketName;
        if (typeof bucket !== "string") throw new UsageError(`stack "${opts.stack}" has no backupBucketName output: pass --to s3://bucket/prefix`);
        to = backupS3Root(bucket);
    }
    if (!to) throw new UsageError("name where the backup goes: --to DIR or --to s3://bucket/prefix");
    let store;
    try {
        store = openStore(to, storeOptions(opts));
    } catch (e) {
        throw new UsageError(`--to: ${(e as Error).message}`);
    }
    const paths = backupPaths(clusterName, backupId);
    ctx.out.event("backup-start", { backupId, cluster: clusterName, location: `${store.location}/${paths.dir}` }, `backup ${backupId} of "${clusterName}" to ${store.location}/${paths.dir}`);

    let backup: BackupManifest;
    if (opts.stack) {
        backup = await viaNodes(opts, ctx, deps, target.topology.nodes, store, clusterName, backupId);
    } else {
        const pool = openPool(target, { connectTimeoutMs: opts.connectTimeout });
        try {
            const view = await readCluster(pool, target.topology);
            const down = view.unreachable();
            if (down.length) ctx.out.warn(`unreachable: ${down.map((v) => v.key).join(", ")} (their shards are backed up from another node when one answers)`);
            backup = await takeBackup(pool, view, target.topology, store, { backupId, clusterName, out: ctx.out, signal: ctx.signal, bgsaveTimeoutMs: opts.timeout, claimTiming: deps.claimTiming });
        } finally {
            await pool.close();
        }
    }
    const ms = Date.now() - t0;
    ctx.out.result({ ok: true, backupId, cluster: clusterName, location: `${store.location}/${paths.dir}`, shards: backup.shards.length, totalKeys: backup.totalKeys, totalBytes: backup.totalBytes, durationMs: ms },
        `backup ${backupId} complete: ${backup.shards.length} shards, ${backup.totalKeys} keys, ${fmtBytes(backup.totalBytes)} in ${fmtDuration(ms)} -> ${store.location}/${paths.dir}`);
    return 0;
}

/** --stack: start redis-cluster-backup@<id> on every node; the chosen node of each shard uploads. */
async function viaNodes(opts: BackupOptions, ctx: CommandContext, deps: BackupDeps, nodes: TopologyNode[],
    store: ReturnType<typeof openStore>, clusterName: string, backupId: string): Promise<BackupManifest> {
    const missing = nodes.filter((n) => !n.instanceId);
    if (missing.length) throw new UsageError(`the topology has no instance id for ${missing.map((n) => n.name).join(", ")}: is the stack deployed?`);
    const unit = backupUnitFor(backupId);
    // `systemctl start` of a oneshot unit returns when it finished, with its result.
    const command = `systemctl start ${unit}; rc=$?; journalctl -u ${unit} --no-pager -o cat -n 40; exit $rc`;
    const runner = deps.runner ?? ssmRunner(opts.region);
    let done = 0;
    const results = await runner.run(nodes.map((n) => ({ instanceId: n.instanceId!, name: n.name })), command, {
        timeoutSec: Math.ceil((opts.timeout ?? 6 * 3600_000) / 1000),
        comment: `redis-cluster backup ${clusterName} ${backupId}`,
        signal: ctx.signal,
        onDone: (r) => {
            done++;
            const line = r.output.trim().split("\n").filter((l) => /backing up|nothing to do|done|ERROR/.test(l)).pop() ?? r.status;
            ctx.out.event("node-done", { node: r.name, ok: r.ok, status: r.status }, `[${done}/${nodes.length}] ${r.name}: ${r.ok ? "" : `${r.status}: `}${line.replace(/^.*redis-backup\[[^\]]*\]: /, "")}`);
        },
    }).catch((e) => {
        throw new StepError({ op: "backup", step: "ssm-send-command", cause: e, state: "no node was asked to back up, or some were and keep going on their own", resume: "check the AWS credentials and region (--region) and that the nodes are SSM-managed, then run `backup` again" });
    });
    const failed = results.filter((r) => !r.ok);
    const paths = backupPaths(clusterName, backupId);
    if (failed.length) {
        throw new StepError({
            op: "backup", step: "node-backup", node: failed.map((r) => r.name).join(", "),
            cause: failed.map((r) => `${r.name} (${r.status}):\n    ${r.output.trim().split("\n").slice(-5).join("\n    ")}`).join("\n  "),
            state: `${store.location}/${paths.dir} has no backup.json unless every shard finished (the failed shards wrote no manifest)`,
            resume: "fix the cause shown, then run `backup` again (a new backup id)",
        });
    }
    // The last shard writes backup.json; if two finished at once and neither saw the other, the tool completes it.
    const text = await store.readText(paths.backup);
    if (text !== undefined) return parseBackupManifest(text, `${store.location}/${paths.backup}`);
    const files = (await store.list(`${paths.dir}/`)).map((o) => o.key.split("/").pop()!).filter((f) => /^shard-\d+\.json$/.test(f));
    const manifests: ShardManifest[] = [];
    for (const f of files) manifests.push(parseShardManifest((await store.readText(`${paths.dir}/${f}`))!, `${store.location}/${paths.dir}/${f}`));
    const shards = new Set(nodes.map((n) => n.shard)).size;
    if (manifests.length < shards) {
        throw new RefusedError(`every node finished, but only ${manifests.length} of ${shards} shard manifests are in ${store.location}/${paths.dir}: a shard had no node to back it up (is its master up?)`);
    }
    const backup = buildBackupManifest(manifests, shards, new Date());
    await store.write(paths.backup, JSON.stringify(backup, null, 2) + "\n");
    return backup;
}
