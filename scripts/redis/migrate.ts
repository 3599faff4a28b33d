/**
 * MIGRATE building blocks: the command line (batched KEYS, AUTH2 when the nodes
 * run ACLs), how its errors are classified, and backoff for retries.
 *
 * MIGRATE runs node to node: the source connects to the target's *announced*
 * address (as in CLUSTER NODES), never to the tool's NAT-mapped one.
 * See https://redis.io/docs/latest/commands/migrate/ — with KEYS, the keys that
 * were restored are deleted from the source even when another key of the same
 * call fails, so a failed call is retried by asking the source again which keys
 * it still holds (GETKEYSINSLOT), never by resending the old list blindly.
 */
import { Credentials } from "./pool";

export interface MigrateDestination {
    /** Announced host and port of the target, as the source node reaches it. */
    host: string;
    port: number;
}

export interface MigrateOptions {
    /** MIGRATE's I/O timeout in ms (idle time per read/write, not a total). */
    timeoutMs: number;
    /**
     * Overwrite keys that exist on the target: only once the target is known to import the
     * slot from this source, so its copies are leftovers (BUSYKEY, in moveSlot.ts's header).
     */
    replace?: boolean;
    credentials?: Credentials;
}

/** Arguments after "MIGRATE": host port "" 0 timeout [REPLACE] [AUTH pw | AUTH2 user pw] KEYS k1 … kN. */
export function migrateArgs(dst: MigrateDestination, keys: (string | Buffer)[], opts: MigrateOptions): (string | Buffer)[] {
    const args: (string | Buffer)[] = [dst.host, String(dst.port), "", "0", String(Math.max(1, Math.round(opts.timeoutMs)))];
    if (opts.replace) args.push("REPLACE");
    const c = opts.credentials;
    if (c?.password !== undefined && c.password !== "") {
        if (c.user && c.user !== "default") args.push("AUTH2", c.user, c.password);
        else args.push("AUTH", c.password);
    }
    args.push("KEYS", ...keys);
    return args;
}

export type MigrateErrorKind =
    /** A key exists on the target. */
    | "busy"
    /** Timeout, connection trouble, a target that is loading or momentarily down: retry with backoff. */
    | "transient"
    /** The source no longer serves the slot (MOVED/ASK): the cluster changed under us. */
    | "moved"
    /** Anything else (auth refused by the target, wrong type …): stop and report. */
    | "fatal";

export function classifyMigrateError(message: string): MigrateErrorKind {
    const m = message.toUpperCase();
    if (m.includes("BUSYKEY")) return "busy";
    if (/^(MOVED|ASK) /.test(m) || m.includes(" MOVED ") || m.includes(" ASK ")) return "moved";
    if (m.includes("IOERR") || m.includes("TIMEOUT") || m.includes("TRYAGAIN") || m.includes("LOADING") || m.includes("CLUSTERDOWN") || m.includes("ECONNRESET") || m.includes("BUSY ")) return "transient";
    return "fatal";
}

/** Exponential backoff with jitter: 50 ms, 100 ms, … capped at `capMs`. */
export function backoffMs(attempt: number, capMs = 5000): number {
    const base = Math.min(capMs, 50 * 2 ** attempt);
    return Math.round(base / 2 + (Math.random() * base) / 2);
}

/**
 * MIGRATE timeout for a key of `bytes`: the base, plus time to ship it at a
 * conservative 20 MB/s (cross-zone links, a busy target), so a big key never
 * times out half-way while small keys keep a short timeout.
 */
export function migrateTimeoutFor(bytes: number, baseMs: number): number {
    return Math.round(baseMs + (bytes / (20 * 1024 * 1024)) * 1000);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
