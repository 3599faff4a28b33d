/**
 * One ioredis client per node key (`host:port` as the node announces itself),
 * connected on first use, never reconnecting behind our back, closed by `close()`.
 * Admin commands aim at one node, so there is no `Cluster` client here.
 *
 * `natMap` translates announced addresses to reachable ones (an SSM port forward,
 * a bastion tunnel), as ioredis' `natMap` does for cluster clients.
 */
import Redis, { RedisOptions } from "ioredis";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { NodeCommandError, RefusedError, UnreachableError } from "../errors";
import { parseClusterNodes } from "../plan/clusterNodes";
import { isAuthError, NodeKey, parseNodeKey } from "../plan/node";

export type { NodeKey };

export interface Credentials {
    user?: string;
    password?: string;
}

export interface TlsSettings {
    /** PEM CA file used to verify node certificates. */
    caFile?: string;
    /** PEM CA certificate text (e.g. the stack's `tlsCaCertificate` output); used when no caFile. */
    caPem?: string;
    /** Skip hostname checks (nodes are addressed by IP; certificates carry the cluster CA). @default true */
    skipHostnameCheck?: boolean;
}

export interface PoolOptions {
    credentials?: Credentials;
    /** TLS on when set. */
    tls?: TlsSettings;
    /** Announced `host:port` -> reachable address. */
    natMap?: Record<NodeKey, { host: string; port: number }>;
    /** @default 3000 */
    connectTimeoutMs?: number;
    /** Per-command timeout; undefined means none (MIGRATE of big keys sets its own). @default 30000 */
    commandTimeoutMs?: number;
    /**
     * Check on connect that the node reached is the one meant: the address on its own
     * `myself` line of CLUSTER NODES must be the announced key (port always; host when both
     * are IPs and the node knows its own). A wrong --nat-map fails here. @default true
     */
    verifyIdentity?: boolean;
}

/**
 * Why `node` (the node its CLUSTER NODES `myself` line describes) is not `key`, or
 * undefined when it is. A node that has not learnt its own IP yet (never met) shows an
 * empty host: only its port is compared then. Pure.
 */
export function identityMismatch(key: NodeKey, me: { host: string; port: number; id: string }): string | undefined {
    const want = parseNodeKey(key);
    const hostDiffers = me.host !== "" && isIP(me.host) !== 0 && isIP(want.host) !== 0 && me.host !== want.host;
    if (me.port === want.port && !hostDiffers) return undefined;
    return `it reports itself as ${me.host || "(no address yet)"}:${me.port} (id ${me.id.slice(0, 8)})`;
}

/**
 * Disconnects a client unless its connection has already ended: ioredis arms a
 * disconnectTimeout (2 s) timer on disconnect() that only a later "close" event
 * clears, so on an already closed stream it keeps the process alive for 2 s.
 */
function hangUp(c: Redis): void {
    if (c.status !== "end") c.disconnect();
}

export class NodePool {
    private readonly clients = new Map<NodeKey, Redis>();
    private readonly connecting = new Map<NodeKey, Promise<Redis>>();
    constructor(readonly options: PoolOptions = {}) {}

    /** The reachable address for an announced node key. */
    resolve(key: NodeKey): { host: string; port: number } {
        return this.options.natMap?.[key] ?? parseNodeKey(key);
    }

    /** Client options for a node, e.g. for a caller that needs its own connection. */
    clientOptions(key: NodeKey, extra: Partial<RedisOptions> = {}): RedisOptions {
        const { host, port } = this.resolve(key);
        const o = this.options;
        let tls: RedisOptions["tls"];
        if (o.tls) {
            tls = {
                ca: o.tls.caFile ? readFileSync(o.tls.caFile) : o.tls.caPem,
                checkServerIdentity: o.tls.skipHostnameCheck === false ? undefined : () => undefined,
            };
        }
        return {
            host,
            port,
            username: o.credentials?.user,
            password: o.credentials?.password,
            tls,
            lazyConnect: true,
            connectTimeout: o.connectTimeoutMs ?? 3000,
            commandTimeout: o.commandTimeoutMs ?? 30000,
            maxRetriesPerRequest: 0,
            retryStrategy: () => null,
            enableReadyCheck: false,
            ...extra,
        };
    }

    /** A connected client for the node; rejects with the node key in the message when unreachable. */
    async get(key: NodeKey): Promise<Redis> {
        const existing = this.clients.get(key);
        if (existing && existing.status === "ready") return existing;
        if (existing) {
            this.clients.delete(key);
            hangUp(existing);
        }
        const pending = this.connecting.get(key);
        if (pending) return pending;
        const p = (async () => {
            const client = new Redis(this.clientOptions(key));
            this.unready.add(client);
            try {
                return await this.connectAndVerify(key, client);
            } finally {
                this.unready.delete(client);
            }
        })();
        this.connecting.set(key, p);
        return p;
    }

    /** Clients still connecting or being verified: close() hangs them up (a node that accepts but never answers would hold the process for the command timeout). */
    private readonly unready = new Set<Redis>();

    private async connectAndVerify(key: NodeKey, client: Redis): Promise<Redis> {
        let socketError: Error | undefined;
        client.on("error", (e: Error) => (socketError ??= e)); // surfaced through the command's rejection
        try {
            await client.connect();
            // ioredis can announce "ready" after a refused AUTH has already closed the connection:
            // its client-info commands, which gate "ready", may finish after the AUTH reply (the first
            // read of its package.json is asynchronous; seen under load). The AUTH error is the answer,
            // not the "Connection is closed." every later command would get.
            if (socketError && isAuthError(socketError.message)) throw socketError;
        } catch (e) {
            hangUp(client);
            const via = this.options.natMap?.[key] ? ` (via ${this.resolve(key).host}:${this.resolve(key).port})` : "";
            // ioredis rejects with "Connection is closed."; the socket's own error (ECONNREFUSED, timeout) says why.
            const why = (e as Error).message === "Connection is closed." && socketError ? socketError.message : (e as Error).message;
            throw new UnreachableError(`cannot connect to ${key}${via}: ${why}`, key);
        } finally {
            this.connecting.delete(key);
        }
        if (this.options.verifyIdentity !== false) await this.verify(key, client);
        if (this.closed) {
            // close() ran while this connection was under way (a reader gave up early): do not leak it.
            hangUp(client);
            throw new Error(`${key}: the node pool was closed`);
        }
        this.clients.set(key, client);
        return client;
    }

    /** Refuses a node that is not the one `key` names (see identityMismatch). */
    private async verify(key: NodeKey, client: Redis): Promise<void> {
        let text: string;
        try {
            text = (await client.call("CLUSTER", "NODES")) as string;
        } catch {
            return; // cluster mode off, loading, no permission: the command's own checks say so
        }
        const me = parseClusterNodes(text).find((n) => n.myself);
        const why = me && identityMismatch(key, me);
        if (!why) return;
        hangUp(client);
        const r = this.resolve(key);
        const via = this.options.natMap?.[key] ? `; --nat-map sends ${key} to ${r.host}:${r.port}, check that mapping` : "";
        throw new RefusedError(`${key} is not the node that answered at ${r.host}:${r.port}: ${why}${via}. Nothing was changed.`, { node: key });
    }

    /** Sends one command to a node; errors carry the node key. */
    async call(key: NodeKey, command: string, ...args: (string | number | Buffer)[]): Promise<unknown> {
        const c = await this.get(key);
        try {
            return await c.call(command, ...args);
        } catch (e) {
            // An operational failure (the node refused, the connection dropped), not a bug: exit 1 if nothing wraps it.
            throw new NodeCommandError(`${key}: ${command} ${args.slice(0, 3).join(" ")}${args.length > 3 ? " …" : ""}: ${(e as Error).message}`, key, command, { cause: e });
        }
    }

    /** Drops the client of a node (after it was shut down, say). */
    drop(key: NodeKey): void {
        const c = this.clients.get(key);
        if (c) hangUp(c);
        this.clients.delete(key);
    }

    private readonly beforeClose: (() => Promise<void>)[] = [];

    /** Runs `fn` (e.g. releasing the cluster lease) at the start of `close()`, while the clients still work. */
    onClose(fn: () => Promise<void>): void {
        this.beforeClose.push(fn);
    }

    private closed = false;

    async close(): Promise<void> {
        for (const fn of this.beforeClose.splice(0)) await fn().catch(() => undefined);
        this.closed = true;
        // Connections still under way: hung up now (their get() rejects), not awaited for up to the command timeout.
        for (const c of this.unready) hangUp(c);
        await Promise.all([...this.connecting.values()].map((p) => p.catch(() => undefined)));
        const all = [...this.clients.values()];
        this.clients.clear();
        await Promise.all(all.map(async (c) => {
            let timer: NodeJS.Timeout | undefined;
            try {
                await Promise.race([c.quit(), new Promise((r) => (timer = setTimeout(r, 500)))]);
            } catch {
                /* already gone */
            } finally {
                clearTimeout(timer); // else it holds the process open for 500 ms after a fast QUIT
            }
            hangUp(c);
        }));
    }
}
