/**
 * The node vocabulary every layer shares: a node's key (`host:port`, as the node
 * announces itself; the identity of a node everywhere in the tool, as ioredis'
 * NodeKey) and what a node's refusal means. Pure.
 */

export type NodeKey = string; // "host:port"

/** The key of a node given by its address (a topology node, a CLUSTER NODES line, INFO's master_host/master_port). */
export function nodeKey(n: { host: string; port: number | string }): NodeKey {
    return `${n.host}:${n.port}`;
}

/** Splits `host:port` (IPv6 hosts in brackets or with the port after the last colon). */
export function parseNodeKey(key: string): { host: string; port: number } {
    const i = key.lastIndexOf(":");
    const port = Number(key.slice(i + 1));
    let host = key.slice(0, i);
    if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
    if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`Invalid node key "${key}": expected host:port`);
    return { host, port };
}

/**
 * Whether a node refused us for our credentials rather than being down: WRONGPASS
 * (AUTH with a wrong user or password; Redis 6.0 before 6.2 said "invalid
 * username-password pair"), NOAUTH (no AUTH sent), NOPERM (the user may not run
 * the command).
 */
export function isAuthError(message: string | undefined): boolean {
    return /WRONGPASS|NOAUTH|invalid username-password|NOPERM/i.test(message ?? "");
}
