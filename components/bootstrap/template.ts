/**
 * The tiny template language shared by the TypeScript renderers and the boot
 * script, so the SAME text is what runs on AWS and in tests.
 *
 * A template is rendered once in TypeScript with everything known before
 * deploy (ports, paths, the node's private IP). What is only known on the node
 * at boot stays in the text as:
 *
 *  - tokens `@@NAME@@`, filled with values read at boot (the SSM passwords'
 *    SHA-256, the cluster-wide settings from the SSM node-settings
 *    parameter, maxmemory computed from MemTotal);
 *  - version gates: a line starting with `@@>=7.0@@` is kept (without the
 *    marker) when the installed engine is 7.0 or newer and dropped otherwise,
 *    because Redis 6.2 refuses to start on a directive it does not know;
 *    `@@<7.0@@` is the opposite (kept only below 7.0).
 *
 * `resolveVersionGates` + `fillTokens` here and `render_template` in
 * bootstrap.sh implement the same rules; the integration test compares the
 * files the boot script writes with `renderRedisConf`/`renderAclFile` byte for
 * byte. No `@pulumi/*` import.
 */

/**
 * Tokens filled on the node at boot. The cluster-wide settings (maxmemory
 * policy, timeouts, min-replicas ...) are tokens too: the node reads their
 * values from the SSM parameter `nodeSettings` (see nodeSettings.ts), so a
 * settings change never changes the user data.
 */
export const TOKENS = {
    maxmemoryBytes: "@@MAXMEMORY_BYTES@@",
    maxmemoryPolicy: "@@MAXMEMORY_POLICY@@",
    clusterNodeTimeoutMs: "@@CLUSTER_NODE_TIMEOUT@@",
    clusterReplicaValidityFactor: "@@CLUSTER_REPLICA_VALIDITY_FACTOR@@",
    minReplicasToWrite: "@@MIN_REPLICAS_TO_WRITE@@",
    minReplicasMaxLagSec: "@@MIN_REPLICAS_MAX_LAG@@",
    /** The replication password as a quoted redis.conf value. */
    masterauth: "@@MASTERAUTH@@",
    adminPasswordSha256: "@@ADMIN_PASSWORD_SHA256@@",
    appPasswordSha256: "@@APP_PASSWORD_SHA256@@",
    replicationPasswordSha256: "@@REPLICATION_PASSWORD_SHA256@@",
} as const;

export type TokenName = keyof typeof TOKENS;

const GATE = /^@@(>=|<)(\d+)\.(\d+)@@(.*)$/;

/** A line kept only on engines at least `minVersion` ("7.0"). */
export function gated(minVersion: string, line: string): string {
    if (!/^\d+\.\d+$/.test(minVersion)) throw new Error(`version gate must look like 7.0 (got ${JSON.stringify(minVersion)})`);
    return `@@>=${minVersion}@@${line}`;
}

/** A line kept only on engines older than `version` ("7.0"). */
export function gatedBelow(version: string, line: string): string {
    if (!/^\d+\.\d+$/.test(version)) throw new Error(`version gate must look like 7.0 (got ${JSON.stringify(version)})`);
    return `@@<${version}@@${line}`;
}

/** Parses "6.2.14" / "7.0" / "8" into [major, minor]; throws when unreadable. */
export function parseEngineVersion(version: string): [number, number] {
    const m = /^(\d+)(?:\.(\d+))?/.exec(version.trim());
    if (!m) throw new Error(`engine version must look like 6.2.14 (got ${JSON.stringify(version)})`);
    return [Number(m[1]), Number(m[2] ?? 0)];
}

/** Keeps or drops gated lines for an engine version. */
export function resolveVersionGates(template: string, engineVersion: string): string {
    const [maj, min] = parseEngineVersion(engineVersion);
    const out: string[] = [];
    const lines = template.split("\n");
    const trailing = lines[lines.length - 1] === "";
    if (trailing) lines.pop();
    for (const line of lines) {
        const g = GATE.exec(line);
        if (!g) {
            out.push(line);
            continue;
        }
        const atLeast = maj > Number(g[2]) || (maj === Number(g[2]) && min >= Number(g[3]));
        if (atLeast === (g[1] === ">=")) out.push(g[4]);
    }
    return out.join("\n") + (trailing ? "\n" : "");
}

/**
 * Replaces tokens in the order given (the boot script uses the same order:
 * non-secret values first, the masterauth last), so a value containing a
 * token's text is never substituted twice in a way the script would not.
 */
export function fillTokens(text: string, values: Partial<Record<TokenName, string>>): string {
    let out = text;
    for (const name of Object.keys(TOKENS) as TokenName[]) {
        const v = values[name];
        if (v !== undefined) out = out.split(TOKENS[name]).join(v);
    }
    return out;
}

/**
 * A value as a double-quoted redis.conf string. Redis' config parser
 * (sdssplitargs) unescapes `\\` and `\"` inside double quotes; a line break
 * cannot be expressed, so it is refused.
 */
export function quoteConfValue(value: string, what = "value"): string {
    if (/[\r\n\0]/.test(value)) throw new Error(`${what} must not contain a line break or NUL byte`);
    return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}
