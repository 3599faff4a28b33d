/**
 * The per-shard claim, as the node script (components/bootstrap/backup.sh) runs it, for
 * the tool's own backups (`backup --topology … --to DIR|s3://…`), so a tool run and the
 * nodes' timers, or two tool runs, never both back up one shard of one backup id:
 *
 * - nobody claimed the shard: candidate `rank` (0 for the rule's first) creates
 *   `shard-<n>.claim` only if absent (BackupStore.create) and reads it back, after
 *   `settleMs` on S3; it holds the shard only if the stored claim carries its token (a
 *   store that ignores If-None-Match keeps the last of two writes);
 * - the holder renews `expiresAt` every `renewMs` and works only while its claim is
 *   unexpired by its own clock (`HeldClaim.valid`); giving up, it marks the claim failed
 *   and lets it expire at once;
 * - a claim whose `expiresAt + graceMs` passed without a shard manifest is stale: one
 *   other candidate may take it over (`shard-<n>.takeover.claim`, created only if absent);
 *   a stale takeover is final (no backup of that shard for that id);
 * - a shard manifest ends it: everyone else returns "done".
 */
import { randomBytes } from "node:crypto";
import { backupPaths, parseClaim, parseShardManifest, ShardClaim, ShardManifest } from "./manifest";
import { BackupStore } from "./store";

export interface ClaimTiming {
    /** Candidate k claims a shard nobody claimed after k of these. @default 60 s */
    deadlineMs: number;
    /** A claim expires this long after its last renewal. @default 120 s */
    leaseMs: number;
    /** @default a quarter of the lease */
    renewMs: number;
    /** Others wait this past expiresAt (clock skew) before a takeover. @default 30 s */
    graceMs: number;
    /** Wait before reading a new claim back. @default 5 s */
    settleMs: number;
    /** How often a waiting claimer looks again. @default 10 s */
    pollMs: number;
}

export const DEFAULT_CLAIM_TIMING: ClaimTiming = { deadlineMs: 60_000, leaseMs: 120_000, renewMs: 30_000, graceMs: 30_000, settleMs: 5_000, pollMs: 10_000 };

export interface Claimer {
    nodeName: string;
    nodeId: string;
    address: string;
    role: "replica" | "master";
    reason: string;
}

export interface ShardRef {
    clusterName: string;
    backupId: string;
    shard: number;
}

export type ClaimOutcome =
    | { kind: "held"; claim: HeldClaim }
    | { kind: "done"; manifest: ShardManifest }
    | { kind: "given-up"; message: string };

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((res, rej) => {
    if (signal?.aborted) return rej(signal.reason ?? new Error("interrupted"));
    const t = setTimeout(() => { signal?.removeEventListener("abort", onAbort); res(); }, ms);
    const onAbort = () => { clearTimeout(t); rej(signal!.reason ?? new Error("interrupted")); };
    signal?.addEventListener("abort", onAbort, { once: true });
});

/** A claim this process holds: renewed in the background until stop() or release(). */
export class HeldClaim {
    private timer?: NodeJS.Timeout;
    private expiresAtMs: number;
    private stopped = false;
    private first = true;
    constructor(private readonly store: BackupStore, readonly key: string, private doc: ShardClaim, private readonly timing: ClaimTiming,
        private readonly log: (msg: string) => void) {
        this.expiresAtMs = Date.parse(doc.expiresAt);
        this.schedule();
    }

    get claim(): ShardClaim {
        return this.doc;
    }

    /** Whether this process may still work on the shard: its claim is unexpired by its own clock. */
    valid(): boolean {
        return !this.stopped && Date.now() < this.expiresAtMs;
    }

    private schedule(): void {
        // The first renewal at once (the nodes do the same): a new claim carries two leases, a renewed one one.
        this.timer = setTimeout(() => void this.renew(), this.first ? 0 : this.timing.renewMs);
        this.first = false;
        this.timer.unref();
    }

    private async renew(): Promise<void> {
        if (this.stopped) return;
        // Never renew an expired claim: another node may have taken the shard over by now.
        if (!this.valid()) return this.log(`${this.key}: the claim expired before it could be renewed`);
        const next = { ...this.doc, renewedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + this.timing.leaseMs).toISOString() };
        try {
            await this.store.write(this.key, JSON.stringify(next, null, 2) + "\n");
            if (this.valid()) {
                this.doc = next;
                this.expiresAtMs = Date.parse(next.expiresAt);
            }
        } catch (e) {
            this.log(`${this.key}: claim renewal failed (${(e as Error).message}); it holds until ${this.doc.expiresAt}`);
        }
        if (!this.stopped) this.schedule();
    }

    /** Done (the manifest is written): stop renewing; the manifest now speaks for the shard. */
    stop(): void {
        this.stopped = true;
        clearTimeout(this.timer);
    }

    /** Gave up: say why in the claim and let it expire now, so another node takes over after the grace period. */
    async release(failed: string): Promise<void> {
        const wasValid = this.valid();
        this.stop();
        if (!wasValid) return;
        const doc = { ...this.doc, renewedAt: new Date().toISOString(), expiresAt: new Date().toISOString(), failed: failed.replace(/\s+/g, " ").slice(0, 500) };
        await this.store.write(this.key, JSON.stringify(doc, null, 2) + "\n").catch((e) => this.log(`${this.key}: could not mark the claim failed (${(e as Error).message}); it expires on its own`));
    }
}

/**
 * Waits until this claimer holds the shard, someone else's manifest for it exists, or
 * the one takeover was spent. `rank` is the claimer's place in the rule's order.
 */
export async function acquireShard(store: BackupStore, ref: ShardRef, me: Claimer, opts: { rank: number; timing?: Partial<ClaimTiming>; signal?: AbortSignal; log?: (msg: string) => void }): Promise<ClaimOutcome> {
    const t: ClaimTiming = { ...DEFAULT_CLAIM_TIMING, ...opts.timing };
    if (opts.timing?.leaseMs !== undefined && opts.timing.renewMs === undefined) t.renewMs = Math.max(1000, Math.floor(t.leaseMs / 4));
    const log = opts.log ?? (() => undefined);
    const paths = backupPaths(ref.clusterName, ref.backupId);
    const token = randomBytes(8).toString("hex");
    const start = Date.now();
    let waitingFor = "";

    const tryClaim = async (generation: 1 | 2, reason: string): Promise<HeldClaim | undefined> => {
        const key = paths.claim(ref.shard, generation);
        const now = new Date();
        const doc: ShardClaim = {
            version: 1, backupId: ref.backupId, clusterName: ref.clusterName, shard: ref.shard, generation,
            nodeName: me.nodeName, nodeId: me.nodeId, address: me.address, role: me.role, token, reason,
            // Two leases for a new claim, as on the nodes: creating and reading it back come before the first renewal.
            claimedAt: now.toISOString(), renewedAt: now.toISOString(), expiresAt: new Date(now.getTime() + 2 * t.leaseMs).toISOString(),
        };
        if (!(await store.create(key, JSON.stringify(doc, null, 2) + "\n"))) {
            log(`${store.location}/${key} was created by another node first`);
            return undefined;
        }
        if (!store.createIsExclusive) await sleep(t.settleMs, opts.signal);
        const back = await store.readText(key);
        if (back === undefined) throw new Error(`${store.location}/${key} vanished after it was written`);
        const stored = parseClaim(back, `${store.location}/${key}`);
        if (stored.token !== token) {
            log(`${store.location}/${key} names ${stored.nodeName} (${stored.address}) after ours: it holds the shard`);
            return undefined;
        }
        if (Date.now() >= Date.parse(doc.expiresAt)) return undefined;
        return new HeldClaim(store, key, doc, t, log);
    };

    for (;;) {
        const manifestText = await store.readText(paths.shardManifest(ref.shard));
        if (manifestText !== undefined) return { kind: "done", manifest: parseShardManifest(manifestText, `${store.location}/${paths.shardManifest(ref.shard)}`) };
        const text2 = await store.readText(paths.claim(ref.shard, 2));
        const text1 = text2 === undefined ? await store.readText(paths.claim(ref.shard, 1)) : undefined;
        const now = Date.now();
        if (text2 === undefined && text1 === undefined) {
            if (now >= start + opts.rank * t.deadlineMs) {
                const reason = opts.rank === 0 ? me.reason : `${me.reason}: nobody claimed the shard within ${Math.round((opts.rank * t.deadlineMs) / 1000)}s`;
                const held = await tryClaim(1, reason);
                if (held) return { kind: "held", claim: held };
            }
        } else {
            const generation = text2 !== undefined ? 2 : 1;
            const key = paths.claim(ref.shard, generation);
            const cur = parseClaim((text2 ?? text1)!, `${store.location}/${key}`);
            const who = `${cur.nodeName} (${cur.address})`;
            const exp = Date.parse(cur.expiresAt);
            if (now > exp + t.graceMs) {
                const why = `${who}'s claim expired at ${cur.expiresAt} without a manifest${cur.failed ? ` (${cur.failed})` : ""}`;
                if (generation === 2) return { kind: "given-up", message: `shard ${ref.shard}: the takeover by ${why}, and a claim is taken over once: no backup of shard ${ref.shard} in ${store.location}/${paths.dir}` };
                const held = await tryClaim(2, `takeover: ${why}`);
                if (held) return { kind: "held", claim: held };
            } else if (waitingFor !== `${generation} ${who}`) {
                waitingFor = `${generation} ${who}`;
                log(`shard ${ref.shard} is claimed by ${who} until ${cur.expiresAt} (renewed while it works): waiting for its manifest`);
            }
        }
        await sleep(t.pollMs, opts.signal);
    }
}
