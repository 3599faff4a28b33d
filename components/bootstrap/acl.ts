/**
 * The ACL file (`aclfile` in redis.conf) of a cluster node: one renderer for
 * the AWS bootstrap, local mode and the tests.
 *
 * Passwords are stored as SHA-256 (`#<hex>`), so the file on the node never
 * holds a password in clear; the boot script hashes the values it reads from
 * SSM and fills them into the same template (see template.ts).
 *
 * Users:
 *  - default: off. Every connection must AUTH as a named user.
 *  - admin: everything the cluster tool needs (CLUSTER, MIGRATE, CONFIG, ...), but
 *    never MODULE or DEBUG, on every engine: on 7.0+ redis.conf also disables them
 *    (enable-module-command/enable-debug-command no), but 6.2 lacks those
 *    directives, and loading a module or DEBUG RELOAD/SEGFAULT/SET-ACTIVE-EXPIRE
 *    is nothing an operations tool does.
 *  - app: every key and channel, every command except @dangerous and @admin,
 *    and explicitly never FLUSHALL, FLUSHDB, CONFIG or a CLUSTER subcommand
 *    that changes the cluster. What cluster clients need to discover the
 *    cluster (CLUSTER SLOTS/SHARDS/NODES/INFO...), INFO (ioredis' ready check)
 *    and CLIENT SETNAME are given back explicitly, because Redis 6.2 files
 *    whole CLIENT/CLUSTER/INFO commands under @admin/@dangerous.
 *  - replicator: only what a replica sends its master (PSYNC, REPLCONF, PING);
 *    used as `masteruser`.
 *
 * No `@pulumi/*` import.
 */
import { createHash } from "node:crypto";
import type { AclInput } from "./contract";
import { ACL_USERS } from "./contract";
import { NEWEST_ENGINE_VERSION } from "./redisConf";
import { TOKENS, fillTokens, gated, gatedBelow, resolveVersionGates } from "./template";

/** CLUSTER subcommands the application user may run (read-only discovery). */
export const APP_CLUSTER_SUBCOMMANDS = ["slots", "nodes", "info", "myid", "keyslot", "countkeysinslot"] as const;
/** CLIENT subcommands the application user may run. */
export const APP_CLIENT_SUBCOMMANDS = ["setname", "getname", "id", "info"] as const;

/** The template (password hashes as tokens, version gates unresolved), as embedded in the user data. */
export function aclTemplate(): string {
    const app = [
        `user ${ACL_USERS.app} on #${TOKENS.appPasswordSha256} ~* &* +@all -@dangerous -@admin`,
        `-flushall -flushdb -config -cluster`,
        ...APP_CLUSTER_SUBCOMMANDS.map((s) => `+cluster|${s}`),
        `-client`,
        ...APP_CLIENT_SUBCOMMANDS.map((s) => `+client|${s}`),
        `+info`,
    ].join(" ");
    return [
        `user default off resetchannels -@all`,
        `user ${ACL_USERS.admin} on #${TOKENS.adminPasswordSha256} ~* &* +@all -module -debug`,
        // CLUSTER SHARDS exists from 7.0 on; 7.0 refuses a rule naming an unknown subcommand.
        gated("7.0", `${app} +cluster|shards`),
        gatedBelow("7.0", app),
        `user ${ACL_USERS.replication} on #${TOKENS.replicationPasswordSha256} resetchannels -@all +psync +replconf +ping`,
    ].join("\n") + "\n";
}

/** Lowercase hex SHA-256 of a password, as Redis stores it (`#<hex>`). */
export function passwordSha256(password: string): string {
    return createHash("sha256").update(password, "utf8").digest("hex");
}

/** The ACL file for an engine version (default: newest), with the password hashes filled in. */
export function renderAclFile(input: AclInput): string {
    for (const [k, v] of Object.entries({ adminPassword: input.adminPassword, appPassword: input.appPassword, replicationPassword: input.replicationPassword })) {
        if (typeof v !== "string" || v === "") throw new Error(`renderAclFile: ${k} must be a non-empty string`);
    }
    const text = resolveVersionGates(aclTemplate(), input.engineVersion ?? NEWEST_ENGINE_VERSION);
    return fillTokens(text, {
        adminPasswordSha256: passwordSha256(input.adminPassword),
        appPasswordSha256: passwordSha256(input.appPassword),
        replicationPasswordSha256: passwordSha256(input.replicationPassword),
    });
}
