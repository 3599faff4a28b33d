/**
 * Which engine a node runs, from its INFO server section. Valkey reports its
 * Redis compatibility level as `redis_version` (7.2.4 on every Valkey 8), and
 * its own release as `valkey_version`, with `server_name:valkey`; Redis has
 * neither field. Feature-detected, never inferred from the version number.
 */
export interface EngineInfo {
    name: "redis" | "valkey";
    /** The engine's own release: valkey_version on Valkey, redis_version on Redis. */
    version: string;
    /** redis_version: the Redis feature level, what command gates (CLUSTER ADDSLOTSRANGE...) compare. */
    compatVersion: string;
}

export function engineOf(server: Record<string, string>): EngineInfo {
    const valkey = server.server_name === "valkey" || server.valkey_version !== undefined;
    const compatVersion = server.redis_version ?? "?";
    return { name: valkey ? "valkey" : "redis", version: (valkey ? server.valkey_version : undefined) ?? compatVersion, compatVersion };
}

/** "valkey 8.0.2", "redis 7.0.15". */
export function engineLabel(e: EngineInfo): string {
    return `${e.name} ${e.version}`;
}
