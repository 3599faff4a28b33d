/**
 * The backup hook: installs the node backup script (backup.sh) as
 * /usr/local/sbin/redis-cluster-backup, its environment, `redis-cluster-backup@.service`
 * (`npm run cluster -- backup --stack` starts `redis-cluster-backup@<id>` through SSM
 * Run Command) and, unless `backupSchedule` is `off`, `redis-cluster-backup.timer`.
 * With `off` the hook removes a timer an earlier schedule left, and keeps the service
 * for backups on demand. It runs from the bootstrap at every boot (hooks.d), so a
 * changed schedule takes effect with the user data. No `@pulumi/*` import.
 *
 * Size: the script is embedded with full-line comments stripped (about 3 KB of the
 * 16 KB user data once gzip-compressed with the rest); backup.sh is the readable source.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BACKUP_SCHEDULE_OFF, timerCalendar } from "../backupSchedule";
import { BACKUP_PREFIX } from "../naming";

export const BACKUP_HOOK_NAME = "50-backup";
export const BACKUP_SCRIPT_PATH = "/usr/local/sbin/redis-cluster-backup";
export const BACKUP_SERVICE_TEMPLATE = "redis-cluster-backup@.service";
export const BACKUP_TIMER = "redis-cluster-backup.timer";
/** The instance the timer starts: the script derives the id from the minute the timer fired. */
export const SCHEDULED_INSTANCE = "redis-cluster-backup@scheduled.service";
/** The unit `backup --stack` starts on every node for a backup id. */
export const backupUnitFor = (backupId: string) => `redis-cluster-backup@${backupId}.service`;
/** Key prefix of a cluster's backups in the backup bucket. */
export const backupS3Prefix = (clusterName: string) => `${BACKUP_PREFIX}${clusterName}/`;
/** The backup root in the bucket (the layout of scripts/backup/manifest.ts starts below it). */
export const backupS3Root = (bucket: string) => `s3://${bucket}/${BACKUP_PREFIX.replace(/\/$/, "")}`;

let script: string | undefined;
/** backup.sh as installed on the node: full-line comments and blank lines stripped, the shebang kept. */
export function backupScript(): string {
    script ??= readFileSync(join(__dirname, "backup.sh"), "utf8")
        .split("\n")
        .filter((l, i) => i === 0 || (!/^\s*#/.test(l) && l.trim() !== ""))
        .join("\n") + "\n";
    return script;
}

export interface BackupHookInput {
    /** `backupSchedule` from the stack config (already validated). */
    schedule: string;
    /** The engine's systemd unit, so a backup waits for it. */
    engineService: string;
    /** Backup bucket name; the root is s3://<bucket>/backups. */
    bucket: string;
    /** KMS key for server-side encryption of the uploads. */
    kmsKeyArn?: string;
}

function unitFiles(input: BackupHookInput): { service: string; timer?: string } {
    const service = [
        "[Unit]",
        "Description=Redis Cluster backup of this node's shard to S3 (%i)",
        "Wants=network-online.target",
        `After=network-online.target ${input.engineService}`,
        "",
        "[Service]",
        "Type=oneshot",
        "EnvironmentFile=${ENV_FILE}",
        "Environment=HOME=/root",
        `ExecStart=${BACKUP_SCRIPT_PATH} --id %i`,
        // The upload must not compete with the engine for CPU and disk.
        "Nice=10",
        "IOSchedulingClass=idle",
        "TimeoutStartSec=12h",
    ].join("\n");
    if (input.schedule === BACKUP_SCHEDULE_OFF) return { service };
    const timer = [
        "[Unit]",
        "Description=Scheduled Redis Cluster backup (stack config backupSchedule)",
        "",
        "[Timer]",
        `OnCalendar=${timerCalendar(input.schedule)}`,
        // Every node must fire in the same minute: it is the backup id. No Persistent=: a
        // catch-up run after boot would get an id of its own, apart from the other shards.
        "AccuracySec=1s",
        `Unit=${SCHEDULED_INSTANCE}`,
        "",
        "[Install]",
        "WantedBy=timers.target",
    ].join("\n");
    return { service, timer };
}

/** The hook script (`hooks` entry of the user data). */
export function backupHook(input: BackupHookInput): { name: string; script: string } {
    const { service, timer } = unitFiles(input);
    for (const [k, v] of Object.entries({ bucket: input.bucket, kmsKeyArn: input.kmsKeyArn ?? "" })) {
        // `<...>` placeholders come from `npm run render`, which shows a node's user data before deploy.
        if (!/^[A-Za-z0-9:/._-]*$/.test(v) && !/^<[\w ]+>$/.test(v)) throw new Error(`backupHook: ${k} must be a plain name or ARN (got ${JSON.stringify(v)})`);
    }
    const env = [
        // The bootstrap hands every hook the node's values (bootstrap.sh, "Hooks").
        `CLUSTER_NAME=$REDIS_CLUSTER_NAME`, `NODE_NAME=$REDIS_NODE_NAME`, `SHARD=$REDIS_SHARD`, `PORT=$REDIS_PORT`,
        `TLS=$REDIS_TLS`, `CLI_BIN=$REDIS_CLI`, `CONF_DIR=$REDIS_CONF_DIR`, `SSM_PREFIX=$REDIS_SSM_PREFIX`, `AWS_REGION=$AWS_REGION`,
        `BACKUP_ROOT=${backupS3Root(input.bucket)}`, `BACKUP_KMS_KEY_ID=${input.kmsKeyArn ?? ""}`,
    ];
    const lines = [
        "#!/bin/bash",
        `# Rendered by components/bootstrap/backupHook.ts: backups ${input.schedule === BACKUP_SCHEDULE_OFF ? "on demand only (backupSchedule off)" : `on ${timerCalendar(input.schedule)}`}.`,
        "set -euo pipefail",
        `SBIN=\${REDIS_BACKUP_SCRIPT:-${BACKUP_SCRIPT_PATH}}`,
        "UNITS=${REDIS_SYSTEMD_DIR:-/etc/systemd/system}",
        'ENV_FILE="$REDIS_CONF_DIR/backup.env"',
        'mkdir -p "$(dirname "$SBIN")" "$UNITS"',
        "cat >\"$SBIN.tmp\" <<'BACKUP_SH_EOF'",
        backupScript().trimEnd(),
        "BACKUP_SH_EOF",
        'chmod 0700 "$SBIN.tmp" && mv -f "$SBIN.tmp" "$SBIN"',
        'cat >"$ENV_FILE" <<EOF',
        ...env,
        "EOF",
        'chmod 0600 "$ENV_FILE"',
        `cat >"$UNITS/${BACKUP_SERVICE_TEMPLATE}" <<EOF`,
        service,
        "EOF",
    ];
    if (timer) {
        lines.push(`cat >"$UNITS/${BACKUP_TIMER}" <<'EOF'`, timer, "EOF");
        lines.push(
            '[[ ${REDIS_BOOTSTRAP_SKIP_SYSTEMD:-} == 1 ]] && exit 0',
            "systemctl daemon-reload",
            `systemctl enable --now ${BACKUP_TIMER}`,
        );
    } else {
        lines.push(
            `if [[ -f "$UNITS/${BACKUP_TIMER}" ]]; then`,
            `  [[ \${REDIS_BOOTSTRAP_SKIP_SYSTEMD:-} == 1 ]] || systemctl disable --now ${BACKUP_TIMER} || true`,
            `  rm -f "$UNITS/${BACKUP_TIMER}"`,
            "fi",
            '[[ ${REDIS_BOOTSTRAP_SKIP_SYSTEMD:-} == 1 ]] || systemctl daemon-reload',
        );
    }
    return { name: BACKUP_HOOK_NAME, script: lines.join("\n") + "\n" };
}
