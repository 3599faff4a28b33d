/**
 * Runs the node backup script as the hook installs it (components/bootstrap/backup.sh
 * without comments) against a harness server, with s3rver and Debian's aws CLI, the
 * way redis-cluster-backup@<id>.service runs it on a node.
 */
import { ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backupScript } from "../../components/bootstrap/backupHook";
import { ADMIN_PASSWORD } from "./cluster";
import type { TestServer } from "./redisServers";
import { AWS_CLI, S3Fixture } from "./s3";

let script: string | undefined;
let lockDir: string | undefined;

export function installedBackupScript(): string {
    if (!script) {
        const dir = mkdtempSync(join(tmpdir(), "rct-backup-sh-"));
        script = join(dir, "redis-cluster-backup");
        writeFileSync(script, backupScript(), { mode: 0o700 });
        lockDir = dir;
    }
    return script;
}

export interface NodeRun {
    code: number | null;
    log: string;
}

/**
 * Claim timing for tests: seconds, not the node defaults (60 s deadline, 120 s lease, 5 s
 * settle, 10 s polls). Each call of Debian's aws CLI took 1.5 s on an idle 2-core machine
 * and 6 to 15 s with six scripts at once on those cores shared with other jobs (load
 * average 19 to 35); a node makes three or four between computing its claim's expiry and
 * its first renewal, and the first candidate makes about five before it claims: the lease
 * and the deadline cover that, and waiting nodes poll every 4 s.
 */
export const FAST_CLAIMS: Record<string, string> = {
    BACKUP_CLAIM_DEADLINE_SEC: "15", BACKUP_CLAIM_LEASE_SEC: "20", BACKUP_CLAIM_RENEW_SEC: "4", BACKUP_CLAIM_GRACE_SEC: "1",
    BACKUP_CLAIM_SETTLE_SEC: "3", BACKUP_CLAIM_POLL_SEC: "4",
};

export function runNodeBackup(s: TestServer, node: { clusterName: string; shard: number; replica: number }, s3: S3Fixture, id: string, env: Record<string, string> = {}): Promise<NodeRun> {
    return spawnNodeBackup(s, node, s3, id, env).done;
}

/** The script in its own process group (`proc.pid` is the group), so a test can kill it with everything it started. */
export function spawnNodeBackup(s: TestServer, node: { clusterName: string; shard: number; replica: number }, s3: S3Fixture, id: string, env: Record<string, string> = {}): { proc: ChildProcess; done: Promise<NodeRun>; logSoFar(): string } {
    const file = installedBackupScript();
    const proc = spawn("bash", [file, "--id", id], {
        detached: true,
        stdio: ["ignore", "ignore", "pipe"],
        env: {
            PATH: process.env.PATH!, ...s3.env,
            CLUSTER_NAME: node.clusterName, NODE_NAME: `${node.clusterName}-s${node.shard}-r${node.replica}`, SHARD: String(node.shard), PORT: String(s.port), TLS: "0",
            CLI_BIN: "redis-cli", BACKUP_HOST: s.host, BACKUP_ROOT: `s3://${s3.bucket}/backups`, BACKUP_S3_ENDPOINT: s3.endpoint,
            BACKUP_ADMIN_PASSWORD: ADMIN_PASSWORD, BACKUP_AWS: AWS_CLI, BACKUP_LOCK_FILE: join(lockDir!, `lock-${s.port}`),
            BACKUP_RETRY_BASE_SEC: "0", BACKUP_ATTEMPTS: "2", ...FAST_CLAIMS,
            ...env,
        },
    });
    let log = "";
    proc.stderr!.on("data", (d) => (log += d));
    // "close", not "exit": the log is complete only once stderr closed.
    return { proc, done: new Promise((r) => proc.on("close", (code) => r({ code, log }))), logSoFar: () => log };
}
