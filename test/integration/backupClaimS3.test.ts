/**
 * Claims on S3 stores that do and do not honour conditional writes. moto's server honours
 * `If-None-Match: *` as Amazon S3 does (412 for an existing key); s3rver 3.7 ignores it
 * (the last write stays). The node script's conditional path runs here with an aws CLI that
 * can send the header (test/helpers/motoS3.ts); test/integration/nodeBackup.test.ts runs its
 * fallback with Debian's CLI and s3rver.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClusterFixture, loadKeys, startCluster } from "../helpers/cluster";
import { conditionalAwsCli, conditionalS3Unavailable, MotoS3, startMotoS3 } from "../helpers/motoS3";
import { runNodeBackup } from "../helpers/nodeBackup";
import { S3Fixture, startS3 } from "../helpers/s3";
import { openStore } from "../../scripts/backup/store";
import { parseClaim, parseShardManifest } from "../../scripts/backup/manifest";

let moto: MotoS3;
let s3rver: S3Fixture;
let fx: ClusterFixture;
let aws: string;
let tmp: string;

// moto and a CLI that sends If-None-Match come from PyPI (not a registry of this project): skipped, saying why, where absent.
const skip = conditionalS3Unavailable();
if (skip) console.log(`# backupClaimS3 skipped: ${skip}`);

before(async () => {
    if (skip) return;
    aws = conditionalAwsCli();
    tmp = mkdtempSync(join(tmpdir(), "rct-claims3-"));
    [moto, s3rver, fx] = await Promise.all([startMotoS3(), startS3(), startCluster({ masters: 3, replicasPerMaster: 1, acl: true, clusterName: "cs" })]);
    await loadKeys(fx.clusterClient(), 300);
});
after(async () => {
    await Promise.all([moto?.stop(), s3rver?.stop(), fx?.stop()]);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test("S3 store create: moto honours If-None-Match (one of eight creators wins, the object is the winner's); s3rver ignores it, which is why claims are read back", { skip }, async () => {
    Object.assign(process.env, moto.env);
    const honours = openStore(`s3://${moto.bucket}/backups`, { s3Endpoint: moto.endpoint });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => honours.create("c/20261201T030000Z/shard-0.claim", `writer ${i}`)));
    assert.equal(results.filter(Boolean).length, 1, `exactly one creator: ${results}`);
    assert.equal(await honours.readText("c/20261201T030000Z/shard-0.claim"), `writer ${results.indexOf(true)}`);
    assert.equal(await honours.create("c/20261201T030000Z/shard-0.claim", "late"), false);

    Object.assign(process.env, s3rver.env);
    const ignores = openStore(`s3://${s3rver.bucket}/backups`, { s3Endpoint: s3rver.endpoint });
    assert.equal(await ignores.create("c/20261201T030000Z/shard-0.claim", "first"), true);
    assert.equal(await ignores.create("c/20261201T030000Z/shard-0.claim", "second"), true, "s3rver 3.7 ignores If-None-Match on PUT (if this fails, it learned it: good)");
    assert.equal(await ignores.readText("c/20261201T030000Z/shard-0.claim"), "second");
});

test("node backup on a store that honours If-None-Match: when master and replica both rank themselves first, the conditional create picks one, the other waits", { skip }, async () => {
    const id = "20261201T030000Z";
    const [master, replica] = fx.shards[0];
    const env = (lag: string) => ({
        ...moto.env, BACKUP_AWS: aws, BACKUP_S3_ENDPOINT: moto.endpoint, BACKUP_ROOT: `s3://${moto.bucket}/backups`, BACKUP_MAX_LAG_SEC: lag,
    });
    const s3 = { endpoint: moto.endpoint, bucket: moto.bucket, env: moto.env, stop: async () => undefined };
    const [m, r] = await Promise.all([
        runNodeBackup(master, { clusterName: "cs", shard: 0, replica: 0 }, s3, id, { ...env("-1"), BACKUP_LOCK_FILE: join(tmp, "lock-m") }),
        runNodeBackup(replica, { clusterName: "cs", shard: 0, replica: 1 }, s3, id, { ...env("10"), BACKUP_LOCK_FILE: join(tmp, "lock-r") }),
    ]);
    assert.equal(m.code, 0, m.log);
    assert.equal(r.code, 0, r.log);
    for (const x of [m, r]) assert.doesNotMatch(x.log, /cannot send If-None-Match/, "the conditional path ran");
    const uploaders = [m, r].filter((x) => /backing up shard 0 /.test(x.log));
    assert.equal(uploaders.length, 1, `${m.log}\n${r.log}`);
    const loser = uploaders[0] === m ? r : m;
    assert.match(loser.log, /shard-0\.claim was created by another node first|shard 0 is claimed by/);
    Object.assign(process.env, moto.env);
    const st = openStore(`s3://${moto.bucket}/backups`, { s3Endpoint: moto.endpoint });
    const c = parseClaim((await st.readText(`cs/${id}/shard-0.claim`))!, "claim");
    const manifest = parseShardManifest((await st.readText(`cs/${id}/shard-0.json`))!, "manifest");
    assert.equal(manifest.nodeName, c.nodeName, "the claim names the node that uploaded");
});
