/**
 * What each engine package looks like on Amazon Linux 2023, and where the
 * bootstrap keeps things on a node. No `@pulumi/*` import.
 */
import type { Engine } from "../config";

export interface EngineFacts {
    /** dnf package name. */
    package: string;
    /** Server binary on PATH. */
    serverBin: string;
    /** CLI binary on PATH (for hooks). */
    cliBin: string;
    /** The package's systemd unit, which the bootstrap extends with a drop-in. */
    service: string;
    /** Version the renderer assumes when none is given (`npm run render`, docs): the feature level of what dnf installs. */
    typicalVersion: string;
}

/**
 * AL2023 ships Redis 6.2 as `redis6` (binaries renamed `redis6-*`, unit
 * `redis6.service`); `valkey` ships `valkey-*` and `valkey.service`; `redis`
 * covers a repository that ships upstream names (and this project's tests on
 * Debian, whose Redis 7.0 has them).
 */
export const ENGINE_FACTS: Record<Engine, EngineFacts> = {
    redis6: { package: "redis6", serverBin: "redis6-server", cliBin: "redis6-cli", service: "redis6.service", typicalVersion: "6.2" },
    valkey: { package: "valkey", serverBin: "valkey-server", cliBin: "valkey-cli", service: "valkey.service", typicalVersion: "8.0" },
    redis: { package: "redis", serverBin: "redis-server", cliBin: "redis-cli", service: "redis.service", typicalVersion: "7.0" },
};

/**
 * The user the engine runs as, set by the bootstrap's drop-in and created when
 * missing: one name whatever the package calls its own user, and nothing of
 * the package's (its config, log or data directories) is used.
 */
export const SERVICE_USER = "redis-cluster";

/** Where the bootstrap keeps things on a node. Tests move all of them under a temporary root. */
export interface BootstrapPaths {
    /** redis.conf, users.acl, tls/, hooks.d/ @default "/etc/redis-cluster" */
    confDir: string;
    /** Mount point of the data volume. @default "/var/lib/redis-cluster" */
    mountDir: string;
    /** Installed copy of the boot script, run by redis-bootstrap.service on every boot. @default "/usr/local/sbin/redis-cluster-bootstrap" */
    script: string;
    /** @default "/etc/systemd/system" */
    systemdDir: string;
    /** @default "/etc/sysctl.d" */
    sysctlDir: string;
    /** @default "/etc/fstab" */
    fstab: string;
    /** Where udev links NVMe EBS volumes by serial. @default "/dev/disk/by-id" */
    devDiskById: string;
    /** @default "/var/log/redis-cluster-bootstrap.log" */
    logFile: string;
    /** @default "/run/redis-cluster-bootstrap.lock" */
    lockFile: string;
}

export const DEFAULT_PATHS: BootstrapPaths = {
    confDir: "/etc/redis-cluster",
    mountDir: "/var/lib/redis-cluster",
    script: "/usr/local/sbin/redis-cluster-bootstrap",
    systemdDir: "/etc/systemd/system",
    sysctlDir: "/etc/sysctl.d",
    fstab: "/etc/fstab",
    devDiskById: "/dev/disk/by-id",
    logFile: "/var/log/redis-cluster-bootstrap.log",
    lockFile: "/run/redis-cluster-bootstrap.lock",
};

/** Files derived from the paths, shared by the user-data and redis.conf renderers. */
export function nodeFiles(paths: BootstrapPaths) {
    return {
        redisConf: `${paths.confDir}/redis.conf`,
        aclFile: `${paths.confDir}/users.acl`,
        tlsDir: `${paths.confDir}/tls`,
        tls: { caFile: `${paths.confDir}/tls/ca.crt`, certFile: `${paths.confDir}/tls/redis.crt`, keyFile: `${paths.confDir}/tls/redis.key` },
        hooksDir: `${paths.confDir}/hooks.d`,
        /** Redis `dir`: a directory on the volume, so lost+found stays out of it. */
        dataDir: `${paths.mountDir}/data`,
    };
}

/** Name of the bootstrap's own unit. */
export const BOOTSTRAP_UNIT = "redis-bootstrap.service";
