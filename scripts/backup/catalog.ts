/**
 * What a backup store holds: backups per cluster, whether each is complete, and
 * whether its RDB files still match the checksums in their manifests. Also loads one
 * backup for restore and verify (the newest complete one unless an id is given).
 */
import { createHash } from "node:crypto";
import { RefusedError, UsageError } from "../errors";
import {
    BACKUP_ID_RE, BACKUP_MANIFEST, BackupManifest, backupIdTime, backupPaths, CLAIM_NAME_RE, ManifestError, parseBackupManifest,
    parseClaim, parseShardManifest, parseVerifiedManifest, ShardClaim, ShardManifest, VERIFIED_MANIFEST, VerifiedManifest,
} from "./manifest";
import { BackupStore } from "./store";

export interface BackupListing {
    clusterName: string;
    backupId: string;
    /** The slot time the id names (ISO). */
    time: string;
    complete: boolean;
    shards: number;
    keys: number;
    bytes: number;
    /** "ok": every RDB hashed to its manifest's SHA-256; "unchecked" with --no-verify. */
    checksums: "ok" | "mismatch" | "unchecked" | "n/a";
    problems: string[];
    /** verified.json, when `backup verify` succeeded on it. */
    verified?: Pick<VerifiedManifest, "verifiedAt" | "ok" | "durationMs">;
    /** Shards claimed but without a manifest: who holds (or held) each, and how that stands. */
    unfinished: UnfinishedShard[];
}

export interface UnfinishedShard {
    shard: number;
    /** The current claim: the takeover when there is one. */
    claim: Pick<ShardClaim, "nodeName" | "role" | "address" | "generation" | "claimedAt" | "expiresAt" | "failed">;
    /** The first claim, when it was taken over. */
    takenOverFrom?: string;
    /** working: the claim is unexpired; gave-up: its holder marked it failed; expired: the holder stopped renewing it. */
    state: "working" | "gave-up" | "expired";
}

/** One line for a claimed shard without a manifest. */
export function describeUnfinished(u: UnfinishedShard): string {
    const c = u.claim;
    const who = `${c.nodeName} (${c.role}, ${c.address})${u.takenOverFrom ? ` taking over from ${u.takenOverFrom}` : ""}`;
    const state = u.state === "gave-up" ? `the holder gave up: ${c.failed}`
        : u.state === "expired" ? `its claim expired at ${c.expiresAt} (the holder stopped renewing it${u.claim.generation === 1 ? "; another node may take it over once" : "; it was already taken over once"})`
            : `in progress (claim renewed until ${c.expiresAt})`;
    return `shard ${u.shard}: claimed by ${who}, no manifest; ${state}`;
}

/** SHA-256 and size of a stored object, streamed. */
export async function hashObject(store: BackupStore, key: string): Promise<{ sha256: string; bytes: number }> {
    const h = createHash("sha256");
    let bytes = 0;
    for await (const c of await store.read(key)) {
        h.update(c as Buffer);
        bytes += (c as Buffer).length;
    }
    return { sha256: h.digest("hex"), bytes };
}

/** Every backup below the root (or of one cluster), oldest first. */
export async function listBackups(store: BackupStore, opts: { clusterName?: string; verify?: boolean } = {}): Promise<BackupListing[]> {
    const objects = await store.list(opts.clusterName ? `${opts.clusterName}/` : "");
    const groups = new Map<string, Set<string>>();
    for (const o of objects) {
        const parts = o.key.split("/");
        if (parts.length !== 3 || !BACKUP_ID_RE.test(parts[1])) continue;
        const k = `${parts[0]}/${parts[1]}`;
        if (!groups.has(k)) groups.set(k, new Set());
        groups.get(k)!.add(parts[2]);
    }
    const out: BackupListing[] = [];
    for (const [k, files] of [...groups].sort(([a], [b]) => (a < b ? -1 : 1))) {
        const [clusterName, backupId] = k.split("/");
        const paths = backupPaths(clusterName, backupId);
        const l: BackupListing = { clusterName, backupId, time: backupIdTime(backupId)?.toISOString() ?? "", complete: false, shards: 0, keys: 0, bytes: 0, checksums: "n/a", problems: [], unfinished: [] };
        let shardManifests: ShardManifest[] = [];
        for (const f of [...files].filter((f) => /^shard-\d+\.json$/.test(f))) {
            try {
                shardManifests.push(parseShardManifest((await store.readText(`${k}/${f}`))!, `${store.location}/${k}/${f}`));
            } catch (e) {
                l.problems.push((e as Error).message);
            }
        }
        shardManifests = shardManifests.sort((a, b) => a.shard - b.shard);
        const claims = new Map<number, ShardClaim[]>();
        for (const f of files) {
            const m = CLAIM_NAME_RE.exec(f);
            if (!m || files.has(`shard-${m[1]}.json`)) continue;
            try {
                const c = parseClaim((await store.readText(`${k}/${f}`))!, `${store.location}/${k}/${f}`);
                claims.set(c.shard, [...(claims.get(c.shard) ?? []), c].sort((a, b) => a.generation - b.generation));
            } catch (e) {
                l.problems.push((e as Error).message);
            }
        }
        for (const [shard, cs] of [...claims].sort(([a], [b]) => a - b)) {
            const c = cs[cs.length - 1];
            const state = c.failed !== undefined ? "gave-up" : Date.parse(c.expiresAt) > Date.now() ? "working" : "expired";
            const u: UnfinishedShard = {
                shard, state, takenOverFrom: cs.length > 1 ? cs[0].nodeName : undefined,
                claim: { nodeName: c.nodeName, role: c.role, address: c.address, generation: c.generation, claimedAt: c.claimedAt, expiresAt: c.expiresAt, failed: c.failed },
            };
            l.unfinished.push(u);
            l.problems.push(describeUnfinished(u));
        }
        if (files.has(BACKUP_MANIFEST)) {
            try {
                const b = parseBackupManifest((await store.readText(paths.backup))!, `${store.location}/${paths.backup}`);
                l.complete = true;
                l.shards = b.shards.length;
                l.keys = b.totalKeys;
                l.bytes = b.totalBytes;
                for (const s of b.shards) {
                    if (!files.has(s.rdb)) { l.problems.push(`${s.rdb} is missing`); l.complete = false; }
                    if (!files.has(s.manifest)) { l.problems.push(`${s.manifest} is missing`); l.complete = false; }
                }
            } catch (e) {
                l.problems.push((e as Error).message);
            }
        } else {
            l.shards = shardManifests.length;
            l.keys = shardManifests.reduce((a, s) => a + s.keys, 0);
            l.bytes = shardManifests.reduce((a, s) => a + s.bytes, 0);
            l.problems.push(`no ${BACKUP_MANIFEST}: ${shardManifests.length} shard(s) finished (${shardManifests.map((s) => s.shard).join(", ") || "none"})`);
        }
        if (opts.verify && shardManifests.length) {
            l.checksums = "ok";
            for (const m of shardManifests) {
                if (!files.has(`shard-${m.shard}.rdb`)) continue;
                const got = await hashObject(store, paths.rdb(m.shard));
                if (got.sha256 !== m.sha256 || got.bytes !== m.bytes) {
                    l.checksums = "mismatch";
                    l.problems.push(`shard-${m.shard}.rdb: ${got.bytes} bytes, sha256 ${got.sha256}; the manifest says ${m.bytes} bytes, ${m.sha256}`);
                }
            }
        } else if (!opts.verify) l.checksums = "unchecked";
        if (files.has(VERIFIED_MANIFEST)) {
            try {
                const v = parseVerifiedManifest((await store.readText(paths.verified))!, `${store.location}/${paths.verified}`);
                l.verified = { verifiedAt: v.verifiedAt, ok: v.ok, durationMs: v.durationMs };
            } catch (e) {
                l.problems.push((e as Error).message);
            }
        }
        out.push(l);
    }
    return out;
}

export interface LoadedBackup {
    backup: BackupManifest;
    shards: ShardManifest[];
}

/** Cluster names that have backups below the root. */
export async function clustersIn(store: BackupStore): Promise<string[]> {
    return [...new Set((await store.list("")).map((o) => o.key.split("/")[0]))].sort();
}

/**
 * One complete backup: `backupId`, or the newest complete one. Refuses an incomplete
 * backup, and manifests that disagree with backup.json.
 */
export async function loadBackup(store: BackupStore, opts: { clusterName?: string; backupId?: string }): Promise<LoadedBackup> {
    let clusterName = opts.clusterName;
    if (!clusterName) {
        const names = await clustersIn(store);
        if (names.length !== 1) {
            throw new UsageError(names.length === 0 ? `${store.location} holds no backup` : `${store.location} holds backups of several clusters (${names.join(", ")}): name one with --cluster`);
        }
        clusterName = names[0];
    }
    let backupId = opts.backupId;
    if (backupId !== undefined && !BACKUP_ID_RE.test(backupId)) throw new UsageError(`--backup must be a backup id such as 20261201T030000Z (got "${backupId}")`);
    if (!backupId) {
        const complete = (await listBackups(store, { clusterName })).filter((l) => l.complete);
        if (!complete.length) throw new RefusedError(`${store.location}/${clusterName} holds no complete backup (npm run cluster -- backups --from ${store.location} lists them)`);
        backupId = complete[complete.length - 1].backupId;
    }
    const paths = backupPaths(clusterName, backupId);
    const text = await store.readText(paths.backup);
    if (text === undefined) {
        throw new RefusedError(`${store.location}/${paths.dir} is not a complete backup (no ${BACKUP_MANIFEST}): a shard failed or is still running; nothing was restored`);
    }
    try {
        const backup = parseBackupManifest(text, `${store.location}/${paths.backup}`);
        const shards: ShardManifest[] = [];
        for (const s of backup.shards) {
            const m = parseShardManifest((await store.readText(paths.shardManifest(s.shard))) ?? "", `${store.location}/${paths.shardManifest(s.shard)}`);
            if (m.sha256 !== s.sha256 || m.keys !== s.keys || m.bytes !== s.bytes || m.backupId !== backupId) {
                throw new ManifestError(`${store.location}/${paths.shardManifest(s.shard)}`, [`disagrees with ${BACKUP_MANIFEST} (keys, bytes, sha256 or backup id)`]);
            }
            shards.push(m);
        }
        return { backup, shards };
    } catch (e) {
        if (e instanceof ManifestError) throw new RefusedError(e.message);
        throw e;
    }
}
