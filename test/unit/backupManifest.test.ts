import { test } from "node:test";
import assert from "node:assert/strict";
import {
    backupIdOf, backupIdTime, backupPaths, buildBackupManifest, ManifestError, parseBackupManifest, parseBackupRoot,
    parseShardManifest, scheduledBackupId, ShardManifest,
} from "../../scripts/backup/manifest";

const shard = (n: number, over: Partial<ShardManifest> = {}): ShardManifest => ({
    version: 1, backupId: "20261201T030000Z", clusterName: "c1", shard: n, nodeName: `c1-s${n}-r1`, nodeId: "a".repeat(40),
    role: "replica", slots: [[n * 100, n * 100 + 99]], keys: 10 + n, engine: "redis", engineVersion: "7.0.15", rdbVersion: 10,
    bytes: 1000 + n, sha256: "b".repeat(64), startedAt: `2026-12-01T03:00:0${n}.000Z`, endedAt: "2026-12-01T03:00:09.000Z", ...over,
});

test("backup id: UTC second of a time, and back; scheduled runs floor to the minute", () => {
    assert.equal(backupIdOf(new Date("2026-12-01T03:00:00.123Z")), "20261201T030000Z");
    assert.equal(backupIdTime("20261201T030000Z")?.toISOString(), "2026-12-01T03:00:00.000Z");
    assert.equal(backupIdTime("20261301T030000Z"), undefined, "month 13");
    assert.equal(backupIdTime("2026-12-01"), undefined);
    // Nodes fire within a second of the slot: all of them get the slot's id.
    assert.equal(scheduledBackupId(new Date("2026-12-01T03:00:00.950Z")), "20261201T030000Z");
    assert.equal(scheduledBackupId(new Date("2026-12-01T03:00:01.400Z")), "20261201T030000Z");
});

test("layout: keys below the root", () => {
    const p = backupPaths("c1", "20261201T030000Z");
    assert.equal(p.rdb(2), "c1/20261201T030000Z/shard-2.rdb");
    assert.equal(p.shardManifest(2), "c1/20261201T030000Z/shard-2.json");
    assert.equal(p.backup, "c1/20261201T030000Z/backup.json");
    assert.equal(p.verified, "c1/20261201T030000Z/verified.json");
});

test("roots: directory or s3://bucket/prefix", () => {
    assert.deepEqual(parseBackupRoot("s3://my-bucket/backups/"), { kind: "s3", bucket: "my-bucket", prefix: "backups" });
    assert.deepEqual(parseBackupRoot("s3://my-bucket"), { kind: "s3", bucket: "my-bucket", prefix: "" });
    assert.deepEqual(parseBackupRoot("./b"), { kind: "dir", path: "./b" });
    assert.throws(() => parseBackupRoot("s3://A_bad/x"), /not an S3 location/);
});

test("shard manifest: round trip, and every problem named", () => {
    const s = shard(0);
    assert.deepEqual(parseShardManifest(JSON.stringify(s), "x"), s);
    const bad = { ...s, version: 2, nodeId: "xyz", slots: [[5, 2]], sha256: "ABC", role: "leader" };
    assert.throws(() => parseShardManifest(JSON.stringify(bad), "s3://b/c1/id/shard-0.json"), (e: unknown) => {
        assert.ok(e instanceof ManifestError);
        assert.match(e.message, /^s3:\/\/b\/c1\/id\/shard-0.json is not a valid manifest/);
        assert.equal(e.problems.length, 5, e.message);
        return true;
    });
    assert.throws(() => parseShardManifest("{", "f"), /not JSON/);
});

test("backup.json: built from the shards, totals checked, missing shard refused", () => {
    const b = buildBackupManifest([shard(1), shard(0), shard(2)], 3, new Date("2026-12-01T03:00:10Z"));
    assert.deepEqual(b.shards.map((s) => s.shard), [0, 1, 2]);
    assert.equal(b.totalKeys, 33);
    assert.equal(b.totalBytes, 3003);
    assert.equal(b.createdAt, "2026-12-01T03:00:00.000Z");
    assert.deepEqual(parseBackupManifest(JSON.stringify(b), "b"), b);
    assert.throws(() => parseBackupManifest(JSON.stringify({ ...b, totalKeys: 1 }), "b"), /totalKeys is 1 but the shards add up to 33/);
    assert.throws(() => buildBackupManifest([shard(0), shard(2)], 3, new Date()), /shard 1 has no manifest/);
    assert.throws(() => buildBackupManifest([shard(0), shard(1, { backupId: "20261201T040000Z" })], 2, new Date()), /belongs to c1\/20261201T040000Z/);
});
