/**
 * The contract between the stack (which creates secrets and instances), the node
 * bootstrap (which reads them at boot) and local mode (which renders the same
 * files for redis-server on loopback). No `@pulumi/*` import.
 */
import { StackConfig } from "../config";

/** ACL user names. The default user is always off. */
export const ACL_USERS = {
    /** Operations: the cluster tool (CLUSTER, MIGRATE, CONFIG ...). */
    admin: "admin",
    /** Applications: data commands, without @dangerous/@admin. */
    app: "app",
    /** Replication: used as `masteruser` by replicas. */
    replication: "replicator",
} as const;

/** SSM Parameter Store prefix of a cluster's secrets and node settings. */
export function ssmPrefix(clusterName: string): string {
    return `/redis-cluster/${clusterName}`;
}

/** Names of the SSM parameters the stack writes and the node reads at boot. */
export function ssmParameterNames(clusterName: string) {
    const p = ssmPrefix(clusterName);
    return {
        /** SecureString */
        adminPassword: `${p}/acl/admin-password`,
        /** SecureString */
        appPassword: `${p}/acl/app-password`,
        /** SecureString */
        replicationPassword: `${p}/acl/replication-password`,
        /** String: PEM CA certificate (when tls) */
        tlsCaCert: `${p}/tls/ca-cert`,
        /** String: PEM certificate shared by the cluster's nodes, signed by the CA (when tls) */
        tlsCert: `${p}/tls/cert`,
        /** SecureString: PEM private key of that certificate (when tls) */
        tlsKey: `${p}/tls/key`,
        /**
         * String (Standard tier): the cluster-wide settings every node renders redis.conf from
         * at boot, as KEY=VALUE lines (nodeSettings.ts). Kept out of the user data, so changing
         * one never stops and starts the instances.
         */
        nodeSettings: `${p}/config/node-settings`,
    };
}

/** What the user-data renderer needs for one node. */
export interface UserDataInput {
    config: StackConfig;
    node: { name: string; shard: number; replica: number; az: string };
    /** Stable private IP of the node's own network interface. */
    privateIp: string;
    /** EBS volume id of the data volume ("vol-..."); the bootstrap finds the device by NVMe serial. */
    dataVolumeId: string;
    region: string;
    /** Backup bucket name, for the backup hook. */
    backupBucket?: string;
    /**
     * Executables installed into `/etc/redis-cluster/hooks.d/` and run (in name
     * order) at the end of every boot's bootstrap, before the engine starts:
     * the place for the backup timer and the metrics publisher. A failing hook
     * is logged and does not stop the node. @default []
     */
    hooks?: { name: string; script: string }[];
    /** Move every path the bootstrap touches (tests run it under a temporary root). @default DEFAULT_PATHS in engine.ts */
    paths?: Partial<import("./engine").BootstrapPaths>;
}

/** What the redis.conf renderer needs (AWS bootstrap and local mode alike). */
export interface RedisConfInput {
    config: StackConfig;
    /** cluster-announce-ip: the node's stable address. */
    announceIp: string;
    /** Addresses to bind (AWS: the private IP and 127.0.0.1; local: 127.0.0.1). */
    bindAddresses: string[];
    /** Client port (AWS: config.port; local: one per node). The bus is port + 10000. */
    port: number;
    /** Data directory: nodes.conf, AOF and RDB files. */
    dataDir: string;
    aclFile: string;
    maxmemoryBytes: number;
    /** Password of the replication user, written as masterauth. */
    replicationPassword: string;
    /** Required when config.tls. */
    tls?: { certFile: string; keyFile: string; caFile: string };
    /** Log file; empty logs to stdout (the journal on AWS). @default "" */
    logFile?: string;
    /** Local mode runs servers daemonized with a pid file. @default false */
    daemonize?: boolean;
    pidFile?: string;
    /** Engine version, e.g. "6.2.14", so directives an older engine lacks are left out. @default newest */
    engineVersion?: string;
    /** The node, named in the file's header with its shard and the role it is created with (replica 0: master). */
    node?: { name: string; shard: number; replica: number };
}

export interface AclInput {
    adminPassword: string;
    appPassword: string;
    replicationPassword: string;
    /** Engine version, e.g. "6.2.14", so rules an older engine refuses are left out. @default newest */
    engineVersion?: string;
}
