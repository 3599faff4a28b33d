/**
 * Two AWS Foundational Security Best Practices controls, asserted from what the committed
 * stacks register: S3.9 (server access logging on the backup bucket, into a log bucket of
 * its own that is locked down like the backup bucket and expires its records) and ELB.6
 * (deletion protection on the load balancer, tied to `protectData`).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStackYaml } from "../../components/config";
import { ACCESS_LOG_PREFIX } from "../../components/backupBucket";
import { ACCOUNT, byType, readStack, Registered, RunResult, runStack, T } from "./harness";

const LOGGING = "aws:s3/bucketLogging:BucketLogging";
const OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls";
const isLog = (x: Registered) => x.name.includes("-access-logs");
const logOne = (r: RunResult, type: string) => {
    const all = byType(r, type).filter(isLog);
    assert.equal(all.length, 1, `expected one access-log ${type}, got ${all.length}`);
    return all[0];
};

for (const stack of ["dev", "prod"] as const) {
    const cfg = parseStackYaml(readStack(stack), stack);
    let r: RunResult;

    test(`${stack}: the backup bucket's server access logs go to a bucket of their own (S3.9)`, async () => {
        r = await runStack(stack);
        const buckets = byType(r, T.bucket);
        assert.equal(buckets.length, 2);
        const backup = buckets.find((b) => !isLog(b))!;
        const logs = buckets.find(isLog)!;
        const logging = byType(r, LOGGING);
        assert.equal(logging.length, 1);
        assert.equal(logging[0].inputs.bucket, backup.id);
        assert.equal(logging[0].inputs.targetBucket, logs.id);
        assert.equal(logging[0].inputs.targetPrefix, ACCESS_LOG_PREFIX);
        // Nothing logs into the log bucket itself (a loop) and the backup bucket is not a target.
        assert.ok(!logging.some((l) => l.inputs.bucket === logs.id || l.inputs.targetBucket === backup.id));
    });

    test(`${stack}: the log bucket is locked down like the backup bucket and expires its records`, () => {
        const backup = byType(r, T.bucket).find((b) => !isLog(b))!;
        const logs = byType(r, T.bucket).find(isLog)!;
        const pab = logOne(r, T.publicAccess).inputs;
        assert.equal(pab.bucket, logs.id);
        for (const k of ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"]) assert.equal(pab[k], true, k);
        assert.equal(logOne(r, OWNERSHIP).inputs.rule.objectOwnership, "BucketOwnerEnforced");
        assert.equal(logOne(r, T.versioning).inputs.versioningConfiguration.status, "Enabled");
        // S3 log delivery supports SSE-S3 only as the target's default encryption.
        assert.equal(logOne(r, T.sse).inputs.rules[0].applyServerSideEncryptionByDefault.sseAlgorithm, "AES256");
        const policy = JSON.parse(logOne(r, T.bucketPolicy).inputs.policy);
        const deny = policy.Statement.find((s: any) => s.Effect === "Deny" && s.Condition?.Bool?.["aws:SecureTransport"] === "false");
        assert.deepEqual(deny.Resource, [logs.state.arn, `${logs.state.arn}/*`]);
        const allows = policy.Statement.filter((s: any) => s.Effect === "Allow");
        assert.equal(allows.length, 1, "only log delivery may write");
        assert.deepEqual(allows[0].Principal, { Service: "logging.s3.amazonaws.com" });
        assert.equal(allows[0].Action, "s3:PutObject");
        assert.equal(allows[0].Resource, `${logs.state.arn}/${ACCESS_LOG_PREFIX}*`);
        assert.deepEqual(allows[0].Condition, { ArnLike: { "aws:SourceArn": backup.state.arn }, StringEquals: { "aws:SourceAccount": ACCOUNT } });
        const rule = logOne(r, T.lifecycle).inputs.rules[0];
        assert.equal(rule.status, "Enabled");
        assert.equal(rule.expiration.days, cfg.backupExpirationDays);
        assert.ok(rule.noncurrentVersionExpiration.noncurrentDays > 0);
        // Protected, retained and force-destroyable exactly as the backup bucket.
        assert.equal(logs.protect, backup.protect);
        assert.equal(logs.retainOnDelete, backup.retainOnDelete);
        assert.equal(logs.inputs.forceDestroy, backup.inputs.forceDestroy);
        assert.equal(logs.protect, cfg.protectData);
    });

    test(`${stack}: load balancer deletion protection follows protectData (${cfg.protectData}) (ELB.6)`, () => {
        const [lb] = byType(r, T.loadBalancer);
        assert.equal(lb.inputs.enableDeletionProtection, cfg.protectData);
    });
}
