/**
 * The node backup script (components/bootstrap/backup.sh, as the hook installs it) as systemd runs it on every
 * node at the slot, against a real 3-shard cluster (1 replica each), s3rver on loopback
 * and Debian's aws CLI with --endpoint-url.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeRun, runNodeBackup } from "../helpers/nodeBackup";
import { ClusterFixture, loadKeys, startCluster } from "../helpers/cluster";
import { killServer, TestServer } from "../helpers/redisServers";
import { AWS_CLI, S3Fixture, startS3 } from "../helpers/s3";
import { openStore } from "../../scripts/backup/store";
import { parseBackupManifest, parseShardManifest } from "../../scripts/backup/manifest";

let fx: ClusterFixture;
let s3: S3Fixture;
let tmp: string;

before(async () => {
    if (!existsSync(AWS_CLI)) throw new Error(`${AWS_CLI} is missing: apt-get install -y awscli`);
    tmp = mkdtempSync(join(tmpdir(), "rct-nodebackup-"));
    [fx, s3] = await Promise.all([startCluster({ masters: 3, replicasPerMaster: 1, acl: true, clusterName: "nb" }), startS3()]);
    await loadKeys(fx.clusterClient(), 3000);
});
after(async () => {
    await Promise.all([fx?.stop(), s3?.stop()]);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function runScript(s: TestServer, shard: number, replica: number, id: string, env: Record<string, string> = {}): Promise<NodeRun> {
    return runNodeBackup(s, { clusterName: fx.clusterName, shard, replica }, s3, id, { BACKUP_LOCK_FILE: join(tmp, `lock-${s.port}`), ...env });
}

/** Every node runs the script for the same slot, as their timers do. */
async function runAll(id: string, env: Record<string, string> = {}) {
    return Promise.all(fx.shards.flatMap((sh, shard) => sh.map(async (s, replica) => {
        if (s.proc.exitCode !== null || s.proc.signalCode !== null) return undefined;
        return { shard, replica, ...(await runScript(s, shard, replica, id, env)) };
    })));
}

const store = () => openStore(`s3://${s3.bucket}/backups`, { s3Endpoint: s3.endpoint });

test("node backup: one node per shard (the in-sync replica), RDBs and manifests land in the layout, the last shard writes backup.json", async () => {
    Object.assign(process.env, s3.env);
    const id = "20261201T030000Z";
    const runs = (await runAll(id)).filter((r) => r !== undefined)!;
    for (const r of runs) assert.equal(r!.code, 0, r!.log);
    const st = store();
    const keys = (await st.list(`nb/${id}/`)).map((o) => o.key.split("/").pop());
    assert.deepEqual(keys, ["backup.json", "shard-0.json", "shard-0.rdb", "shard-1.json", "shard-1.rdb", "shard-2.json", "shard-2.rdb"]);
    let total = 0;
    for (let shard = 0; shard < 3; shard++) {
        const m = parseShardManifest((await st.readText(`nb/${id}/shard-${shard}.json`))!, `shard-${shard}.json`);
        assert.equal(m.role, "replica", `shard ${shard} was backed up by its replica, so the master never forked`);
        assert.equal(m.nodeName, `nb-s${shard}-r1`);
        assert.equal(m.nodeId, await fx.client(fx.shards[shard][1]).call("CLUSTER", "MYID"));
        assert.equal(m.keys, Number(await fx.client(fx.shards[shard][0]).call("DBSIZE")));
        assert.equal(m.engine, "redis");
        assert.equal(m.rdbVersion, 10);
        const h = createHash("sha256");
        let bytes = 0;
        for await (const c of await st.read(`nb/${id}/shard-${shard}.rdb`)) {
            h.update(c);
            bytes += c.length;
        }
        assert.equal(m.sha256, h.digest("hex"));
        assert.equal(m.bytes, bytes);
        const slotCount = m.slots.reduce((a, [x, y]) => a + y - x + 1, 0);
        assert.ok(slotCount > 5000 && slotCount < 5500, `slots ${JSON.stringify(m.slots)}`);
        total += m.keys;
    }
    assert.equal(total, 3000);
    const b = parseBackupManifest((await st.readText(`nb/${id}/backup.json`))!, "backup.json");
    assert.equal(b.totalKeys, 3000);
    assert.deepEqual(b.shards.map((s) => s.shard), [0, 1, 2]);
    const masterLogs = runs.filter((r) => r!.replica === 0).map((r) => r!.log).join("");
    assert.match(masterLogs, /shard 0 is backed up by 127\.0\.0\.1:\d+ .*nothing to do/);
});

test("node backup: a failed upload exits non-zero, says why, and leaves no manifest", async () => {
    Object.assign(process.env, s3.env);
    // The aws CLI as is, except that every upload of an RDB fails (a network cut mid-upload).
    const flaky = join(tmp, "aws-flaky");
    writeFileSync(flaky, `#!/bin/bash\nfor a in "$@"; do [[ $a == *.rdb ]] && { echo "upload failed: connection reset" >&2; exit 1; }; done\nexec ${AWS_CLI} "$@"\n`);
    chmodSync(flaky, 0o755);
    const id = "20261201T040000Z";
    const r = await runScript(fx.shards[0][1], 0, 1, id, { BACKUP_AWS: flaky });
    assert.equal(r.code, 1, r.log);
    assert.match(r.log, /upload of s3:\/\/backups-test\/backups\/nb\/20261201T040000Z\/shard-0\.rdb failed \(attempt 2 of 2\)/);
    assert.match(r.log, /ERROR: upload of .*shard-0\.rdb failed; no manifest written/);
    assert.deepEqual(await store().list(`nb/${id}/`), []);
    // A bucket that does not exist: the real CLI fails on its own.
    const r2 = await runScript(fx.shards[0][1], 0, 1, id, { BACKUP_ROOT: "s3://no-such-bucket/backups" });
    assert.equal(r2.code, 1, r2.log);
    assert.match(r2.log, /ERROR: upload of s3:\/\/no-such-bucket\/backups\/nb\/20261201T040000Z\/shard-0\.rdb failed/);
});

test("node backup: without an in-sync replica the master takes it", async () => {
    Object.assign(process.env, s3.env);
    await killServer(fx.shards[2][1]);
    const id = "20261201T050000Z";
    const r = await runScript(fx.shards[2][0], 2, 0, id);
    assert.equal(r.code, 0, r.log);
    const m = parseShardManifest((await store().readText(`nb/${id}/shard-2.json`))!, "shard-2.json");
    assert.equal(m.role, "master");
    assert.equal(m.nodeName, "nb-s2-r0");
    assert.match(r.log, /1 of 3 shards done/);
});
