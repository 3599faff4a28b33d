/**
 * Backups under Pulumi mocks: the backup hook in every node's user data (the timer
 * only when a schedule is set), and the node role limited to the cluster's backup prefix.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { byType, runStack, T, userDataOf } from "./harness";

test("backups: every node's user data installs the backup script, service and timer on the schedule", async () => {
    const r = await runStack("dev", { "redis-cluster:backupSchedule": "*-*-* 03:30" });
    const instances = byType(r, T.instance);
    assert.ok(instances.length >= 6);
    const kms = byType(r, T.kmsKey)[0];
    for (const i of instances) {
        const ud = userDataOf(i);
        assert.match(ud, /tpl_hook_0 \| write_file "\$HOOKS_DIR\/50-backup" 0755 root:root/);
        assert.match(ud, /^OnCalendar=\*-\*-\* 03:30 UTC$/m, "timer on the schedule, in UTC");
        assert.match(ud, /^Unit=redis-cluster-backup@scheduled\.service$/m);
        assert.match(ud, /^systemctl enable --now redis-cluster-backup\.timer$/m);
        assert.match(ud, /^ExecStart=\/usr\/local\/sbin\/redis-cluster-backup --id %i$/m);
        assert.match(ud, /^BACKUP_ROOT=s3:\/\/[^/\s]+\/backups$/m);
        assert.match(ud, /^BACKUP_KMS_KEY_ID=arn:aws:kms:/m);
        assert.ok(kms, "a KMS key is registered");
        assert.match(ud, /aws_ s3 cp --only-show-errors "\$\{sse\[@\]\}" "\$LINK"/, "the node backup script itself");
    }
});

test("backups: with backupSchedule off no node gets a timer, and an old one is removed", async () => {
    const r = await runStack("dev", { "redis-cluster:backupSchedule": "off" });
    for (const i of byType(r, T.instance)) {
        const ud = userDataOf(i);
        assert.doesNotMatch(ud, /OnCalendar=/);
        assert.doesNotMatch(ud, /enable --now redis-cluster-backup\.timer/);
        assert.match(ud, /systemctl disable --now redis-cluster-backup\.timer/);
        assert.match(ud, /redis-cluster-backup@\.service/, "backups on demand (backup --stack) still work");
    }
});

test("backups: an invalid schedule fails the preview with the key named", async () => {
    await assert.rejects(runStack("dev", { "redis-cluster:backupSchedule": "every day" }), /redis-cluster:backupSchedule must be a systemd OnCalendar expression/);
});

test("backups: the node role may put, get and list only under backups/<clusterName>/, never delete", async () => {
    const r = await runStack("prod");
    const policy = JSON.parse(byType(r, T.rolePolicy).find((x) => x.name.endsWith("-node-policy"))!.inputs.policy);
    const bucketArn = String(byType(r, T.bucket)[0].state.arn ?? byType(r, T.bucket)[0].inputs.arn ?? "");
    assert.match(bucketArn, /^arn:aws:s3:::/);
    const cluster = r.outputs.topology.clusterName;
    const s3 = policy.Statement.filter((s: any) => [s.Action].flat().some((a: string) => a.startsWith("s3:")));
    assert.deepEqual(s3.map((s: any) => s.Sid).sort(), ["ListBackups", "ReadMetricsCollector", "ReadWriteBackups"]);
    // The only other S3 permission: reading the metrics collector bundle, one object, outside backups/.
    const collector = s3.find((s: any) => s.Sid === "ReadMetricsCollector");
    assert.equal(collector.Action, "s3:GetObject");
    assert.match(collector.Resource, new RegExp(`^${bucketArn.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/tools/[^*]+$`));
    const rw = s3.find((s: any) => s.Sid === "ReadWriteBackups");
    assert.deepEqual([rw.Action].flat().sort(), ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]);
    assert.equal(rw.Resource, `${bucketArn}/backups/${cluster}/*`);
    const list = s3.find((s: any) => s.Sid === "ListBackups");
    assert.equal(list.Action, "s3:ListBucket");
    assert.equal(list.Resource, bucketArn);
    assert.deepEqual(list.Condition, { StringLike: { "s3:prefix": [`backups/${cluster}/*`] } });
});
