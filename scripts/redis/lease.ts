/**
 * The cluster-wide lease every changing command takes first (design: docs/lease.md).
 *
 * One hash key in the cluster's keyspace, written by Lua scripts on the master of its
 * slot (found by following MOVED/ASK from any node), so it works on Redis 6.2, 7.x and
 * Valkey, moves with its slot during a reshard, and expires on the server's clock.
 */
import { hostname, userInfo } from "node:os";
import { randomBytes } from "node:crypto";
import Redis from "ioredis";
import type { Topology } from "../../components/topology";
import { RefusedError, StepError } from "../errors";
import type { Output } from "../output";
import { NodeKey, NodePool } from "./pool";

export const LEASE_KEY = "__redis-cluster-tool__:lease";
/** @default 60 s */
export const DEFAULT_LEASE_TTL_MS = 60_000;
/** How long the key outlives the lease's expiry, so the next run can report a dead run's lease. */
export const LEASE_KEEP_AFTER_EXPIRY_MS = 24 * 3600_000;

export interface LeaseRecord {
    owner: string;
    command: string;
    token: string;
    /** Server time (ms) when taken. */
    started: number;
    /** Server time (ms) when it expires unless renewed. */
    expires: number;
}

export interface LeaseOptions {
    /** The command holding it ("scale", "roll"…), shown to the runs it refuses. */
    command: string;
    out: Output;
    /** Aborting it (Ctrl-C) does not release the lease: `release()` does. */
    signal?: AbortSignal;
    /** Replace an expired lease (never a live one). */
    takeOver?: boolean;
    /**
     * "required": refuse when the lease cannot be stored. "best-effort": repairs for a
     * cluster that is down go on without it (with a warning), but still refuse a live lease.
     * @default "required"
     */
    mode?: "required" | "best-effort";
    /** @default DEFAULT_LEASE_TTL_MS */
    ttlMs?: number;
    /** @default ttlMs / 3 */
    renewEveryMs?: number;
}

/**
 * Takes the lease unless another run holds it: returns "ok", or the holder's fields
 * plus the server's `now` (so the caller can tell live from expired without trusting
 * its own clock). ARGV: token, owner, command, ttl, keep-after-expiry, token to take over.
 * Renewal is the same call with one's own token; a missing key is written again.
 */
const ACQUIRE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HGET', KEYS[1], 'token')
if cur and cur ~= ARGV[1] and cur ~= ARGV[6] then
  local h = redis.call('HGETALL', KEYS[1])
  h[#h + 1] = 'now'
  h[#h + 1] = string.format('%d', now)
  return h
end
if cur ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'token', ARGV[1], 'owner', ARGV[2], 'command', ARGV[3], 'started', string.format('%d', now))
end
local exp = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'expires', string.format('%d', exp))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + tonumber(ARGV[5]))
return {'ok', string.format('%d', now), string.format('%d', exp)}
`;

const RELEASE_LUA = `
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

const READ_LUA = `
local t = redis.call('TIME')
local h = redis.call('HGETALL', KEYS[1])
h[#h + 1] = 'now'
h[#h + 1] = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return h
`;

/** Why the lease could not be stored (the cluster is down, no node answered). */
class LeaseUnavailable extends Error {}

/**
 * Runs a command on the key's slot owner, starting from the last node that answered or
 * the seeds in order, following MOVED and ASK (with ASKING) as a cluster client does.
 */
class KeyRouter {
    private last?: NodeKey;
    constructor(private readonly pool: NodePool, private readonly seeds: NodeKey[]) {}

    /** The node that serves the lease key without redirection, or undefined while its slot is being moved (ASK). */
    async locate(): Promise<NodeKey | undefined> {
        this.askedLast = false;
        await this.call("EXISTS", LEASE_KEY);
        return this.askedLast ? undefined : this.last;
    }
    private askedLast = false;

    async call(...args: (string | number)[]): Promise<unknown> {
        const starts = [...new Set([...(this.last ? [this.last] : []), ...this.seeds])];
        const errors: string[] = [];
        for (const start of starts) {
            let node = start;
            let asking = false;
            for (let hop = 0; hop < 8; hop++) {
                try {
                    let reply: unknown;
                    const c = await this.pool.get(node);
                    if (asking) {
                        const r = (await c.pipeline().call("ASKING").call(...(args as [string, ...(string | number)[]])).exec())!;
                        if (r[1][0]) throw r[1][0];
                        reply = r[1][1];
                    } else {
                        reply = await c.call(...(args as [string, ...(string | number)[]]));
                    }
                    if (!asking) this.last = node;
                    this.askedLast = asking;
                    return reply;
                } catch (e) {
                    const msg = (e as Error).message;
                    const moved = /\bMOVED \d+ (\S+)/.exec(msg);
                    const ask = /\bASK \d+ (\S+)/.exec(msg);
                    if (moved || ask) {
                        node = (moved ?? ask)![1];
                        asking = !!ask;
                        continue;
                    }
                    if (/\bTRYAGAIN\b/.test(msg)) {
                        await new Promise((r) => setTimeout(r, 50));
                        continue;
                    }
                    if (/\bCLUSTERDOWN\b|cannot connect|Connection is closed|timed? ?out|LOADING|MASTERDOWN/i.test(msg)) {
                        errors.push(msg.startsWith("cannot connect") ? msg : `${node}: ${msg}`);
                        break; // next seed
                    }
                    throw e;
                }
            }
        }
        throw new LeaseUnavailable(errors.length ? errors[errors.length - 1] : "no node answered");
    }
}

const isNoScript = (msg: string) => /NOPERM|unknown command|scripting|no scripts/i.test(msg) && /eval/i.test(msg);

/**
 * The lease operations, by Lua script, or, where scripting is not allowed (an ACL without
 * @scripting, as the engine also allows), by WATCH/MULTI on a connection of its own to the
 * key's master (a shared connection would put other commands inside the transaction).
 */
class LeaseStore {
    private noScript = false;
    constructor(private readonly pool: NodePool, private readonly router: KeyRouter) {}

    /** ACQUIRE_LUA's reply: ["ok", now, expires] or the holder's fields plus now. */
    async acquire(token: string, owner: string, command: string, ttlMs: number, takeOverToken: string): Promise<unknown[]> {
        const args = [token, owner, command, ttlMs, LEASE_KEEP_AFTER_EXPIRY_MS, takeOverToken];
        const scripted = await this.scripted(ACQUIRE_LUA, args);
        if (scripted) return scripted.reply as unknown[];
        return this.transaction((cur, now) => {
            if (cur.token && cur.token !== token && cur.token !== takeOverToken) return { reply: [...Object.entries(cur).flat(), "now", String(now)] };
            const exp = now + ttlMs;
            return {
                reply: ["ok", String(now), String(exp)],
                write: (m) => {
                    if (cur.token !== token) m.del(LEASE_KEY).hset(LEASE_KEY, { token, owner, command, started: String(now) });
                    m.hset(LEASE_KEY, "expires", String(exp)).pexpire(LEASE_KEY, ttlMs + LEASE_KEEP_AFTER_EXPIRY_MS);
                },
            };
        });
    }

    async release(token: string): Promise<void> {
        if (await this.scripted(RELEASE_LUA, [token])) return;
        await this.transaction((cur) => ({ reply: [], write: cur.token === token ? (m) => m.del(LEASE_KEY) : undefined }));
    }

    /** READ_LUA's reply: the fields plus now. */
    async read(): Promise<unknown[]> {
        const scripted = await this.scripted(READ_LUA, []);
        if (scripted) return scripted.reply as unknown[];
        return this.transaction((cur, now) => ({ reply: [...Object.entries(cur).flat(), "now", String(now)] }));
    }

    /** The script's reply, or undefined when scripting is not allowed (then the transaction path is used from now on). */
    private async scripted(script: string, args: (string | number)[]): Promise<{ reply: unknown } | undefined> {
        if (this.noScript) return undefined;
        try {
            return { reply: await this.router.call("EVAL", script, 1, LEASE_KEY, ...args) };
        } catch (e) {
            if (!isNoScript((e as Error).message)) throw e;
            this.noScript = true;
            return undefined;
        }
    }

    private async transaction(decide: (cur: Record<string, string>, now: number) => { reply: unknown[]; write?: (m: ReturnType<Redis["multi"]>) => void }): Promise<unknown[]> {
        for (let attempt = 0; attempt < 20; attempt++) {
            // The master that serves the key without redirection (a plain read through the router).
            const node = await this.router.locate();
            if (!node) {
                await new Promise((r) => setTimeout(r, 100)); // its slot is being moved: ASK; try again shortly
                continue;
            }
            const c = new Redis(this.pool.clientOptions(node));
            c.on("error", () => undefined);
            try {
                await c.connect().catch((e: Error) => {
                    throw new LeaseUnavailable(`cannot connect to ${node}: ${e.message}`);
                });
                await c.watch(LEASE_KEY);
                const [cur, t] = await Promise.all([c.hgetall(LEASE_KEY), c.time()]);
                const d = decide(cur, Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000));
                if (!d.write) return d.reply;
                const m = c.multi();
                d.write(m);
                if (await m.exec()) return d.reply; // null: the key changed meanwhile, decide again
            } catch (e) {
                if (!/\b(MOVED|ASK|TRYAGAIN)\b|EXECABORT/.test((e as Error).message)) throw e;
            } finally {
                c.disconnect();
            }
        }
        throw new LeaseUnavailable("the lease key kept moving or changing (20 attempts)");
    }
}

function toRecord(flat: unknown[]): (LeaseRecord & { now: number }) | undefined {
    const m = new Map<string, string>();
    for (let i = 0; i + 1 < flat.length; i += 2) m.set(String(flat[i]), String(flat[i + 1]));
    if (!m.has("token")) return undefined;
    return { owner: m.get("owner") ?? "?", command: m.get("command") ?? "?", token: m.get("token")!, started: Number(m.get("started")), expires: Number(m.get("expires")), now: Number(m.get("now")) };
}

const ago = (ms: number) => (ms < 120_000 ? `${Math.round(ms / 1000)} s` : ms < 7200_000 ? `${Math.round(ms / 60_000)} min` : `${(ms / 3600_000).toFixed(1)} h`);

/** "scale by alice@ops-1:4242 since 2026-12-01T10:02:03Z" */
export function describeLease(r: LeaseRecord): string {
    return `${r.command} by ${r.owner} since ${new Date(r.started).toISOString().replace(/\.\d+Z$/, "Z")}`;
}

export function leaseOwner(): string {
    let user = "unknown";
    try {
        user = userInfo().username;
    } catch {
        user = process.env.USER ?? user;
    }
    return `${user}@${hostname()}:${process.pid}`;
}

/**
 * Why the holder is known to be dead: its owner names this host and a pid that does not
 * run (kill -9, a crash). Undefined when it may be alive (another host, or the pid runs,
 * perhaps reused: then the lease has to expire).
 */
function holderGone(owner: string): string | undefined {
    const m = /@(.+):(\d+)$/.exec(owner);
    if (!m || m[1] !== hostname()) return undefined;
    const pid = Number(m[2]);
    if (pid === process.pid) return undefined;
    try {
        process.kill(pid, 0);
        return undefined;
    } catch (e) {
        return (e as NodeJS.ErrnoException).code === "ESRCH" ? `pid ${pid} is not running` : undefined;
    }
}

/** A held lease. `release()` is idempotent; `signal` aborts if another run took the lease. */
export class Lease {
    private readonly ac = new AbortController();
    private timer?: NodeJS.Timeout;
    private released = false;
    private renewing?: Promise<void>;
    private warnedUnavailable = false;
    /** Why the lease was lost, once it was. */
    lost?: string;

    constructor(
        private readonly store: LeaseStore | undefined,
        readonly record: LeaseRecord | undefined,
        private readonly opts: LeaseOptions,
    ) {}

    /** False when a best-effort command went on without a lease. */
    get held(): boolean {
        return !!this.record && !this.released;
    }

    get signal(): AbortSignal {
        return this.ac.signal;
    }

    /** @internal */
    startRenewing(): void {
        if (!this.record) return;
        const every = this.opts.renewEveryMs ?? Math.floor((this.opts.ttlMs ?? DEFAULT_LEASE_TTL_MS) / 3);
        this.timer = setInterval(() => {
            this.renewing ??= this.renew().finally(() => (this.renewing = undefined));
        }, every);
        this.timer.unref(); // never what keeps the process alive
    }

    /** Extends the lease now (the timer does it every renewEveryMs). */
    async renew(): Promise<void> {
        if (!this.record || this.released || this.lost) return;
        const r = this.record;
        try {
            const reply = await this.store!.acquire(r.token, r.owner, r.command, this.opts.ttlMs ?? DEFAULT_LEASE_TTL_MS, "");
            if (String(reply[0]) === "ok") {
                r.expires = Number(reply[2]);
                this.warnedUnavailable = false;
                return;
            }
            const other = toRecord(reply);
            this.lost = `the cluster lease was taken over by ${other ? describeLease(other) : "another run"}`;
            this.opts.out.warn(`${this.lost}: ${r.command} stops at the next safe point`);
            this.ac.abort(new RefusedError(`${r.command}: ${this.lost}; stopped`));
        } catch (e) {
            if (!this.warnedUnavailable) this.opts.out.warn(`could not renew the cluster lease (${(e as Error).message}); retrying`);
            this.warnedUnavailable = true;
        }
    }

    /** Stops renewing and deletes the lease if it is still ours. */
    async release(): Promise<void> {
        if (this.released) return;
        this.released = true;
        if (this.timer) clearInterval(this.timer);
        await this.renewing?.catch(() => undefined);
        if (!this.record || this.lost) return;
        try {
            await this.store!.release(this.record.token);
        } catch (e) {
            this.opts.out.warn(`could not release the cluster lease (${(e as Error).message}); it expires by itself in at most ${ago(this.opts.ttlMs ?? DEFAULT_LEASE_TTL_MS)}, then the next run reports it and needs --take-over-lease`);
        }
    }
}

/** The lease as the cluster holds it now, with the server's time; undefined when none. */
export async function readLease(pool: NodePool, seeds: NodeKey[]): Promise<(LeaseRecord & { now: number }) | undefined> {
    return toRecord(await new LeaseStore(pool, new KeyRouter(pool, seeds)).read());
}

/**
 * Takes the cluster lease for `opts.command`, renewing it until `release()`. Refuses
 * (RefusedError) when another run holds it, live or expired (expired: unless
 * `takeOver`), or when it cannot be stored and `mode` is "required".
 */
export async function acquireLease(pool: NodePool, seeds: NodeKey[], opts: LeaseOptions): Promise<Lease> {
    const store = new LeaseStore(pool, new KeyRouter(pool, seeds));
    const token = randomBytes(12).toString("hex");
    const owner = leaseOwner();
    const ttl = opts.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    const attempt = (takeOverToken: string) => store.acquire(token, owner, opts.command, ttl, takeOverToken);
    let reply: unknown[];
    try {
        reply = await attempt("");
        const holder = String(reply[0]) === "ok" ? undefined : toRecord(reply);
        if (holder) {
            const gone = holderGone(holder.owner);
            const live = holder.expires > holder.now && !gone;
            if (live) {
                throw new RefusedError(`${opts.command}: the cluster is leased to ${describeLease(holder)} (expires in ${ago(holder.expires - holder.now)} unless renewed); ` +
                    `nothing was changed. Wait for that run to finish; a lease is never taken over while it is renewed.`);
            }
            const died = gone && holder.expires > holder.now
                ? `the cluster lease of ${describeLease(holder)} is held by a process that no longer runs on this host (${gone})`
                : `the cluster lease of ${describeLease(holder)} expired ${ago(holder.now - holder.expires)} ago: that run probably died`;
            if (!opts.takeOver) {
                throw new RefusedError(`${opts.command}: ${died}; nothing was changed. Check that it is not running any more, then rerun with --take-over-lease`);
            }
            opts.out.warn(`${died}; taking it over (--take-over-lease)`);
            reply = await attempt(holder.token);
            if (String(reply[0]) !== "ok") {
                const now = toRecord(reply);
                throw new RefusedError(`${opts.command}: another run took the expired lease first (${now ? describeLease(now) : "unknown"}); nothing was changed`);
            }
        }
    } catch (e) {
        if (e instanceof RefusedError) throw e;
        if (!(e instanceof LeaseUnavailable)) {
            throw new StepError({ op: opts.command, step: "take-lease", cause: e, state: "nothing changed", resume: `fix the cause named above, then rerun \`${opts.command}\`` });
        }
        if ((opts.mode ?? "required") === "required") {
            throw new RefusedError(`${opts.command}: cannot take the cluster lease (${e.message}); nothing was changed. ` +
                `The master serving the lease's slot must answer; to repair a cluster that is down use failover --force/--takeover, forget or replicate, which go on without it.`);
        }
        opts.out.warn(`${opts.command}: going on without the cluster lease (${e.message}): nothing stops another run meanwhile`);
        return new Lease(undefined, undefined, opts);
    }
    const record: LeaseRecord = { owner, command: opts.command, token, started: Number(reply[1]), expires: Number(reply[2]) };
    const lease = new Lease(store, record, opts);
    lease.startRenewing();
    return lease;
}

/** Runs `fn` holding the cluster lease; released on success and on failure. */
export async function withLease<T>(pool: NodePool, topology: Topology, opts: LeaseOptions, fn: (lease: Lease) => Promise<T>): Promise<T> {
    const lease = await acquireLease(pool, topology.nodes.map((n) => `${n.host}:${n.port}`), opts);
    try {
        return await fn(lease);
    } finally {
        await lease.release();
    }
}
