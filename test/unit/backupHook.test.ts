/** The backup hook run for real (under a temporary root, without systemctl), as the bootstrap runs it at boot. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backupHook, backupScript } from "../../components/bootstrap/backupHook";

function runHook(schedule: string, dir: string) {
    const hook = backupHook({ schedule, engineService: "redis6.service", bucket: "my-backups", kmsKeyArn: "arn:aws:kms:us-east-1:1:key/abc" });
    const file = join(dir, hook.name);
    writeFileSync(file, hook.script, { mode: 0o755 });
    const r = spawnSync("bash", [file], {
        encoding: "utf8",
        env: {
            PATH: process.env.PATH, REDIS_BOOTSTRAP_SKIP_SYSTEMD: "1", REDIS_BACKUP_SCRIPT: join(dir, "sbin", "redis-cluster-backup"), REDIS_SYSTEMD_DIR: join(dir, "units"),
            REDIS_CLUSTER_NAME: "c1", REDIS_NODE_NAME: "c1-s2-r1", REDIS_SHARD: "2", REDIS_REPLICA: "1", REDIS_PORT: "6379", REDIS_TLS: "0", REDIS_CLI: "redis6-cli",
            REDIS_SERVICE: "redis6.service", REDIS_CONF_DIR: dir, REDIS_DATA_DIR: join(dir, "data"), REDIS_SSM_PREFIX: "/redis-cluster/c1", BACKUP_BUCKET: "my-backups", AWS_REGION: "us-east-1",
        },
    });
    assert.equal(r.status, 0, r.stderr);
}

test("backup hook: installs the script, its environment, the service and the timer; off removes the timer only", () => {
    const dir = mkdtempSync(join(tmpdir(), "rct-hook-"));
    try {
        runHook("*-*-* 03:30", dir);
        assert.equal(readFileSync(join(dir, "sbin", "redis-cluster-backup"), "utf8"), backupScript());
        assert.equal(statSync(join(dir, "sbin", "redis-cluster-backup")).mode & 0o777, 0o700);
        assert.equal(readFileSync(join(dir, "backup.env"), "utf8"), [
            "CLUSTER_NAME=c1", "NODE_NAME=c1-s2-r1", "SHARD=2", "PORT=6379", "TLS=0", "CLI_BIN=redis6-cli", `CONF_DIR=${dir}`,
            "SSM_PREFIX=/redis-cluster/c1", "AWS_REGION=us-east-1", "BACKUP_ROOT=s3://my-backups/backups", "BACKUP_KMS_KEY_ID=arn:aws:kms:us-east-1:1:key/abc", ""].join("\n"));
        assert.equal(statSync(join(dir, "backup.env")).mode & 0o777, 0o600);
        const service = readFileSync(join(dir, "units", "redis-cluster-backup@.service"), "utf8");
        assert.match(service, new RegExp(`^EnvironmentFile=${dir}/backup.env$`, "m"));
        assert.match(service, /^After=network-online.target redis6.service$/m);
        const timer = readFileSync(join(dir, "units", "redis-cluster-backup.timer"), "utf8");
        assert.match(timer, /^OnCalendar=\*-\*-\* 03:30 UTC$/m);
        assert.doesNotMatch(timer, /Persistent=/);
        const sa = spawnSync("/usr/bin/systemd-analyze", ["calendar", "*-*-* 03:30 UTC"], { encoding: "utf8" });
        assert.equal(sa.status, 0, sa.stderr);

        runHook("off", dir);
        assert.ok(!existsSync(join(dir, "units", "redis-cluster-backup.timer")), "off removes the timer");
        assert.ok(existsSync(join(dir, "units", "redis-cluster-backup@.service")), "off keeps backups on demand");
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test("backup hook: the installed script passes shellcheck", () => {
    const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: backupScript(), encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout);
});
