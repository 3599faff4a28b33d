/**
 * Cluster-wide node settings: the redis.conf values every node shares and an
 * operator changes on a running cluster (maxmemory share and policy, cluster
 * timeouts, min-replicas).
 *
 * They are deliberately NOT in the user data. EC2 stops and starts an instance
 * whose user data changes, and `pulumi up` updates instances in parallel, so a
 * setting in the user data would turn a maxmemory tweak into a full outage.
 * Instead the stack writes them to one SSM String parameter
 * (`ssmParameterNames(cluster).nodeSettings`) as a small KEY=VALUE document,
 * every node reads it at every boot and fills the same redis.conf template
 * tokens the TypeScript renderer fills (template.ts), and the cluster tool's
 * `reconfigure` applies them to running nodes one at a time with CONFIG SET.
 *
 * What stays in the user data is what cannot change in place: the node's
 * identity, port, TLS and engine.
 *
 * No `@pulumi/*` import.
 */
import { ConfigError, Engine, ENGINES, parseStackConfig, RawValue, StackConfig } from "../config";
import { TokenName, TOKENS } from "./template";

/** The NodeSettings keys, in document order; each is the StackConfig key of the same name. */
export const NODE_SETTING_KEYS = [
    "maxmemoryPercent", "maxmemoryPolicy", "clusterNodeTimeoutMs",
    "clusterReplicaValidityFactor", "minReplicasToWrite", "minReplicasMaxLagSec",
] as const satisfies readonly (keyof StackConfig)[];

/**
 * The cluster-wide node settings: those StackConfig fields, with their types.
 * maxmemoryPercent is a share of the node's memory (MemTotal; INFO total_system_memory).
 */
export type NodeSettings = Pick<StackConfig, (typeof NODE_SETTING_KEYS)[number]>;

/**
 * Settings that are one redis.conf directive each, all settable at runtime
 * with CONFIG SET on Redis 6.2, 7.x and Valkey. (maxmemoryPercent is not a
 * directive: the node turns it into `maxmemory` bytes.) Adding a setting is
 * one line here, one token in template.ts and one StackConfig key.
 */
export const DIRECTIVE_SETTINGS: readonly { key: Exclude<keyof NodeSettings, "maxmemoryPercent">; directive: string; token: TokenName }[] = [
    { key: "maxmemoryPolicy", directive: "maxmemory-policy", token: "maxmemoryPolicy" },
    { key: "clusterNodeTimeoutMs", directive: "cluster-node-timeout", token: "clusterNodeTimeoutMs" },
    { key: "clusterReplicaValidityFactor", directive: "cluster-replica-validity-factor", token: "clusterReplicaValidityFactor" },
    { key: "minReplicasToWrite", directive: "min-replicas-to-write", token: "minReplicasToWrite" },
    { key: "minReplicasMaxLagSec", directive: "min-replicas-max-lag", token: "minReplicasMaxLagSec" },
];

/** Document key of the maxmemory share; the boot script computes `maxmemory` from it. */
export const MAXMEMORY_PERCENT_KEY = "MAXMEMORY_PERCENT";

/** SSM Standard tier holds up to 4 KB; the document is a few hundred bytes. */
export const NODE_SETTINGS_MAX_BYTES = 4096;

/** `MAXMEMORY_POLICY` for the token `@@MAXMEMORY_POLICY@@`: the document key the boot script substitutes. */
export function documentKey(token: TokenName): string {
    return TOKENS[token].slice(2, -2);
}

/** The settings part of a stack config. */
export function nodeSettingsOf(config: StackConfig): NodeSettings {
    return {
        maxmemoryPercent: config.maxmemoryPercent,
        maxmemoryPolicy: config.maxmemoryPolicy,
        clusterNodeTimeoutMs: config.clusterNodeTimeoutMs,
        clusterReplicaValidityFactor: config.clusterReplicaValidityFactor,
        minReplicasToWrite: config.minReplicasToWrite,
        minReplicasMaxLagSec: config.minReplicasMaxLagSec,
    };
}

/**
 * Validates settings from an untrusted source (SSM document, stack output,
 * settings.json) with the stack config's own rules, so the ranges live in one
 * place (config.ts). Every problem is listed once, naming the key and value.
 */
export function validateNodeSettings(raw: Record<string, RawValue>, source: string): NodeSettings {
    const problems: string[] = [];
    for (const k of NODE_SETTING_KEYS) if (raw[k] === undefined || raw[k] === null || raw[k] === "") problems.push(`${k} is missing`);
    for (const k of Object.keys(raw)) if (!(NODE_SETTING_KEYS as readonly string[]).includes(k)) problems.push(`${k} is not a node setting (known: ${NODE_SETTING_KEYS.join(", ")})`);
    if (problems.length) throw new ConfigError(problems, source);
    try {
        // replicasPerShard is not known here; the stack checked minReplicasToWrite against it already.
        const cfg = parseStackConfig((k) => (k === "replicasPerShard" ? 5 : raw[k]), { project: "redis-cluster", stack: "settings" });
        return nodeSettingsOf(cfg);
    } catch (e) {
        if (e instanceof ConfigError) throw new ConfigError(e.problems, source);
        throw e;
    }
}

/**
 * The SSM document: comment lines, then KEY=VALUE lines. Keys are the template
 * tokens without `@@` plus MAXMEMORY_PERCENT; values are plain words
 * ([A-Za-z0-9._-]), which the boot script checks before substituting.
 */
export function renderNodeSettings(settings: NodeSettings): string {
    const s = validateNodeSettings({ ...settings }, "node settings");
    const lines = [
        "# Cluster-wide node settings: written by pulumi up (components/bootstrap/nodeSettings.ts),",
        "# read by every node at every boot; applied to running nodes by: npm run cluster -- reconfigure",
        `${MAXMEMORY_PERCENT_KEY}=${s.maxmemoryPercent}`,
        ...DIRECTIVE_SETTINGS.map((d) => `${documentKey(d.token)}=${s[d.key]}`),
    ];
    const text = lines.join("\n") + "\n";
    if (Buffer.byteLength(text) > NODE_SETTINGS_MAX_BYTES) throw new Error(`node settings document is ${Buffer.byteLength(text)} bytes, above SSM's Standard tier (${NODE_SETTINGS_MAX_BYTES})`);
    return text;
}

/** Reads a document written by renderNodeSettings (strictly: every key once, nothing unknown). */
export function parseNodeSettings(text: string, source = "node settings document"): NodeSettings {
    const raw: Record<string, string> = {};
    const problems: string[] = [];
    const byDocKey = new Map<string, keyof NodeSettings>([[MAXMEMORY_PERCENT_KEY, "maxmemoryPercent"], ...DIRECTIVE_SETTINGS.map((d) => [documentKey(d.token), d.key] as [string, keyof NodeSettings])]);
    text.split("\n").forEach((line, i) => {
        if (line.trim() === "" || line.startsWith("#")) return;
        const m = /^([A-Z][A-Z0-9_]*)=([A-Za-z0-9._-]+)$/.exec(line);
        const key = m ? byDocKey.get(m[1]) : undefined;
        if (!m) problems.push(`line ${i + 1} is not KEY=VALUE with a plain value (got ${JSON.stringify(line)})`);
        else if (!key) problems.push(`line ${i + 1}: unknown key ${m[1]} (known: ${[...byDocKey.keys()].join(", ")})`);
        else if (key in raw) problems.push(`line ${i + 1}: ${m[1]} repeated`);
        else raw[key] = m[2];
    });
    if (problems.length) throw new ConfigError(problems, source);
    return validateNodeSettings(raw, source);
}

/** maxmemory for a node with `memoryBytes` of memory: the boot script's `kb * 1024 * percent / 100`, rounded down. */
export function maxmemoryBytesFor(memoryBytes: number, percent: number): number {
    if (!Number.isSafeInteger(memoryBytes) || memoryBytes <= 0) throw new Error(`memory must be a positive whole number of bytes (got ${memoryBytes})`);
    return Math.floor((memoryBytes * percent) / 100);
}

/**
 * What `reconfigure` applies, and where it reads it: the stack output
 * `nodeSettings`, local mode's `settings.json` beside the topology, or one
 * built from a `Pulumi.<stack>.yaml` (`--config`).
 */
export interface DesiredNodeSettings {
    version: 1;
    /** Settable on a running node (CONFIG SET). */
    settings: NodeSettings;
    /** Chosen when the cluster was created: compared with the live nodes, never changed in place. Absent: not checked. */
    fixed: { port?: number; tls?: boolean; engine?: Engine };
    /** The SSM parameter the nodes read at boot (AWS). */
    parameterName?: string;
    /**
     * Memory maxmemoryPercent is a share of. Absent (AWS): each node's own
     * INFO memory total_system_memory, which is the MemTotal the boot script
     * uses. Local mode fixes it per node (every local node shares one machine).
     */
    nodeMemoryBytes?: number;
    /** Where the document came from (shown to the operator). */
    source?: string;
}

/** Validates a DesiredNodeSettings document (stack output, settings.json); throws a ConfigError naming `source`. */
export function validateDesiredNodeSettings(doc: unknown, source: string): DesiredNodeSettings {
    const d = doc as Partial<DesiredNodeSettings> | null;
    if (!d || typeof d !== "object" || Array.isArray(d)) throw new ConfigError([`must be a JSON object { version: 1, settings: {...}, fixed: {...} }`], source);
    const problems: string[] = [];
    if (d.version !== 1) problems.push(`version must be 1 (got ${JSON.stringify(d.version)}); this tool reads version 1`);
    if (!d.settings || typeof d.settings !== "object") problems.push(`settings must be an object with ${NODE_SETTING_KEYS.join(", ")}`);
    const fixed = (d.fixed ?? {}) as DesiredNodeSettings["fixed"];
    if (typeof fixed !== "object") problems.push(`fixed must be an object { port?, tls?, engine? }`);
    if (fixed.port !== undefined && !(Number.isInteger(fixed.port) && fixed.port > 0 && fixed.port < 65536)) problems.push(`fixed.port must be a port number (got ${JSON.stringify(fixed.port)})`);
    if (fixed.tls !== undefined && typeof fixed.tls !== "boolean") problems.push(`fixed.tls must be true or false (got ${JSON.stringify(fixed.tls)})`);
    if (fixed.engine !== undefined && !ENGINES.includes(fixed.engine)) problems.push(`fixed.engine must be one of ${ENGINES.join(", ")} (got ${JSON.stringify(fixed.engine)})`);
    if (d.nodeMemoryBytes !== undefined && !(Number.isSafeInteger(d.nodeMemoryBytes) && d.nodeMemoryBytes > 0)) problems.push(`nodeMemoryBytes must be a positive whole number of bytes (got ${JSON.stringify(d.nodeMemoryBytes)})`);
    if (problems.length) throw new ConfigError(problems, source);
    const settings = validateNodeSettings(d.settings as unknown as Record<string, RawValue>, source);
    return {
        version: 1, settings,
        fixed: Object.fromEntries(Object.entries({ port: fixed.port, tls: fixed.tls, engine: fixed.engine }).filter(([, v]) => v !== undefined)),
        ...(d.parameterName ? { parameterName: String(d.parameterName) } : {}),
        ...(d.nodeMemoryBytes !== undefined ? { nodeMemoryBytes: d.nodeMemoryBytes } : {}),
        source: d.source ?? source,
    };
}

/** The desired settings of a stack config (the stack output, and `reconfigure --config`). */
export function desiredNodeSettingsOf(config: StackConfig, extra: Partial<Pick<DesiredNodeSettings, "parameterName" | "nodeMemoryBytes" | "source">> = {}): DesiredNodeSettings {
    return {
        version: 1,
        settings: nodeSettingsOf(config),
        fixed: { port: config.port, tls: config.tls, engine: config.engine },
        ...extra,
    };
}
