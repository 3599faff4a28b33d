/**
 * `backup --stack` (SSM Run Command fed by a runner that runs the real node script
 * against the harness nodes, s3rver and Debian's aws CLI), `backups` and `backup verify`
 * on what it wrote.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { ClusterFixture, loadKeys, startCluster } from "../helpers/cluster";
import { capturedOutput } from "../helpers/output";
import { AWS_CLI, S3Fixture, startS3 } from "../helpers/s3";
import { runNodeBackup } from "../helpers/nodeBackup";
import { run as backup } from "../../scripts/commands/backup";
import { run as backups } from "../../scripts/commands/backups";
import { run as verify } from "../../scripts/commands/verify";
import { NodeCommandRunner } from "../../scripts/backup/nodeRunner";
import { openStore } from "../../scripts/backup/store";
import { parseShardManifest, parseVerifiedManifest } from "../../scripts/backup/manifest";
import { ADMIN_PASSWORD } from "../helpers/cluster";

let fx: ClusterFixture;
let s3: S3Fixture;
let outputs: Record<string, unknown>;

function io(json = false) {
    const c = capturedOutput({ json });
    return { ...c, ctx: { out: c.out, signal: new AbortController().signal } };
}

/** The result document of a --json run: the last line, after the NDJSON progress events. */
function resultDoc(stdout: string): any {
    return JSON.parse(stdout.trim().split("\n").pop()!);
}

before(async () => {
    if (!existsSync(AWS_CLI)) throw new Error(`${AWS_CLI} is missing: apt-get install -y awscli`);
    [fx, s3] = await Promise.all([startCluster({ masters: 3, replicasPerMaster: 1, acl: true, clusterName: "cmd" }), startS3()]);
    Object.assign(process.env, s3.env);
    await loadKeys(fx.clusterClient(), 2000);
    const nodes = fx.shards.flatMap((sh, shard) => sh.map((s, r) => ({ ...fx.nodeOf(s, shard, r), instanceId: `i-${shard}${r}` })));
    outputs = { topology: { clusterName: fx.clusterName, port: nodes[0].port, tls: false, nodes }, adminCredentials: { user: "admin", password: ADMIN_PASSWORD }, backupBucketName: s3.bucket };
});
after(async () => {
    await Promise.all([fx?.stop(), s3?.stop()]);
});

/** SSM as the nodes see it: the command runs `systemctl start redis-cluster-backup@<id>.service`, i.e. the node script with that id. */
const runner: NodeCommandRunner & { commands: string[] } = {
    commands: [],
    async run(targets, command, opts) {
        this.commands.push(command);
        const id = /redis-cluster-backup@(\w+)\.service/.exec(command)![1];
        return Promise.all(targets.map(async (t) => {
            const [, shard, replica] = /^i-(\d)(\d)$/.exec(t.instanceId)!.map(Number);
            const r = await runNodeBackup(fx.shards[shard][replica], { clusterName: fx.clusterName, shard, replica }, s3, id);
            const res = { ...t, ok: r.code === 0, status: r.code === 0 ? "Success" : "Failed", output: r.log };
            opts.onDone?.(res);
            return res;
        }));
    },
};

test("backup --stack: every node's backup service started through the runner; the chosen replicas upload; backups lists it, verify restores it", async () => {
    const b = io(true);
    const code = await backup({ stack: "prod", s3Endpoint: s3.endpoint, json: true }, b.ctx, { readStackOutputs: async () => outputs, runner, now: () => new Date("2026-12-01T03:00:00Z") });
    assert.equal(code, 0, b.stderr());
    assert.match(runner.commands[0], /^systemctl start redis-cluster-backup@20261201T030000Z\.service; rc=\$\?; journalctl -u redis-cluster-backup@20261201T030000Z\.service/);
    const doc = resultDoc(b.stdout());
    assert.equal(doc.totalKeys, 2000);
    assert.equal(doc.location, `s3://${s3.bucket}/backups/cmd/20261201T030000Z`);

    const list = io();
    assert.equal(await backups({ from: `s3://${s3.bucket}/backups`, s3Endpoint: s3.endpoint }, list.ctx), 0, list.stderr());
    assert.match(list.stdout(), /^cmd\s+20261201T030000Z\s+2026-12-01T03:00:00Z\s+3\s+2000\s+[\d.]+ KiB\s+yes\s+ok\s+-$/m);

    const v = io();
    assert.equal(await verify({ stack: "prod", s3Endpoint: s3.endpoint }, v.ctx, { readStackOutputs: async () => outputs }), 0, v.stderr());
    assert.match(v.stdout(), /^verify cmd\/20261201T030000Z: OK, 3 shards, 2000 keys restored, checksums and counts match the manifests; restore took [\d.]+ (ms|s)/m);
    const store = openStore(`s3://${s3.bucket}/backups`, { s3Endpoint: s3.endpoint });
    for (let shard = 0; shard < 3; shard++) {
        const m = parseShardManifest((await store.readText(`cmd/20261201T030000Z/shard-${shard}.json`))!, "shard manifest");
        assert.deepEqual([m.role, m.nodeName], ["replica", `cmd-s${shard}-r1`]);
    }
    const verified = parseVerifiedManifest((await store.readText("cmd/20261201T030000Z/verified.json"))!, "verified.json");
    assert.equal(verified.ok, true);
    assert.deepEqual(verified.shards.map((s) => [s.keysExpected === s.keysRestored, s.digestOk]), [[true, true], [true, true], [true, true]]);

    // A damaged RDB: the listing says so, and exits 1.
    await store.write("cmd/20261201T030000Z/shard-1.rdb", Buffer.from("REDIS0010 not really"));
    const damaged = io();
    assert.equal(await backups({ from: `s3://${s3.bucket}/backups`, s3Endpoint: s3.endpoint }, damaged.ctx), 1);
    assert.match(damaged.stdout(), /mismatch/);
    assert.match(damaged.stdout(), /shard-1\.rdb: 20 bytes, sha256 [0-9a-f]{64}; the manifest says \d+ bytes/);
});
