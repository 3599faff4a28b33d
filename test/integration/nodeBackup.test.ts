/**
 * The node backup script (components/bootstrap/backup.sh, as the hook installs it) as systemd runs it on every
 * node at the slot, against a real 3-shard cluster (1 replica each), s3rver on loopback
 * and Debian's aws CLI with --endpoint-url. Claim timing is shortened (FAST_CLAIMS).
 *
 * Debian's aws CLI (2.9) has no --if-none-match and s3rver 3.7 ignores If-None-Match
 * on PUT, so these runs exercise the claim's fallback (look, put, settle, read back);
 * test/integration/backupClaimS3.test.ts runs the conditional create against a store that honours it.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FAST_CLAIMS, NodeRun, runNodeBackup, spawnNodeBackup } from "../helpers/nodeBackup";
import { ADMIN_PASSWORD, ClusterFixture, loadKeys, startCluster } from "../helpers/cluster";
import type { TestServer } from "../helpers/redisServers";
import { AWS_CLI, S3Fixture, startS3 } from "../helpers/s3";
import { openStore } from "../../scripts/backup/store";
import { parseBackupManifest, parseClaim, parseShardManifest } from "../../scripts/backup/manifest";
import { listBackups } from "../../scripts/backup/catalog";
import { waitUntil } from "../../scripts/redis/clusterView";

let fx: ClusterFixture;
let s3: S3Fixture;
let tmp: string;

before(async () => {
    if (!existsSync(AWS_CLI)) throw new Error(`${AWS_CLI} is missing: apt-get install -y awscli`);
    tmp = mkdtempSync(join(tmpdir(), "rct-nodebackup-"));
    [fx, s3] = await Promise.all([startCluster({ masters: 3, replicasPerMaster: 1, acl: true, clusterName: "nb" }), startS3()]);
    await loadKeys(fx.clusterClient(), 3000);
    Object.assign(process.env, s3.env);
});
after(async () => {
    await Promise.all([fx?.stop(), s3?.stop()]);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function runScript(s: TestServer, shard: number, replica: number, id: string, env: Record<string, string> = {}): Promise<NodeRun> {
    return runNodeBackup(s, { clusterName: fx.clusterName, shard, replica }, s3, id, { BACKUP_LOCK_FILE: join(tmp, `lock-${s.port}`), ...env });
}

type Run = NodeRun & { shard: number; replica: number };
/** Every node runs the script for the same slot, as their timers do; `env(shard, replica)` per node. */
async function runAll(id: string, env: (shard: number, replica: number) => Record<string, string> = () => ({})): Promise<Run[]> {
    const runs = await Promise.all(fx.shards.flatMap((sh, shard) => sh.map(async (s, replica) => {
        if (s.proc.exitCode !== null || s.proc.signalCode !== null) return undefined;
        return { shard, replica, ...(await runScript(s, shard, replica, id, env(shard, replica))) };
    })));
    return runs.filter((r): r is Run => r !== undefined);
}

const store = () => openStore(`s3://${s3.bucket}/backups`, { s3Endpoint: s3.endpoint });
const uploaders = (runs: Run[], shard: number) => runs.filter((r) => r.shard === shard && new RegExp(`backing up shard ${shard} `).test(r.log));

async function rdbMatchesManifest(id: string, shard: number) {
    const st = store();
    const m = parseShardManifest((await st.readText(`nb/${id}/shard-${shard}.json`))!, `shard-${shard}.json`);
    const h = createHash("sha256");
    let bytes = 0;
    for await (const c of await st.read(`nb/${id}/shard-${shard}.rdb`)) {
        h.update(c);
        bytes += c.length;
    }
    assert.equal(m.sha256, h.digest("hex"), `shard ${shard}: the RDB is the one its manifest describes`);
    assert.equal(m.bytes, bytes);
    return m;
}

async function objectStamp(key: string): Promise<string> {
    const { S3Client, HeadObjectCommand } = await import("@aws-sdk/client-s3");
    const c = new S3Client({ region: "us-east-1", endpoint: s3.endpoint, forcePathStyle: true });
    const h = await c.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `backups/${key}` }));
    return `${h.ETag} ${h.LastModified?.toISOString()}`;
}

test("node backup: all nodes at the same moment: one upload per shard, by the in-sync replica that claimed it; the last shard writes backup.json", async () => {
    const id = "20261201T030000Z";
    // A deadline no loaded machine reaches: this test is about the rule, not the fallback.
    const runs = await runAll(id, () => ({ BACKUP_CLAIM_DEADLINE_SEC: "120" }));
    for (const r of runs) assert.equal(r.code, 0, r.log);
    const st = store();
    const keys = (await st.list(`nb/${id}/`)).map((o) => o.key.split("/").pop());
    assert.deepEqual(keys, ["backup.json", "shard-0.claim", "shard-0.json", "shard-0.rdb", "shard-1.claim", "shard-1.json", "shard-1.rdb", "shard-2.claim", "shard-2.json", "shard-2.rdb"]);
    let total = 0;
    for (let shard = 0; shard < 3; shard++) {
        assert.deepEqual(uploaders(runs, shard).map((r) => r.replica), [1], `shard ${shard}: exactly one node uploaded, the replica`);
        const m = await rdbMatchesManifest(id, shard);
        assert.equal(m.role, "replica", `shard ${shard} was backed up by its replica, so the master never forked`);
        assert.equal(m.nodeName, `nb-s${shard}-r1`);
        assert.equal(m.nodeId, await fx.client(fx.shards[shard][1]).call("CLUSTER", "MYID"));
        assert.equal(m.keys, Number(await fx.client(fx.shards[shard][0]).call("DBSIZE")));
        assert.equal(m.engine, "redis");
        assert.equal(m.rdbVersion, 10);
        const slotCount = m.slots.reduce((a, [x, y]) => a + y - x + 1, 0);
        assert.ok(slotCount > 5000 && slotCount < 5500, `slots ${JSON.stringify(m.slots)}`);
        total += m.keys;
        const c = parseClaim((await st.readText(`nb/${id}/shard-${shard}.claim`))!, "claim");
        assert.deepEqual([c.nodeName, c.role, c.generation, c.reason], [`nb-s${shard}-r1`, "replica", 1, "in-sync replica with the smallest node id"]);
    }
    assert.equal(total, 3000);
    const b = parseBackupManifest((await st.readText(`nb/${id}/backup.json`))!, "backup.json");
    assert.equal(b.totalKeys, 3000);
    assert.deepEqual(b.shards.map((s) => s.shard), [0, 1, 2]);
    const masterLogs = runs.filter((r) => r.replica === 0).map((r) => r.log).join("");
    assert.match(masterLogs, /shard 0 was backed up by nb-s0-r1 \(replica\): nothing to do/);
});

test("node backup: a second run of the same slot uploads nothing (every node finds the shard's manifest)", async () => {
    const id = "20261201T030000Z";
    const names = [0, 1, 2].flatMap((s) => [`nb/${id}/shard-${s}.rdb`, `nb/${id}/shard-${s}.json`]);
    const before = await Promise.all(names.map(objectStamp));
    const runs = await runAll(id);
    for (const r of runs) {
        assert.equal(r.code, 0, r.log);
        assert.match(r.log, /was backed up by nb-s\d-r1 \(replica\): nothing to do/);
        assert.doesNotMatch(r.log, /backing up shard|BGSAVE/);
    }
    assert.deepEqual(await Promise.all(names.map(objectStamp)), before, "no RDB or manifest was written again");
});

test("node backup: when two nodes of a shard each think they are the one (views differ), the claim lets exactly one upload", async () => {
    const id = "20261201T031000Z";
    // The masters see no replica in sync (a lag bound nothing meets), the replicas see themselves in sync: each node
    // of every shard is first by its own reading, as when a replica's lag crosses the bound between two reads.
    const runs = await runAll(id, (_shard, replica): Record<string, string> => (replica === 0 ? { BACKUP_MAX_LAG_SEC: "-1" } : {}));
    for (const r of runs) assert.equal(r.code, 0, r.log);
    for (let shard = 0; shard < 3; shard++) {
        const up = uploaders(runs, shard);
        assert.equal(up.length, 1, `shard ${shard}: one upload, not ${up.length}:\n${runs.filter((r) => r.shard === shard).map((r) => r.log).join("\n")}`);
        const m = await rdbMatchesManifest(id, shard);
        assert.equal(m.nodeName, `nb-s${shard}-r${up[0].replica}`);
        const c = parseClaim((await store().readText(`nb/${id}/shard-${shard}.claim`))!, "claim");
        assert.equal(c.nodeName, m.nodeName, "the claim names the node that uploaded");
    }
    assert.ok(await store().readText(`nb/${id}/backup.json`));
});

test("node backup: one slot, a different trouble per shard: a replica whose link is down, a claiming replica that dies, a replica whose timer never ran", async () => {
    const id = "20261201T032000Z";
    // Shard 0: the replica's replication link is down (it cannot authenticate to its master).
    const [m0, r0] = fx.shards[0];
    await fx.client(r0).call("CONFIG", "SET", "masterauth", "wrong-password");
    // Shard 1: the replica claims, starts a slow save (about 30 s for its ~1000 keys) and is killed before any upload.
    const [m1, r1] = fx.shards[1];
    await fx.client(r1).call("CONFIG", "SET", "rdb-key-save-delay", "30000");
    try {
        await fx.client(r0).call("CLIENT", "KILL", "TYPE", "master");
        await waitUntil(async () => /master_link_status:down/.test(String(await fx.client(r0).call("INFO", "replication"))) &&
            !/^slave\d+:/m.test(String(await fx.client(m0).call("INFO", "replication"))), { timeoutMs: 10_000, what: "shard 0's replica link to go down" });
        const t0 = Date.now();
        const dying = spawnNodeBackup(r1, { clusterName: "nb", shard: 1, replica: 1 }, s3, id, { BACKUP_LOCK_FILE: join(tmp, `lock-${r1.port}`) });
        // Shard 2: only the master runs (the replica's timer did not fire). Shard 1's master gets a deadline no
        // loaded machine reaches, so that the replica claims first whatever the load: its takeover does not wait for it.
        const runs = Promise.all([runScript(m0, 0, 0, id), runScript(r0, 0, 1, id), runScript(m1, 1, 0, id, { BACKUP_CLAIM_DEADLINE_SEC: "120" }), runScript(fx.shards[2][0], 2, 0, id)]);
        // Killed once its save runs and its claim was renewed once (a new claim carries two leases, a renewed one one).
        await waitUntil(async () => {
            if (!/BGSAVE: /.test(dying.logSoFar())) return false;
            const text = await store().readText(`nb/${id}/shard-1.claim`);
            const c = text === undefined ? undefined : parseClaim(text, "claim");
            return c !== undefined && c.nodeName === "nb-s1-r1" && c.renewedAt !== c.claimedAt;
        }, { timeoutMs: 120_000, intervalMs: 500, maxIntervalMs: 500, what: "shard 1's replica to start its BGSAVE and renew its claim" });
        process.kill(-dying.proc.pid!, "SIGKILL");
        const killedAt = Date.now();
        assert.equal((await dying.done).code, null, "killed");
        const [s0m, s0r, s1m, s2m] = await runs;
        for (const r of [s0m, s0r, s1m, s2m]) assert.equal(r.code, 0, r.log);
        const st = store();

        // Shard 0: the master, at once (no deadline: it is the first candidate when no replica is in sync).
        assert.match(s0m.log, /backing up shard 0 as master .* \(master: no replica in sync\)/);
        assert.match(s0r.log, /not in sync, so not a candidate: nothing to do/);
        assert.equal((await rdbMatchesManifest(id, 0)).nodeName, "nb-s0-r0");

        // Shard 1: the master took the dead replica's claim over, once it had expired.
        assert.match(s1m.log, /backing up shard 1 as master .* \(takeover: the claim of nb-s1-r1 \(127\.0\.0\.1:\d+\) expired at .* without a manifest\)/);
        assert.ok(Date.now() - killedAt >= 1000, "not before the claim expired");
        const first = parseClaim((await st.readText(`nb/${id}/shard-1.claim`))!, "claim");
        const takeover = parseClaim((await st.readText(`nb/${id}/shard-1.takeover.claim`))!, "takeover");
        assert.deepEqual([first.nodeName, first.generation, takeover.nodeName, takeover.generation], ["nb-s1-r1", 1, "nb-s1-r0", 2]);
        assert.equal((await rdbMatchesManifest(id, 1)).nodeName, "nb-s1-r0");

        // Shard 2: the master claimed once the replica had not within one claim deadline.
        const c2 = parseClaim((await st.readText(`nb/${id}/shard-2.claim`))!, "claim");
        assert.equal(c2.nodeName, "nb-s2-r0");
        assert.match(c2.reason, new RegExp(String.raw`^candidate 1 after 127\.0\.0\.1:\d+: nobody claimed the shard within ${FAST_CLAIMS.BACKUP_CLAIM_DEADLINE_SEC}s$`));
        assert.ok(Date.parse(c2.claimedAt) - t0 >= Number(FAST_CLAIMS.BACKUP_CLAIM_DEADLINE_SEC) * 1000 - 1000, "the master waited one claim deadline first");
        assert.equal((await rdbMatchesManifest(id, 2)).role, "master");
        assert.ok(await st.readText(`nb/${id}/backup.json`), "the last shard wrote backup.json");
    } finally {
        await fx.client(r1).call("CONFIG", "SET", "rdb-key-save-delay", "0");
        await fx.client(r0).call("CONFIG", "SET", "masterauth", ADMIN_PASSWORD);
        await waitUntil(async () => /master_link_status:up/.test(String(await fx.client(r0).call("INFO", "replication"))), { timeoutMs: 20_000, what: "shard 0's replica link to come back" });
    }
});

test("node backup: a failed upload exits non-zero, says why, marks its claim failed and leaves no manifest; backups lists the shard as claimed, unfinished", async () => {
    // The aws CLI as is, except that every upload of an RDB fails (a network cut mid-upload).
    const flaky = join(tmp, "aws-flaky");
    writeFileSync(flaky, `#!/bin/bash\nfor a in "$@"; do [[ $a == *.rdb ]] && { echo "upload failed: connection reset" >&2; exit 1; }; done\nexec ${AWS_CLI} "$@"\n`);
    chmodSync(flaky, 0o755);
    const id = "20261201T040000Z";
    const r = await runScript(fx.shards[0][1], 0, 1, id, { BACKUP_AWS: flaky });
    assert.equal(r.code, 1, r.log);
    assert.match(r.log, /upload of s3:\/\/backups-test\/backups\/nb\/20261201T040000Z\/shard-0\.rdb failed \(attempt 2 of 2\)/);
    assert.match(r.log, /ERROR: upload of .*shard-0\.rdb failed; no manifest written/);
    assert.deepEqual((await store().list(`nb/${id}/`)).map((o) => o.key), [`nb/${id}/shard-0.claim`]);
    const c = parseClaim((await store().readText(`nb/${id}/shard-0.claim`))!, "claim");
    assert.equal(c.nodeName, "nb-s0-r1");
    assert.match(c.failed ?? "", /upload of .*shard-0\.rdb failed; no manifest written/);
    assert.ok(Date.parse(c.expiresAt) <= Date.now(), "a failed holder lets its claim expire at once, so another node can take over");
    const [listing] = (await listBackups(store(), { clusterName: "nb" })).filter((l) => l.backupId === id);
    assert.equal(listing.complete, false);
    assert.match(listing.problems.join("\n"), /shard 0: claimed by nb-s0-r1 \(replica, 127\.0\.0\.1:\d+\), no manifest; the holder gave up: upload of/);
    // A bucket that does not exist: the real CLI fails on its own.
    const r2 = await runScript(fx.shards[0][1], 0, 1, id, { BACKUP_ROOT: "s3://no-such-bucket/backups" });
    assert.equal(r2.code, 1, r2.log);
    assert.match(r2.log, /ERROR: cannot list s3:\/\/no-such-bucket\/backups\/nb\/20261201T040000Z\/shard-0\.\*/);
});
