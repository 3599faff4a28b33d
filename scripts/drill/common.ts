/**
 * What every drill shares: the report (figures measured, promises checked), a
 * writing client that records what was acknowledged, and the checks run after
 * a drill (acknowledged keys still readable, open slots, key counts per shard).
 *
 * Drills run real redis-server processes through the test harness
 * (test/helpers: random loopback ports, SIGKILL on exit) and drive the cluster
 * with the tool's own command line (scripts/cli.ts), as an operator would.
 */
import Redis, { Cluster, ClusterOptions } from "ioredis";
import { parseClusterNodes, ClusterNodeInfo } from "../plan/clusterNodes";

export interface PromiseCheck {
    /** What is promised, in words. */
    promise: string;
    kept: boolean;
    /** The measurement it was judged on. */
    measured: string;
}

export interface DrillReport {
    drill: string;
    /** Parameters of the run (node timeout, key counts, quick or full). */
    setup: Record<string, unknown>;
    /** Numbers measured. */
    figures: Record<string, unknown>;
    promises: PromiseCheck[];
    /** Every promise kept. */
    ok: boolean;
    durationMs: number;
}

export class Report {
    readonly figures: Record<string, unknown> = {};
    readonly promises: PromiseCheck[] = [];
    private readonly t0 = Date.now();
    constructor(readonly drill: string, readonly setup: Record<string, unknown>, private readonly log: (line: string) => void) {}

    figure(name: string, value: unknown): void {
        this.figures[name] = value;
        this.log(`  ${name}: ${typeof value === "object" ? JSON.stringify(value) : String(value)}`);
    }

    check(promise: string, kept: boolean, measured: string): boolean {
        this.promises.push({ promise, kept, measured });
        this.log(`  ${kept ? "KEPT  " : "BROKEN"} ${promise} (${measured})`);
        return kept;
    }

    done(): DrillReport {
        return { drill: this.drill, setup: this.setup, figures: this.figures, promises: this.promises, ok: this.promises.every((p) => p.kept), durationMs: Date.now() - this.t0 };
    }
}

export function renderReport(r: DrillReport): string {
    const L = [`drill ${r.drill}: ${r.ok ? "every promise kept" : `${r.promises.filter((p) => !p.kept).length} promise(s) BROKEN`} (${(r.durationMs / 1000).toFixed(1)} s)`];
    L.push(`  setup: ${Object.entries(r.setup).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ")}`);
    for (const [k, v] of Object.entries(r.figures)) L.push(`  ${k}: ${typeof v === "object" ? JSON.stringify(v) : String(v)}`);
    for (const p of r.promises) L.push(`  [${p.kept ? "kept" : "BROKEN"}] ${p.promise}: ${p.measured}`);
    return L.join("\n");
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A cluster client as an application would configure one for a failover: short
 * timeouts, one retry, slot map refreshed often, so errors surface instead of
 * queueing and the new master is found quickly.
 */
export function appClient(seeds: { host: string; port: number }[], auth?: { user?: string; password?: string }, extra: Partial<ClusterOptions> = {}): Cluster {
    const c = new Cluster(seeds, {
        // Not ioredis' slotsRefreshInterval: a disconnect() during a refresh re-arms its timer for
        // good and keeps the process alive. The same refresh from an unref'd timer stopped on "end":
        slotsRefreshInterval: 0,
        slotsRefreshTimeout: 500,
        retryDelayOnClusterDown: 100,
        retryDelayOnFailover: 100,
        retryDelayOnTryAgain: 100,
        enableOfflineQueue: true,
        redisOptions: { username: auth?.user, password: auth?.password, connectTimeout: 500, commandTimeout: 1000, maxRetriesPerRequest: 1 },
        ...extra,
    });
    c.on("error", () => undefined);
    c.on("node error", () => undefined);
    const refresh = setInterval(() => c.status === "ready" && c.refreshSlotsCache(), 200);
    refresh.unref();
    c.once("end", () => clearInterval(refresh));
    return c;
}

export type WriteMode = "plain" | "wait1";

export interface Writer {
    /** key -> value, for writes the client was told succeeded (with WAIT 1: that at least one replica has). */
    acked: Map<string, string>;
    /** key -> when its acknowledgement arrived (ms since epoch). */
    ackedAt: Map<string, number>;
    /** Writes that failed with an error the client saw (connection, CLUSTERDOWN, timeout). */
    errors: number;
    /** WAIT 1 answered 0: the master took the write, no replica confirmed it in time; not counted as acknowledged. */
    unconfirmed: number;
    attempts(): number;
    /** Time of the first and last error seen, ms since epoch. */
    errorWindow(): { first?: number; last?: number };
    stop(): Promise<void>;
}

/**
 * Writes new unique keys from `lanes` concurrent loops until stopped. Each key is
 * written once, so "acknowledged then lost" is simply a key that later reads back
 * missing or different. With `wait1`, SET and WAIT 1 go to the same node in one
 * pipeline (WAIT has no key: ioredis keeps it on the SET's node).
 */
export function startWriter(c: Cluster, prefix: string, mode: WriteMode, lanes = 4, waitTimeoutMs = 200): Writer {
    const acked = new Map<string, string>();
    const ackedAt = new Map<string, number>();
    let errors = 0;
    let unconfirmed = 0;
    let attempts = 0;
    let first: number | undefined;
    let last: number | undefined;
    let running = true;
    const loop = async (lane: number) => {
        for (let i = 0; running; i++) {
            const key = `${prefix}:{${lane}.${i}}`;
            const val = `${lane}-${i}`;
            attempts++;
            try {
                if (mode === "plain") {
                    await c.set(key, val);
                    acked.set(key, val);
                    ackedAt.set(key, Date.now());
                } else {
                    const res = await c.pipeline().set(key, val).call("WAIT", "1", String(waitTimeoutMs)).exec();
                    const err = res?.find(([e]) => e)?.[0];
                    if (err) throw err;
                    if (Number(res![1][1]) >= 1) {
                        acked.set(key, val);
                        ackedAt.set(key, Date.now());
                    } else unconfirmed++;
                }
            } catch {
                errors++;
                last = Date.now();
                first ??= last;
                await sleep(20); // a failing node answers at once: do not spin
            }
        }
    };
    const all = Array.from({ length: lanes }, (_, l) => loop(l));
    return {
        acked,
        ackedAt,
        get errors() { return errors; },
        get unconfirmed() { return unconfirmed; },
        attempts: () => attempts,
        errorWindow: () => ({ first, last }),
        async stop() {
            running = false;
            await Promise.all(all);
        },
    } as Writer;
}

/** Keys of `want` that read back missing or with another value (through a fresh cluster client). */
export async function lostKeys(c: Cluster, want: Map<string, string>): Promise<string[]> {
    const bad: string[] = [];
    const entries = [...want];
    for (let i = 0; i < entries.length; i += 2000) {
        const chunk = entries.slice(i, i + 2000);
        // A timeout under load is not a lost key: retry the chunk before giving up.
        let got: (string | null)[] = [];
        for (let attempt = 1; ; attempt++) {
            try {
                got = await Promise.all(chunk.map(([k]) => c.get(k)));
                break;
            } catch (e) {
                if (attempt >= 5) throw e;
                await sleep(500 * attempt);
            }
        }
        chunk.forEach(([k, v], j) => {
            if (got[j] !== v) bad.push(k);
        });
    }
    return bad;
}

/** CLUSTER NODES as the node itself reports it. */
export async function nodesOf(c: Redis): Promise<ClusterNodeInfo[]> {
    return parseClusterNodes((await c.call("CLUSTER", "NODES")) as string);
}

/** Open slots (importing + migrating) a node reports. */
export async function openSlotsOf(c: Redis): Promise<number> {
    const me = (await nodesOf(c)).find((n) => n.myself)!;
    return me.importing.size + me.migrating.size;
}

/** Polls until `check` is true; returns the time it took, or undefined on timeout. */
export async function timeUntil(check: () => Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<number | undefined> {
    const t0 = Date.now();
    while (Date.now() - t0 < timeoutMs) {
        try {
            if (await check()) return Date.now() - t0;
        } catch {
            /* not yet */
        }
        await sleep(everyMs);
    }
    return undefined;
}

/** Percentile of a sorted-or-not list of numbers. */
export function percentile(xs: number[], p: number): number {
    if (!xs.length) return NaN;
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
