/**
 * Writes backups in the real layout (scripts/backup/manifest.ts) into any store, for
 * readers of the layout (monitoring): shard manifests, then backup.json built by the
 * manifest module, then verified.json, in the order the writers use.
 */
import { createHash } from "node:crypto";
import { backupIdOf, backupPaths, buildBackupManifest, ShardManifest, VerifiedManifest } from "../../scripts/backup/manifest";
import { BackupStore } from "../../scripts/backup/store";

export interface FakeBackup {
    /** The schedule slot (the backup id). */
    at: Date;
    /** When backup.json was written; undefined: an unfinished backup (shard manifests only). */
    completedAt?: Date;
    /** verified.json's verifiedAt and ok. */
    verified?: { at: Date; ok: boolean };
    shards?: number;
}

export async function writeBackup(store: BackupStore, clusterName: string, b: FakeBackup): Promise<string> {
    const backupId = backupIdOf(b.at);
    const paths = backupPaths(clusterName, backupId);
    const shards: ShardManifest[] = [];
    const n = b.shards ?? 2;
    for (let shard = 0; shard < n; shard++) {
        const rdb = Buffer.from(`REDIS0010 shard ${shard} of ${backupId}`);
        await store.write(paths.rdb(shard), rdb);
        const m: ShardManifest = {
            version: 1, backupId, clusterName, shard, nodeName: `${clusterName}-s${shard}-r1`, nodeId: "a".repeat(40), role: "replica",
            slots: [[shard * 100, shard * 100 + 99]], keys: 10, engine: "redis", engineVersion: "7.0.15", rdbVersion: 10,
            bytes: rdb.length, sha256: createHash("sha256").update(rdb).digest("hex"), startedAt: b.at.toISOString(), endedAt: b.at.toISOString(),
        };
        await store.write(paths.shardManifest(shard), JSON.stringify(m));
        shards.push(m);
    }
    if (b.completedAt) await store.write(paths.backup, JSON.stringify(buildBackupManifest(shards, n, b.completedAt)));
    if (b.verified) {
        const v: VerifiedManifest = {
            version: 1, backupId, verifiedAt: b.verified.at.toISOString(), ok: b.verified.ok, durationMs: 1234, keys: 10 * n,
            shards: shards.map((s) => ({ shard: s.shard, keysExpected: 10, keysRestored: b.verified!.ok ? 10 : 9, digestOk: b.verified!.ok })),
        };
        await store.write(paths.verified, JSON.stringify(v));
    }
    return backupId;
}
