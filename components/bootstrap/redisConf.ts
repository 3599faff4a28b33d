/**
 * redis.conf of a cluster node: one renderer for the AWS bootstrap, local mode
 * and the tests.
 *
 * `redisConfTemplate` leaves as tokens what a node learns at boot (maxmemory,
 * the replication password, and the cluster-wide settings it reads from the
 * SSM node-settings parameter) and marks directives an older engine lacks with
 * a version gate; `renderRedisConf` resolves both the way the boot script does
 * (see template.ts), the settings from `config`. No `@pulumi/*` import.
 */
import type { RedisConfInput } from "./contract";
import { ACL_USERS } from "./contract";
import { TOKENS, fillTokens, gated, quoteConfValue, resolveVersionGates } from "./template";
import { DIRECTIVE_SETTINGS, nodeSettingsOf } from "./nodeSettings";
import { nodeName } from "../topology";

/** Feature level assumed when RedisConfInput.engineVersion is not given. */
export const NEWEST_ENGINE_VERSION = "7.0";

export type RedisConfTemplateInput = Omit<RedisConfInput, "maxmemoryBytes" | "replicationPassword" | "engineVersion">;

/** Paths and values are written verbatim into the file; refuse what the parser would split. */
function path(value: string, what: string): string {
    if (value === "" || /\s|"/.test(value)) throw new Error(`${what} must be a non-empty path without spaces or quotes (got ${JSON.stringify(value)})`);
    return value;
}

/**
 * The file's header: which node, which shard, and the role it is created with. Replica 0 is
 * the shard's first master (`create` makes it so); failovers swap roles afterwards, which a
 * file rendered at boot cannot know, so the header says so and where the live role is shown.
 */
export function headerLines(clusterName: string, node?: RedisConfInput["node"]): string[] {
    if (!node) return [`# ${clusterName} node: rendered by components/bootstrap/redisConf.ts at every boot`];
    const role = node.replica === 0 ? "master" : `replica of ${nodeName(clusterName, node.shard, 0)}`;
    return [
        `# ${node.name}: shard ${node.shard} of ${clusterName}, created as ${role}.`,
        `# Roles change on failover (a replica is promoted, the old master follows it), so this may`,
        `# no longer be the live role: npm run cluster -- status shows it (or ROLE on this node).`,
        `# Rendered by components/bootstrap/redisConf.ts at every boot.`,
    ];
}

/** The template (tokens and version gates unresolved), as embedded in the user data. */
export function redisConfTemplate(input: RedisConfTemplateInput): string {
    const c = input.config;
    if (c.tls && !input.tls) throw new Error("renderRedisConf: config.tls is on, so tls { certFile, keyFile, caFile } is required");
    if (input.bindAddresses.length === 0) throw new Error("renderRedisConf: bindAddresses must name at least one address");
    const bind = [...new Set(input.bindAddresses)];
    const busPort = input.port + 10000;
    const L: string[] = [];
    const add = (...lines: string[]) => L.push(...lines);

    add(...headerLines(c.clusterName, input.node));
    add(
        `bind ${bind.join(" ")}`,
        // The default user is off (users.acl), so protected mode never has a passwordless user to guard; keep it on anyway.
        `protected-mode yes`,
    );
    if (c.tls) {
        const t = input.tls!;
        add(
            `port 0`,
            `tls-port ${input.port}`,
            `tls-cert-file ${path(t.certFile, "tls.certFile")}`,
            `tls-key-file ${path(t.keyFile, "tls.keyFile")}`,
            `tls-ca-cert-file ${path(t.caFile, "tls.caFile")}`,
            // Clients authenticate with ACL passwords; a client certificate is verified when presented.
            // The cluster bus always requires one (Redis hard-codes it), so only holders of the cluster key join the bus.
            `tls-auth-clients optional`,
            `tls-replication yes`,
            `tls-cluster yes`,
            `tls-protocols "TLSv1.2 TLSv1.3"`,
        );
    } else {
        add(`port ${input.port}`);
    }
    add(
        `tcp-backlog 511`,
        `tcp-keepalive 300`,
        `timeout 0`,
        `maxclients 10000`,
        `daemonize ${input.daemonize ? "yes" : "no"}`,
    );
    if (input.pidFile) add(`pidfile ${path(input.pidFile, "pidFile")}`);
    add(
        `loglevel notice`,
        `logfile ${input.logFile ? path(input.logFile, "logFile") : '""'}`,
        gated("7.0", `enable-protected-configs no`),
        gated("7.0", `enable-debug-command no`),
        gated("7.0", `enable-module-command no`),
        `aclfile ${path(input.aclFile, "aclFile")}`,
        `masteruser ${ACL_USERS.replication}`,
        `masterauth ${TOKENS.masterauth}`,
        `dir ${path(input.dataDir, "dataDir")}`,
        `dbfilename dump.rdb`,
        `save ""`,
        `appendonly yes`,
        `appendfilename "appendonly.aof"`,
        `appendfsync everysec`,
        `no-appendfsync-on-rewrite no`,
        `auto-aof-rewrite-percentage 100`,
        `auto-aof-rewrite-min-size 64mb`,
        `aof-use-rdb-preamble yes`,
        `aof-load-truncated yes`,
        // maxmemory and the cluster-wide settings below are tokens: the node fills them at boot from
        // the SSM node-settings parameter (nodeSettings.ts), so changing them never changes the user data.
        `maxmemory ${TOKENS.maxmemoryBytes}`,
        `maxmemory-policy ${TOKENS.maxmemoryPolicy}`,
        `lazyfree-lazy-eviction yes`,
        `lazyfree-lazy-expire yes`,
        `lazyfree-lazy-server-del yes`,
        `lazyfree-lazy-user-del yes`,
        `replica-lazy-flush yes`,
        `replica-read-only yes`,
        `repl-diskless-sync yes`,
        `repl-backlog-size 32mb`,
        `min-replicas-to-write ${TOKENS.minReplicasToWrite}`,
        `min-replicas-max-lag ${TOKENS.minReplicasMaxLagSec}`,
        `cluster-enabled yes`,
        `cluster-config-file ${path(input.dataDir, "dataDir")}/nodes.conf`,
        `cluster-node-timeout ${TOKENS.clusterNodeTimeoutMs}`,
        `cluster-replica-validity-factor ${TOKENS.clusterReplicaValidityFactor}`,
        `cluster-migration-barrier 1`,
        `cluster-allow-replica-migration yes`,
        // A failed shard makes only its own slots unavailable, not the whole cluster.
        `cluster-require-full-coverage no`,
        `cluster-allow-reads-when-down no`,
        `cluster-announce-ip ${input.announceIp}`,
        gated("7.0", `cluster-port ${busPort}`),
        gated("7.0", `cluster-allow-pubsubshard-when-down yes`),
    );
    return L.join("\n") + "\n";
}

/** redis.conf for an engine version (default: newest), with the values filled in. */
export function renderRedisConf(input: RedisConfInput): string {
    if (!Number.isInteger(input.maxmemoryBytes) || input.maxmemoryBytes < 0) {
        throw new Error(`renderRedisConf: maxmemoryBytes must be a whole number of bytes (got ${input.maxmemoryBytes})`);
    }
    const text = resolveVersionGates(redisConfTemplate(input), input.engineVersion ?? NEWEST_ENGINE_VERSION);
    const settings = nodeSettingsOf(input.config);
    return fillTokens(text, {
        maxmemoryBytes: String(input.maxmemoryBytes),
        ...Object.fromEntries(DIRECTIVE_SETTINGS.map((d) => [d.token, String(settings[d.key])])),
        masterauth: quoteConfValue(input.replicationPassword, "replicationPassword"),
    });
}
