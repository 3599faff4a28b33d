/**
 * User data of a cluster node: a bash script for Amazon Linux 2023 that turns
 * a fresh instance into a healthy Redis Cluster node, and does it again on
 * every boot (it installs itself as `redis-bootstrap.service`).
 *
 * Layout of the rendered script:
 *   1. the node's values as shell variables (no secret: passwords and TLS
 *      material are read from SSM at boot; no cluster-wide setting either:
 *      maxmemory share, policy, timeouts and min-replicas are read from the
 *      SSM node-settings parameter at boot, so changing them never changes
 *      the user data and never stops an instance);
 *   2. the embedded templates (redis.conf, ACL file, units, sysctl) as
 *      `tpl_*` functions with quoted here-documents, rendered by the same
 *      functions local mode and the tests use (redisConf.ts, acl.ts);
 *   3. the body, bootstrap.sh, with full-line comments stripped;
 *   4. `main "$@"`.
 * No `@pulumi/*` import.
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "fflate";
import { join } from "node:path";
import type { UserDataInput } from "./contract";
import { ssmParameterNames, ssmPrefix } from "./contract";
import { aclTemplate } from "./acl";
import { BOOTSTRAP_UNIT, BootstrapPaths, DEFAULT_PATHS, ENGINE_FACTS, nodeFiles, SERVICE_USER } from "./engine";
import { redisConfTemplate } from "./redisConf";

/** EC2 refuses user data above 16 KB (before base64). */
export const USER_DATA_LIMIT_BYTES = 16 * 1024;

/** File descriptors for the engine: maxclients 10000 + 32 reserved, with room to spare. */
export const ENGINE_NOFILE = 65536;

/** Single-quoted shell word. */
export function shq(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * `NAME=value` lines. A value that starts with an earlier variable's value (8
 * characters or more) followed by plain characters is written relative to it
 * (`REDIS_CONF="$CONF_DIR/redis.conf"`, `SSM_APP_PASSWORD="$SSM_PREFIX/acl/app-password"`,
 * `NODE_NAME="$CLUSTER_NAME-s0-r0"`): the same values, a few hundred bytes less
 * of EC2's 16 KB.
 */
export function shellAssignments(vars: [string, string | number][]): string[] {
    const seen: [string, string][] = [];
    return vars.map(([k, v]) => {
        if (typeof v === "number") return `${k}=${v}`;
        const base = seen
            .filter(([, b]) => b.length >= 8 && v.length > b.length && v.startsWith(b) && /^[A-Za-z0-9._/-]+$/.test(v.slice(b.length)))
            .sort((a, b) => b[1].length - a[1].length)[0];
        seen.push([k, v]);
        if (!base) return `${k}=${shq(v)}`;
        const rest = v.slice(base[1].length);
        return `${k}="${/^[A-Za-z0-9_]/.test(rest) ? `\${${base[0]}}` : `$${base[0]}`}${rest}"`;
    });
}

/** A function printing `text` through a quoted here-document (no expansion inside). */
function heredocFunction(name: string, text: string): string {
    const delim = `${name.toUpperCase()}_EOF`;
    if (text.split("\n").includes(delim)) throw new Error(`${name}: content contains the here-document delimiter ${delim}`);
    const body = text.endsWith("\n") ? text : text + "\n";
    return `${name}() {\n  cat <<'${delim}'\n${body}${delim}\n}\n`;
}

let body: string | undefined;
/** bootstrap.sh without comments, blank lines and indentation (the user data is size-limited; bootstrap.sh is the readable source). */
export function bootstrapBody(): string {
    body ??= readFileSync(join(__dirname, "bootstrap.sh"), "utf8")
        .split("\n")
        .filter((l) => !/^\s*#/.test(l) && l.trim() !== "")
        .map((l) => l.trimStart())
        .join("\n") + "\n";
    return body;
}

export function resolvePaths(paths?: Partial<BootstrapPaths>): BootstrapPaths {
    const p = { ...DEFAULT_PATHS, ...(paths ?? {}) };
    for (const [k, v] of Object.entries(p)) {
        if (!v.startsWith("/") || /\s|'|"/.test(v)) throw new Error(`renderUserData: paths.${k} must be an absolute path without spaces or quotes (got ${JSON.stringify(v)})`);
    }
    return p;
}

/**
 * systemd unit that runs the installed bootstrap on every boot, before the engine.
 *
 * A failed run (SSM or the S3 repositories not reachable yet, a late volume) is
 * retried every 30 s for as long as it fails: the engine `Requires=` this unit,
 * so its start job fails with it, and without a retry Redis would stay down until
 * someone restarts it by hand. ExecStartPost then starts the engine once a run
 * succeeds (`--no-block`: the engine is ordered after this unit, so a blocking
 * start from inside it would wait for itself). Restart=on-failure is allowed for
 * oneshot units since systemd 244; Amazon Linux 2023 has 252.
 */
export function bootstrapUnit(paths: BootstrapPaths, service: string): string {
    return [
        "[Unit]",
        "Description=Redis Cluster node bootstrap (data volume, kernel, config, SSM secrets)",
        "Wants=network-online.target",
        "After=network-online.target",
        `Before=${service}`,
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        `ExecStart=${paths.script} --run`,
        `ExecStartPost=/usr/bin/systemctl start --no-block ${service}`,
        "Restart=on-failure",
        "RestartSec=30",
        // The AWS CLI wants a home directory for its (unused) config.
        "Environment=HOME=/root",
        // One run: waiting for a late volume attachment (600 s) plus SSM retries with short
        // CLI timeouts (bootstrap.sh), so the script's own error message is always logged first.
        "TimeoutStartSec=20min",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ].join("\n") + "\n";
}

/**
 * Drop-in for the engine package's own unit. `Type=` and `--supervised` are
 * tokens the boot script fills from the installed binary: `notify`/`systemd`
 * when it links libsystemd (Redis 6.2 sends READY=1 only when built with it:
 * "compiled without libsystemd support", 6.2 src/server.c), `simple`/`no`
 * otherwise, so a build without it is never killed and restarted in a loop
 * waiting for a READY that cannot come.
 */
export function engineDropIn(paths: BootstrapPaths, input: UserDataInput): string {
    const f = ENGINE_FACTS[input.config.engine];
    return [
        `# Rendered by components/bootstrap/userData.ts`,
        "[Unit]",
        `Requires=${BOOTSTRAP_UNIT}`,
        `After=${BOOTSTRAP_UNIT}`,
        `RequiresMountsFor=${paths.mountDir}`,
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        `Type=${ENGINE_UNIT_TOKENS.type}`,
        `User=${SERVICE_USER}`,
        `Group=${SERVICE_USER}`,
        "ExecStart=",
        `ExecStart=/usr/bin/${f.serverBin} ${nodeFiles(paths).redisConf} --supervised ${ENGINE_UNIT_TOKENS.supervised} --daemonize no`,
        // In case the package's unit sandboxes the file system.
        `ReadWritePaths=${paths.mountDir}`,
        // No shutdown helper from the package (it would not know the ACL users): SIGTERM makes Redis fsync and exit.
        "ExecStop=",
        "Restart=always",
        "RestartSec=2",
        `LimitNOFILE=${ENGINE_NOFILE}`,
        // Loading a large AOF takes a while; so does the final fsync.
        "TimeoutStartSec=15min",
        "TimeoutStopSec=5min",
    ].join("\n") + "\n";
}

/** Tokens of the engine drop-in the boot script fills after looking at the binary. */
export const ENGINE_UNIT_TOKENS = { type: "@@SERVICE_TYPE@@", supervised: "@@SUPERVISED@@" } as const;

/** What Redis asks for at start: fork() for BGSAVE/AOF rewrite must not fail; room above tcp-backlog 511. */
export const SYSCTL = [
    "# Rendered by components/bootstrap/userData.ts",
    "vm.overcommit_memory = 1",
    "net.core.somaxconn = 4096",
    "net.ipv4.tcp_max_syn_backlog = 4096",
].join("\n") + "\n";

/** The boot script of one node. */
export function renderUserData(input: UserDataInput): string {
    const c = input.config;
    const f = ENGINE_FACTS[c.engine];
    const paths = resolvePaths(input.paths);
    const files = nodeFiles(paths);
    const ssm = ssmParameterNames(c.clusterName);
    for (const [k, v] of Object.entries({ "node.name": input.node.name, "node.az": input.node.az, privateIp: input.privateIp, region: input.region })) {
        if (/[\r\n]/.test(v ?? "")) throw new Error(`renderUserData: ${k} must be a single line (got ${JSON.stringify(v)})`);
    }
    if (!input.privateIp) throw new Error("renderUserData: privateIp is required (the node's stable address)");
    if (!input.dataVolumeId || /[\r\n]/.test(input.dataVolumeId)) throw new Error(`renderUserData: dataVolumeId must be an EBS volume id such as vol-0123456789abcdef0 (got ${JSON.stringify(input.dataVolumeId)})`);

    const conf = redisConfTemplate({
        config: c,
        announceIp: input.privateIp,
        bindAddresses: [input.privateIp, "127.0.0.1"],
        port: c.port,
        dataDir: files.dataDir,
        aclFile: files.aclFile,
        tls: c.tls ? files.tls : undefined,
    });

    const vars: [string, string | number][] = [
        ["CLUSTER_NAME", c.clusterName],
        ["NODE_NAME", input.node.name],
        ["SHARD", input.node.shard],
        ["REPLICA", input.node.replica],
        ["PORT", c.port],
        ["TLS", c.tls ? 1 : 0],
        ["ENGINE_PACKAGE", f.package],
        ["SERVER_BIN", f.serverBin],
        ["CLI_BIN", f.cliBin],
        ["SERVICE", f.service],
        ["SERVICE_USER", SERVICE_USER],
        ["DATA_VOLUME_ID", input.dataVolumeId],
        ["REGION", input.region],
        ["BACKUP_BUCKET", input.backupBucket ?? ""],
        ["SSM_PREFIX", ssmPrefix(c.clusterName)],
        ["SSM_ADMIN_PASSWORD", ssm.adminPassword],
        ["SSM_APP_PASSWORD", ssm.appPassword],
        ["SSM_REPLICATION_PASSWORD", ssm.replicationPassword],
        ["SSM_TLS_CA_CERT", ssm.tlsCaCert],
        ["SSM_TLS_CERT", ssm.tlsCert],
        ["SSM_TLS_KEY", ssm.tlsKey],
        ["SSM_NODE_SETTINGS", ssm.nodeSettings],
        ["SCRIPT_PATH", paths.script],
        ["CONF_DIR", paths.confDir],
        ["MOUNT_DIR", paths.mountDir],
        ["DATA_DIR", files.dataDir],
        ["SYSTEMD_DIR", paths.systemdDir],
        ["SYSCTL_DIR", paths.sysctlDir],
        ["FSTAB", paths.fstab],
        ["DEV_BY_ID", paths.devDiskById],
        ["LOG_FILE", paths.logFile],
        ["LOCK_FILE", paths.lockFile],
        ["HOOKS_DIR", files.hooksDir],
        ["REDIS_CONF", files.redisConf],
        ["ACL_FILE", files.aclFile],
        ["TLS_CA_FILE", files.tls.caFile],
        ["TLS_CERT_FILE", files.tls.certFile],
        ["TLS_KEY_FILE", files.tls.keyFile],
    ];

    const hooks = input.hooks ?? [];
    for (const h of hooks) {
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(h.name)) throw new Error(`renderUserData: hook name must be a plain file name such as 50-backup-timer (got ${JSON.stringify(h.name)})`);
    }
    const installHooks = [
        "install_hooks() {",
        `  mkdir -p "$HOOKS_DIR"`,
        ...hooks.map((h, i) => `  tpl_hook_${i} | write_file "$HOOKS_DIR/${h.name}" 0755 root:root`),
        "  return 0",
        "}",
    ].join("\n") + "\n";

    const parts = [
        "#!/bin/bash",
        `# Redis Cluster node ${input.node.name} (shard ${input.node.shard}, replica ${input.node.replica}, ${input.node.az}, ${input.privateIp}), by userData.ts.`,
        "# Runs at every boot (redis-bootstrap.service); secrets and settings come from SSM.",
        "set -euo pipefail",
        "umask 027",
        ...shellAssignments(vars),
        "",
        heredocFunction("tpl_redis_conf", conf),
        heredocFunction("tpl_acl", aclTemplate()),
        heredocFunction("tpl_sysctl", SYSCTL),
        heredocFunction("tpl_bootstrap_unit", bootstrapUnit(paths, f.service)),
        heredocFunction("tpl_engine_dropin", engineDropIn(paths, input)),
        ...hooks.map((h, i) => heredocFunction(`tpl_hook_${i}`, h.script)),
        installHooks,
        bootstrapBody(),
        `main "$@"`,
        "",
    ];
    return parts.join("\n");
}

/**
 * The user data gzip-compressed and base64-encoded, for `aws.ec2.Instance`'s
 * `userDataBase64`: cloud-init decompresses it, and it leaves room under the
 * 16 KB limit for hooks.
 *
 * The bytes must be a pure function of the script: any other difference shows
 * as `~ userDataBase64` on every instance, which the provider applies as a
 * stop/start of every node at once. Node's zlib is not that: the header's OS
 * byte depends on the platform (3 on Linux, 19 on macOS, nodejs/node#48690) and
 * its bundled zlib's output may change with the Node version. fflate is pure
 * JavaScript, pinned to an exact version in package.json, and writes a fixed
 * header (mtime 0, OS 3); test/unit/bootstrap.test.ts pins its output bytes.
 */
export function gzipUserData(script: string): string {
    const gz = gzipSync(Buffer.from(script, "utf8"), { level: 9, mtime: 0 });
    if (gz.length > USER_DATA_LIMIT_BYTES) throw new Error(`user data is ${gz.length} bytes gzip-compressed, above EC2's ${USER_DATA_LIMIT_BYTES}: shorten the hooks`);
    return Buffer.from(gz).toString("base64");
}
