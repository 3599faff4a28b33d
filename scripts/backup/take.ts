/**
 * A cluster-wide backup taken by the tool itself (`backup --topology FILE --to DIR|s3://…`):
 * the steps of the node script (components/bootstrap/backup.sh) driven over the
 * admin connection, for local mode and anyone who can read the nodes' files. One
 * node per shard (plan/backup.ts), every shard in parallel: BGSAVE, wait until it
 * finished with status ok and LASTSAVE moved, open the dump at once (a later save
 * replaces dump.rdb by rename; the open file keeps its bytes), stream it into the
 * store while hashing, then the shard manifest; backup.json last.
 *
 * Shards are snapshotted independently, within seconds of each other: there is no
 * cluster-wide point in time (as with ElastiCache).
 */
import { engineOf } from "../plan/engine";
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { Transform } from "node:stream";
import { Topology } from "../../components/topology";
import { StepError, UsageError } from "../errors";
import { Output, fmtBytes, fmtDuration } from "../output";
import { backupCandidates } from "../plan/backup";
import { readRdb } from "../rdb";
import { SlotRange } from "../plan/clusterNodes";
import { ClusterView, parseInfo } from "../plan/clusterView";
import { waitUntil } from "../redis/clusterView";
import { NodeKey, NodePool } from "../redis/pool";
import { BackupManifest, backupPaths, buildBackupManifest, ShardManifest } from "./manifest";
import { acquireShard, ClaimTiming, HeldClaim } from "./claim";
import { BackupStore } from "./store";
import { nodeKey } from "../plan/node";

export interface ShardSource {
    shard: number;
    masterKey: NodeKey;
    masterId: string;
    slots: SlotRange[];
}

/** The shards to back up: every master that owns slots, numbered by the topology's shard of that node. */
export function shardsToBackUp(view: ClusterView, topology: Topology): ShardSource[] {
    const byKey = new Map(topology.nodes.map((n) => [nodeKey(n), n]));
    const out: ShardSource[] = [];
    for (const n of view.knownNodes().values()) {
        if (n.role !== "master" || n.slots.length === 0) continue;
        if (n.failing) throw new UsageError(`master ${n.key} owns slots but is failing: fail over first (npm run cluster -- failover), then back up`);
        const t = byKey.get(n.key);
        if (!t) throw new UsageError(`master ${n.key} owns slots but is not in the topology: update the topology file, then back up`);
        out.push({ shard: t.shard, masterKey: n.key, masterId: n.id, slots: n.slots });
    }
    const seen = new Set<number>();
    for (const s of out) {
        if (seen.has(s.shard)) throw new UsageError(`two masters of shard ${s.shard} own slots: the topology's shard numbers do not match the cluster`);
        seen.add(s.shard);
    }
    return out.sort((a, b) => a.shard - b.shard);
}

/**
 * BGSAVE on a node and wait until that save (not an earlier one) finished with status ok.
 * LASTSAVE counts seconds, so the BGSAVE is sent in a later second than the last save.
 */
export async function bgsave(pool: NodePool, key: NodeKey, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    const persistence = async () => parseInfo(String(await pool.call(key, "INFO", "persistence")));
    await waitUntil(async () => {
        const p = await persistence();
        return p.rdb_bgsave_in_progress === "0" && p.aof_rewrite_in_progress !== "1";
    }, { timeoutMs: opts.timeoutMs, what: `the running save on ${key} to finish`, signal: opts.signal });
    const before = Number(await pool.call(key, "LASTSAVE"));
    while (Math.floor(Date.now() / 1000) <= before) await new Promise((r) => setTimeout(r, 50));
    await pool.call(key, "BGSAVE", "SCHEDULE");
    let last: Record<string, string> = {};
    await waitUntil(async () => {
        last = await persistence();
        if (last.rdb_bgsave_in_progress === "0" && last.rdb_last_bgsave_status === "err") throw new Error(`BGSAVE on ${key} failed (rdb_last_bgsave_status:err): see the node's log`);
        return last.rdb_bgsave_in_progress === "0" && Number(last.rdb_last_save_time) > before;
    }, { timeoutMs: opts.timeoutMs, what: `BGSAVE on ${key}`, signal: opts.signal });
    if (last.rdb_last_bgsave_status !== "ok") throw new Error(`BGSAVE on ${key} ended with rdb_last_bgsave_status:${last.rdb_last_bgsave_status}`);
}

/** RDB version and key count of an RDB (db 0's RESIZEDB hint, else every key counted). */
export async function rdbSummary(input: NodeJS.ReadableStream, source: string): Promise<{ rdbVersion: number; keys: number }> {
    let rdbVersion = 0;
    let keys = 0;
    // Values up to 1 MiB are walked in the buffer, not copied; only bigger ones are decoded piece by
    // piece to skip them (maxValueBytes 1 sent every key through that path: 81k against ~470k keys/s).
    for await (const r of readRdb(input, { source, maxValueBytes: 1024 * 1024 })) {
        if (r.kind === "header") rdbVersion = r.rdbVersion;
        else if (r.kind === "db" && r.index === 0 && r.keysHint !== undefined) return { rdbVersion, keys: r.keysHint };
        else if (r.kind === "key") {
            keys++;
            if (r.elements) for await (const _ of r.elements()) { /* skipped */ }
        }
    }
    return { rdbVersion, keys };
}

export interface TakeOptions {
    backupId: string;
    clusterName: string;
    out: Output;
    signal?: AbortSignal;
    /** @default 6 h */
    bgsaveTimeoutMs?: number;
    /** @default 10 */
    maxLagSec?: number;
    /** Claim timing (claim.ts); the defaults are the nodes'. */
    claimTiming?: Partial<ClaimTiming>;
}

/** Backs up every shard into the store; returns backup.json as written. */
export async function takeBackup(pool: NodePool, view: ClusterView, topology: Topology, store: BackupStore, opts: TakeOptions): Promise<BackupManifest> {
    const shards = shardsToBackUp(view, topology);
    const names = new Map(topology.nodes.map((n) => [nodeKey(n), n.name]));
    const paths = backupPaths(opts.clusterName, opts.backupId);
    const t0 = Date.now();
    let bytesDone = 0;
    const manifests = await Promise.all(shards.map(async (s): Promise<ShardManifest> => {
        const step = (name: string, cause: unknown, node: string): never => {
            throw new StepError({ op: "backup", step: name, node, cause, state: `no manifest for shard ${s.shard} in ${store.location}/${paths.dir} (the backup is incomplete)`, resume: "run `backup` again (a new backup id)" });
        };
        try {
            return await backUpShard(s, step);
        } catch (e) {
            if (e instanceof StepError || e instanceof UsageError) throw e;
            return step("backup-shard", e, names.get(s.masterKey) ?? s.masterKey);
        }
    }));
    const backup = buildBackupManifest(manifests, shards.length, new Date());
    await store.write(paths.backup, JSON.stringify(backup, null, 2) + "\n");
    opts.out.info(`backup ${opts.backupId}: ${shards.length} shards, ${backup.totalKeys} keys, ${fmtBytes(backup.totalBytes)} in ${fmtDuration(Date.now() - t0)}`);
    return backup;

    async function backUpShard(s: ShardSource, step: (name: string, cause: unknown, node: string) => never): Promise<ShardManifest> {
        const masterRepl = String(await pool.call(s.masterKey, "INFO", "replication"));
        const replicas = [...view.knownNodes().values()].filter((n) => n.role === "replica" && n.masterId === s.masterId && !n.failing).map((n) => ({ key: `${n.host}:${n.port}`, id: n.id }));
        const choice = backupCandidates({ masterKey: s.masterKey, masterId: s.masterId, replicas, infoReplication: masterRepl, maxLagSec: opts.maxLagSec })[0];
        const node = choice.key;
        if (choice.role === "replica") {
            // "In sync" allows seconds of lag: catch up with what the master had when the backup started.
            const want = Number(parseInfo(masterRepl).master_repl_offset);
            await waitUntil(async () => Number(parseInfo(String(await pool.call(node, "INFO", "replication"))).slave_repl_offset) >= want,
                { timeoutMs: ((opts.maxLagSec ?? 10) + 5) * 1000, what: `${node} to catch up with its master`, signal: opts.signal })
                .catch((e) => opts.out.warn(`shard ${s.shard}: ${(e as Error).message}; backing up what it has`));
        }
        const nodeName = names.get(node) ?? node;
        // The same claim as the nodes' (claim.ts): a node timer or another run with this id never backs up this shard too.
        const outcome = await acquireShard(store, { clusterName: opts.clusterName, backupId: opts.backupId, shard: s.shard },
            { nodeName, nodeId: choice.id, address: node, role: choice.role, reason: choice.reason },
            { rank: 0, timing: opts.claimTiming, signal: opts.signal, log: (m) => opts.out.info(`shard ${s.shard}: ${m}`) });
        if (outcome.kind === "done") {
            opts.out.event("shard-done", { shard: s.shard, node: outcome.manifest.nodeName, keys: outcome.manifest.keys, bytes: outcome.manifest.bytes },
                `shard ${s.shard}: already backed up by ${outcome.manifest.nodeName} for ${opts.backupId}`);
            return outcome.manifest;
        }
        if (outcome.kind === "given-up") return step("claim", new Error(outcome.message), nodeName);
        const claim = outcome.claim;
        try {
            return await underClaim(claim);
        } catch (e) {
            await claim.release(e instanceof StepError ? e.message : String((e as Error).message ?? e));
            throw e;
        }

        async function underClaim(claim: HeldClaim): Promise<ShardManifest> {
            const fence = (what: string) => {
                if (!claim.valid()) step(what, new Error(`the claim ${claim.key} expired (${claim.claim.expiresAt}) before ${what}; another node may take the shard over`), nodeName);
            };
            opts.out.event("shard-start", { shard: s.shard, node: nodeName, role: choice.role }, `shard ${s.shard}: ${nodeName} (${choice.role}: ${claim.claim.reason})`);
            const startedAt = new Date().toISOString();
            try {
                await bgsave(pool, node, { timeoutMs: opts.bgsaveTimeoutMs ?? 6 * 3600_000, signal: opts.signal });
            } catch (e) {
                step("bgsave", e, nodeName);
            }
            const [dir, file] = await Promise.all([pool.call(node, "CONFIG", "GET", "dir"), pool.call(node, "CONFIG", "GET", "dbfilename")]) as [string[], string[]];
            const path = `${dir[1]}/${file[1]}`;
            let fh;
            try {
                fh = await open(path, "r");
            } catch (e) {
                throw new UsageError(`shard ${s.shard}: ${nodeName} wrote its backup to ${path} on its own machine, which is not readable here (${(e as NodeJS.ErrnoException).code}). ` +
                    "Back up a deployed stack with --stack NAME (the nodes upload it themselves), or run the tool where the nodes' files are.");
            }
            try {
                const nodeId = String(await pool.call(node, "CLUSTER", "MYID"));
                const { name: engine, version } = engineOf(parseInfo(String(await pool.call(node, "INFO", "server"))));
                const hash = createHash("sha256");
                let bytes = 0;
                const meter = new Transform({
                    transform(chunk: Buffer, _enc, cb) {
                        hash.update(chunk);
                        bytes += chunk.length;
                        bytesDone += chunk.length;
                        cb(null, chunk);
                    },
                });
                const src = fh.createReadStream({ autoClose: false, start: 0, highWaterMark: 1 << 20 }).pipe(meter);
                fence("upload");
                try {
                    await store.write(paths.rdb(s.shard), src);
                } catch (e) {
                    step("upload", e, nodeName);
                }
                // RDB version and key count: the reader stops at db 0's RESIZEDB hint, near the start of the file.
                const summary = await rdbSummary(fh.createReadStream({ autoClose: false, start: 0 }), path).catch((e) => step("read-rdb", e, nodeName));
                const m: ShardManifest = {
                    version: 1, backupId: opts.backupId, clusterName: opts.clusterName, shard: s.shard, nodeName, nodeId,
                    role: choice.role, slots: s.slots.map((r) => [r.start, r.end]), keys: summary.keys, engine, engineVersion: version,
                    rdbVersion: summary.rdbVersion, bytes, sha256: hash.digest("hex"), startedAt, endedAt: new Date().toISOString(),
                };
                fence("write-manifest");
                let created = false;
                try {
                    // Created only if absent: one manifest per shard, whoever else ran.
                    created = await store.create(paths.shardManifest(s.shard), JSON.stringify(m, null, 2) + "\n");
                } catch (e) {
                    step("write-manifest", e, nodeName);
                }
                if (!created) step("write-manifest", new Error(`${store.location}/${paths.shardManifest(s.shard)} exists already: another node finished this shard (\`backups\` checks its RDB against it)`), nodeName);
                claim.stop();
                const secs = (Date.now() - t0) / 1000;
                opts.out.event("shard-done", { shard: s.shard, node: nodeName, keys: m.keys, bytes: m.bytes },
                    `shard ${s.shard}: ${m.keys} keys, ${fmtBytes(m.bytes)} uploaded (${fmtBytes(bytesDone / Math.max(secs, 0.001))}/s overall)`);
                return m;
            } finally {
                await fh.close();
            }
        }
    }
}
