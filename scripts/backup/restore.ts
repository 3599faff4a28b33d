/**
 * The restore engine: a backup's RDB files into a running cluster of any shard count.
 *
 * Each shard's RDB is streamed from the store (from S3 without touching the disk) through
 * the RDB reader; every key goes to the master that owns its slot now, as
 * `RESTORE key <expire-at-ms|0> payload ABSTTL [REPLACE]`, in pipelined batches to every
 * master in parallel. `MOVED` updates the slot map and resends; `ASK` resends once with
 * `ASKING`. Keys whose expiry has passed are skipped and counted. A value the target
 * cannot RESTORE (above its proto-max-bulk-len, a type its RDB version does not know, or
 * refused as "Bad data format") is rebuilt element by element (rdb/commands.ts).
 *
 * Memory is bounded by `memoryBytes`, not by the backup: values above a quarter of it are
 * not buffered but decoded element by element from the stream, and the RESTORE commands
 * queued and in flight never take more than half of it (the reader waits).
 *
 * Speed (issue #11: 1,000,000 keys in seconds): a key's DUMP payload is the RDB value bytes as
 * read, framed with the type byte, RDB version and CRC-64; it is written, with the RESTORE
 * command around it, straight into the owner's pooled batch buffer (no per-key Buffer, string,
 * promise or object), and the reader hands out up to 256 records per await.
 */
import { createHash } from "node:crypto";
import { Transform } from "node:stream";
import { interruption, RefusedError, StepError } from "../errors";
import { Output, fmtBytes, fmtDuration } from "../output";
import { parseDumpPayload, readRdbBatches, rebuildCommands, retargetPayload, decodeValue, writeDumpPayload as writeDump, RdbFormatError, RdbUnsupportedError, RDB_TYPE_MIN_VERSION } from "../rdb";
import type { Command } from "../rdb";
import { ClusterView, parseInfo } from "../redis/clusterView";
import { slotOwners } from "../redis/clusterNodes";
import { keySlot as slotOf } from "../redis/keySlot";
import { NodeKey, NodePool } from "../redis/pool";
import { RespPipe } from "../redis/respPipe";
import { LEASE_KEY } from "../redis/lease";
import { LoadedBackup } from "./catalog";
import { backupPaths, ShardManifest } from "./manifest";
import { BackupStore } from "./store";

export interface RestoreOptions {
    replace: boolean;
    /** @default 256 MiB */
    memoryBytes?: number;
    /** RESTOREs per pipelined batch. @default 256 */
    batch?: number;
    /** Batches in flight per master. @default 4 */
    batchesInFlight?: number;
    out: Output;
    signal?: AbortSignal;
    /** Now, for "expired" (tests). */
    now?: () => number;
}

export interface ShardCounts {
    shard: number;
    /** keys in the manifest (the RDB's key count when it was written) */
    keysExpected: number;
    keysRead: number;
    restored: number;
    expired: number;
    conflicts: number;
    /** of the restored, how many were rebuilt element by element */
    elementWise: number;
    /** the tool's own lease key (a backup taken while a command ran holds it): never restored */
    toolKeys: number;
    /** keys sent with an expiry (they may lapse on the target before anyone counts them) */
    withTtl: number;
    /** empty collections the reader dropped, as Redis does on load */
    emptySkipped: number;
    bytes: number;
    checksumOk: boolean;
}

export interface RestoreResult {
    shards: ShardCounts[];
    functions: number;
    /** First few existing keys kept (without --replace). */
    conflictSamples: string[];
    durationMs: number;
    /** Every count matched its manifest, checksums included. */
    ok: boolean;
    problems: string[];
}

/** RDB version a server writes and accepts, from its version. */
export function rdbVersionOf(engine: string, version: string): number {
    const [maj, min] = version.split(".").map(Number);
    if (engine === "valkey") return maj >= 9 ? 80 : 11;
    if (maj > 7 || (maj === 7 && min >= 2)) return 11;
    if (maj === 7) return 10;
    return 9;
}

interface Target {
    rdbVersion: number;
    protoMaxBulkLen: number;
    hasFunctions: boolean;
    streamsV2: boolean;
}

class Budget {
    used = 0;
    private waiters: (() => void)[] = [];
    constructor(readonly limit: number) {}
    /** Takes n bytes when they fit now (the per-key path: no promise unless it has to wait). */
    tryAcquire(n: number): boolean {
        if (this.used > 0 && this.used + n > this.limit) return false;
        this.used += n;
        return true;
    }
    async acquire(n: number): Promise<void> {
        while (this.used > 0 && this.used + n > this.limit) await new Promise<void>((r) => this.waiters.push(r));
        this.used += n;
    }
    release(n: number): void {
        this.used -= n;
        if (!this.waiters.length) return;
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
    }
}

/**
 * One key on its way: where its name and DUMP payload lie in the batch buffer that carried it
 * (views are made only on the rare paths that need them: MOVED/ASK resend, conflicts, errors).
 */
interface Item {
    src: Buffer;
    keyAt: number;
    keyLen: number;
    payAt: number;
    payLen: number;
    /** budget taken: the encoded command's bytes */
    bytes: number;
    slot: number;
    expireAt: number;
    counts: ShardCounts;
    asking?: NodeKey;
    tries: number;
}

const keyOf = (it: Item): Buffer => it.src.subarray(it.keyAt, it.keyAt + it.keyLen);
const payloadOf = (it: Item): Buffer => it.src.subarray(it.payAt, it.payAt + it.payLen);

/**
 * The keys of one batch, column by column, reused with its buffer: a key costs no object.
 * (Per-key objects lived until their batch's replies, survived scavenges and kept the old-space
 * collector busy; an Item is made only for a key that has to be resent.)
 */
class Batch {
    n = 0;
    /** ASKING commands in the batch (each adds a reply) */
    asks = 0;
    keyAt: Int32Array;
    keyLen: Int32Array;
    payAt: Int32Array;
    payLen: Int32Array;
    bytes: Int32Array;
    slot: Int32Array;
    tries: Int32Array;
    expireAt: Float64Array;
    counts: ShardCounts[] = [];
    /** the ASK target per key, only for the keys resent with ASKING */
    asking: (NodeKey | undefined)[] = [];
    constructor(private cap: number) {
        this.keyAt = new Int32Array(cap);
        this.keyLen = new Int32Array(cap);
        this.payAt = new Int32Array(cap);
        this.payLen = new Int32Array(cap);
        this.bytes = new Int32Array(cap);
        this.slot = new Int32Array(cap);
        this.tries = new Int32Array(cap);
        this.expireAt = new Float64Array(cap);
    }

    /** Index of a new key (columns double when a waiting batch keeps taking keys). */
    push(keyAt: number, keyLen: number, payAt: number, payLen: number, bytes: number, slot: number, tries: number, expireAt: number, counts: ShardCounts): number {
        if (this.n === this.cap) this.grow();
        const i = this.n++;
        this.keyAt[i] = keyAt;
        this.keyLen[i] = keyLen;
        this.payAt[i] = payAt;
        this.payLen[i] = payLen;
        this.bytes[i] = bytes;
        this.slot[i] = slot;
        this.tries[i] = tries;
        this.expireAt[i] = expireAt;
        this.counts[i] = counts;
        return i;
    }

    private grow(): void {
        const cap = this.cap * 2;
        const i32 = (a: Int32Array) => {
            const b = new Int32Array(cap);
            b.set(a);
            return b;
        };
        this.keyAt = i32(this.keyAt);
        this.keyLen = i32(this.keyLen);
        this.payAt = i32(this.payAt);
        this.payLen = i32(this.payLen);
        this.bytes = i32(this.bytes);
        this.slot = i32(this.slot);
        this.tries = i32(this.tries);
        const e = new Float64Array(cap);
        e.set(this.expireAt);
        this.expireAt = e;
        this.cap = cap;
    }

    /** The key at i as an Item of its own (resend, retry), its bytes still in `src`. */
    item(i: number, src: Buffer): Item {
        return {
            src, keyAt: this.keyAt[i], keyLen: this.keyLen[i], payAt: this.payAt[i], payLen: this.payLen[i], bytes: this.bytes[i],
            slot: this.slot[i], expireAt: this.expireAt[i], counts: this.counts[i], asking: this.asking[i], tries: this.tries[i],
        };
    }

    reset(): void {
        this.n = 0;
        this.asks = 0;
        this.counts.length = 0;
        if (this.asking.length) this.asking = [];
    }
}

/** Encoded RESTORE bytes besides the key and payload: "*6\r\n$7\r\nRESTORE\r\n$<n>\r\n...\r\n$6\r\nABSTTL\r\n$7\r\nREPLACE\r\n" and an ASKING. */
const RESTORE_OVERHEAD = 160;

const ascii = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "latin1"));
const ASKING = ascii("*1\r\n$6\r\nASKING\r\n");
const RESTORE4 = ascii("*4\r\n$7\r\nRESTORE\r\n$");
const RESTORE5 = ascii("*5\r\n$7\r\nRESTORE\r\n$");
const RESTORE6 = ascii("*6\r\n$7\r\nRESTORE\r\n$");
const ABSTTL = ascii("$6\r\nABSTTL\r\n");
const REPLACE = ascii("$7\r\nREPLACE\r\n");

/** Copies a short constant (a byte loop beats a native copy call at these sizes). */
function put(out: Buffer, at: number, bytes: Uint8Array): number {
    for (let i = 0; i < bytes.length; i++) out[at + i] = bytes[i];
    return at + bytes.length;
}

/** A non-negative integer in decimal, then CRLF. */
function putInt(out: Buffer, at: number, n: number): number {
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    let x = n;
    for (let i = digits - 1; i >= 0; i--) {
        out[at + i] = 48 + (x % 10);
        x = Math.floor(x / 10);
    }
    out[at + digits] = 13;
    out[at + digits + 1] = 10;
    return at + digits + 2;
}

function putBytes(out: Buffer, at: number, src: Buffer, from: number, len: number): number {
    if (len <= 64) for (let i = 0; i < len; i++) out[at + i] = src[from + i];
    else src.copy(out, at, from, from + len);
    return at + len;
}

/** Digits of n (n >= 0). */
function intLen(n: number): number {
    let d = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) d++;
    return d;
}

const LEASE_KEY_BYTES = Buffer.from(LEASE_KEY);

// Bound once: a transpiled import is a getter call per use (per key here, profiled).
const writeDumpPayload = writeDump;
const keySlot = slotOf;

/** A plain copy: read once per key, and a module namespace getter per lookup shows in profiles. */
const MIN_VERSION: Record<number, number> = { ...RDB_TYPE_MIN_VERSION };

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

export class RestoreEngine {
    private owners: (NodeKey | undefined)[];
    private lanes = new Map<NodeKey, Lane>();
    private budget: Budget;
    private failure: Error | undefined;
    readonly conflictSamples: string[] = [];

    constructor(private pool: NodePool, view: ClusterView, private target: Target, private opts: RestoreOptions) {
        this.owners = ownerKeys(view);
        const missing = this.owners.filter((o) => o === undefined).length;
        if (missing) throw new RefusedError(`restore: ${missing} slot(s) have no owner in the target cluster: fix the cluster first (npm run cluster -- status)`);
        // A quarter for the commands queued and in flight, a quarter at most for the lanes' pooled buffers holding them.
        const memory = opts.memoryBytes ?? 256 * 1024 * 1024;
        this.budget = new Budget(Math.floor(memory / 4));
        const lanes = new Set(this.owners).size;
        this.bufferBytes = Math.max(16 * 1024, Math.min(256 * 1024, Math.floor(memory / 4 / (lanes * (this.maxInFlight + 1)))));
    }

    fail(e: Error): void {
        this.failure ??= e;
    }

    check(): void {
        if (this.failure) throw this.failure;
        if (this.opts.signal?.aborted) throw interruption(this.opts.signal, { op: "restore", during: "the restore", state: "some keys restored, others not yet", resume: "run `restore` again with --replace: every key is sent again" });
    }

    private lane(key: NodeKey): Lane {
        let l = this.lanes.get(key);
        if (!l) this.lanes.set(key, (l = new Lane(this, key)));
        return l;
    }

    /**
     * Queues `RESTORE key expireAt payload ABSTTL [REPLACE]` for a key read from the RDB: the
     * command, DUMP payload included, is written straight into the owner's batch buffer.
     * Returns a promise only when the caller has to wait (memory budget or batches in flight);
     * the key and value views must stay valid until it settles.
     */
    restore(key: Buffer, slot: number, rdbType: number, value: Buffer, rdbVersion: number, expireAt: number, counts: ShardCounts): void | Promise<void> {
        const bytes = key.length + value.length + RESTORE_OVERHEAD;
        if (!this.budget.tryAcquire(bytes)) {
            return this.budget.acquire(bytes).then(() => {
                this.check();
                return this.lane(this.ownerOf(slot)).addRecord(key, slot, rdbType, value, Math.min(rdbVersion, this.target.rdbVersion), expireAt, counts, bytes);
            });
        }
        // A value whose type the older target knows loads fine once stamped with its version (see retargetPayload).
        return this.lane(this.ownerOf(slot)).addRecord(key, slot, rdbType, value, Math.min(rdbVersion, this.target.rdbVersion), expireAt, counts, bytes);
    }

    ownerOf(slot: number): NodeKey {
        return this.owners[slot]!;
    }

    moved(slot: number, to: NodeKey): void {
        this.owners[slot] = to;
    }

    get batch(): number {
        return this.opts.batch ?? 1024;
    }

    /**
     * Size of a lane's pooled batch buffer: up to 256 KiB, less when many masters would make
     * (lanes x (batches in flight + 1)) buffers exceed a quarter of the memory setting.
     */
    readonly bufferBytes: number;

    get maxInFlight(): number {
        return this.opts.batchesInFlight ?? 4;
    }

    get replace(): boolean {
        return this.opts.replace;
    }

    private pipes = new Map<NodeKey, Promise<RespPipe>>();

    /** The bulk connection to a node (RESTORE batches), opened on first use. */
    pipe(key: NodeKey): Promise<RespPipe> {
        let p = this.pipes.get(key);
        if (!p) {
            p = RespPipe.open(key, this.pool.clientOptions(key));
            p.catch(() => this.pipes.delete(key));
            this.pipes.set(key, p);
        }
        return p;
    }

    async close(): Promise<void> {
        for (const p of this.pipes.values()) (await p.catch(() => undefined))?.close();
        this.pipes.clear();
    }

    /** Re-routes an item after MOVED/ASK without taking budget again. */
    resend(item: Item): void {
        const w = this.lane(item.asking ?? this.ownerOf(item.slot)).addItem(item);
        if (w) w.catch((e) => this.fail(e));
    }

    done(bytes: number): void {
        this.budget.release(bytes);
    }

    conflict(counts: ShardCounts, key: Buffer): void {
        counts.conflicts++;
        if (this.conflictSamples.length < 10) this.conflictSamples.push(key.toString("utf8"));
    }

    /** A value RESTORE cannot carry: rebuilt element by element on its owner. */
    async elementWise(key: Buffer, slot: number, chunks: AsyncIterable<import("../rdb").ValueChunk>, expireAt: number | null, counts: ShardCounts): Promise<void> {
        const node = this.ownerOf(slot);
        const c = await this.pool.get(node);
        if (this.replace) await c.del(key);
        else if (await c.exists(key)) {
            this.conflict(counts, key);
            for await (const _ of chunks) { /* drained */ }
            return;
        }
        let batch: Command[] = [];
        const flush = async () => {
            if (!batch.length) return;
            const p = c.pipeline();
            for (const [name, ...args] of batch) p.call(name, ...args);
            const res = (await p.exec())!;
            const bad = res.find(([e]) => e);
            batch = [];
            if (bad) throw new Error(`${node}: rebuilding ${key.toString("utf8")} element by element: ${bad[0]!.message}`);
        };
        for await (const cmd of rebuildCommands(key, chunks, { expireAtMs: expireAt, streamsV2: this.target.streamsV2 })) {
            batch.push(cmd);
            if (batch.length >= 64) await flush();
        }
        await flush();
        counts.restored++;
        counts.elementWise++;
    }

    async drain(): Promise<void> {
        for (;;) {
            await Promise.all([...this.lanes.values()].map((l) => l.flushAll()));
            if ([...this.lanes.values()].every((l) => l.idle())) break;
            await new Promise((r) => setTimeout(r, 5));
        }
        this.check();
    }

    needsElementWise(rdbType: number, payloadBytes: number): boolean {
        return payloadBytes > this.target.protoMaxBulkLen || (MIN_VERSION[rdbType] ?? 0) > this.target.rdbVersion;
    }
}

/**
 * The RESTOREs bound for one master: commands are encoded into a buffer taken from the lane's
 * pool, sent as one write when the batch is full (keys or bytes), with at most `maxInFlight`
 * batches awaiting replies; a batch's buffer goes back to the pool once its replies are in.
 */
class Lane {
    private out: Buffer;
    private len = 0;
    private b: Batch;
    private inFlight = 0;
    private slots: (() => void)[] = [];
    private pendingFlush: Promise<void> | undefined;
    private free: { buf: Buffer; batch: Batch }[] = [];
    constructor(private engine: RestoreEngine, readonly node: NodeKey) {
        this.out = Buffer.allocUnsafe(engine.bufferBytes);
        this.b = new Batch(engine.batch);
    }

    idle(): boolean {
        return this.b.n === 0 && this.inFlight === 0;
    }

    /** Room for n more bytes (a value larger than the pooled size gets a buffer of its own). */
    private room(n: number): void {
        if (this.len + n <= this.out.length) return;
        const next = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.len + n));
        this.out.copy(next, 0, 0, this.len);
        this.out = next;
    }

    /** "[ASKING]*N\r\n$7\r\nRESTORE\r\n$<keyLen>\r\n": where the key goes. */
    private head(asking: boolean, keyLen: number, expireAt: number): number {
        const out = this.out;
        let at = this.len;
        if (asking) at = put(out, at, ASKING);
        // No expiry: `RESTORE key 0 payload` (ABSTTL means nothing with 0).
        at = put(out, at, this.engine.replace ? (expireAt ? RESTORE6 : RESTORE5) : expireAt ? RESTORE5 : RESTORE4);
        return putInt(out, at, keyLen);
    }

    /** "\r\n$<n>\r\n<expireAt>\r\n$<payLen>\r\n" after the key: where the payload goes. */
    private mid(at: number, expireAt: number, payLen: number): number {
        const out = this.out;
        out[at] = 13;
        out[at + 1] = 10;
        out[at + 2] = 0x24; // $
        at = putInt(out, at + 3, intLen(expireAt));
        at = putInt(out, at, expireAt);
        out[at] = 0x24;
        return putInt(out, at + 1, payLen);
    }

    private finish(at: number, expireAt: number): void {
        const out = this.out;
        out[at] = 13;
        out[at + 1] = 10;
        at += 2;
        if (expireAt) at = put(out, at, ABSTTL);
        if (this.engine.replace) at = put(out, at, REPLACE);
        this.len = at;
    }

    /** A key read from the RDB: its DUMP payload is framed in place around the value bytes. */
    addRecord(key: Buffer, slot: number, rdbType: number, value: Buffer, rdbVersion: number, expireAt: number, counts: ShardCounts, bytes: number): void | Promise<void> {
        const payLen = value.length + 11;
        this.room(key.length + payLen + RESTORE_OVERHEAD);
        const keyAt = this.head(false, key.length, expireAt);
        const payAt = this.mid(putBytes(this.out, keyAt, key, 0, key.length), expireAt, payLen);
        this.finish(writeDumpPayload(this.out, payAt, rdbType, value, rdbVersion), expireAt);
        this.b.push(keyAt, key.length, payAt, payLen, bytes, slot, 0, expireAt, counts);
        return this.full();
    }

    /** A key resent after MOVED/ASK/TRYAGAIN: its bytes copied from the batch that carried it. */
    addItem(it: Item): void | Promise<void> {
        const src = it.src;
        this.room(it.keyLen + it.payLen + RESTORE_OVERHEAD);
        const keyAt = this.head(it.asking !== undefined, it.keyLen, it.expireAt);
        const payAt = this.mid(putBytes(this.out, keyAt, src, it.keyAt, it.keyLen), it.expireAt, it.payLen);
        this.finish(putBytes(this.out, payAt, src, it.payAt, it.payLen), it.expireAt);
        const i = this.b.push(keyAt, it.keyLen, payAt, it.payLen, it.bytes, it.slot, it.tries, it.expireAt, it.counts);
        if (it.asking !== undefined) {
            this.b.asking[i] = it.asking;
            this.b.asks++;
        }
        return this.full();
    }

    private full(): void | Promise<void> {
        if (this.b.n >= this.engine.batch || this.len >= this.engine.bufferBytes >> 1) return this.flush();
    }

    async flushAll(): Promise<void> {
        while (this.b.n) await this.flush();
    }

    /** Sends the batch being built; waits first while maxInFlight batches await replies (more keys join it meanwhile). */
    private flush(): void | Promise<void> {
        if (this.inFlight >= this.engine.maxInFlight) {
            this.pendingFlush ??= new Promise<void>((r) => this.slots.push(r)).then(() => {
                this.pendingFlush = undefined;
                return this.flush();
            });
            return this.pendingFlush;
        }
        const batch = this.b;
        if (!batch.n) return;
        const buf = this.out;
        const data = buf.subarray(0, this.len);
        const next = this.free.pop();
        this.out = next?.buf ?? Buffer.allocUnsafe(this.engine.bufferBytes);
        this.b = next?.batch ?? new Batch(this.engine.batch);
        this.len = 0;
        this.inFlight++;
        this.exec(batch, data).catch((e) => this.engine.fail(e)).finally(() => {
            // Every reply is in, so the socket is done with the bytes, and exec copied what outlives it.
            if (buf.length === this.engine.bufferBytes && this.free.length <= this.engine.maxInFlight) {
                batch.reset();
                this.free.push({ buf, batch });
            }
            this.inFlight--;
            this.slots.shift()?.();
        });
    }

    private async exec(b: Batch, data: Buffer): Promise<void> {
        let res: (Error | null)[];
        try {
            res = await (await this.engine.pipe(this.node)).sendEncoded(data, b.n + b.asks);
        } catch (e) {
            throw new StepError({ op: "restore", step: "restore-keys", node: this.node, cause: e, state: "keys sent before this batch are restored", resume: "run `restore` again with --replace" });
        }
        let r = 0;
        let released = 0;
        const asks = b.asks > 0;
        for (let i = 0; i < b.n; i++) {
            if (asks && b.asking[i] !== undefined) r++;
            const err = res[r++];
            if (!err) {
                b.counts[i].restored++;
                released += b.bytes[i];
                continue;
            }
            const it = b.item(i, data);
            const wasAsking = it.asking;
            it.asking = undefined;
            const msg = err.message;
            const moved = /^MOVED (\d+) (\S+)/.exec(msg);
            const ask = /^ASK (\d+) (\S+)/.exec(msg);
            if ((moved || ask) && it.tries++ < 16) {
                if (moved) this.engine.moved(Number(moved[1]), moved[2]);
                else it.asking = ask![2];
                this.engine.resend(it);
            } else if (/^TRYAGAIN/.test(msg) && it.tries++ < 100) {
                // The batch buffer goes back to the pool: keep this key's bytes apart until the retry.
                const key = keyOf(it);
                it.src = Buffer.concat([key, payloadOf(it)]);
                it.keyAt = 0;
                it.payAt = key.length;
                setTimeout(() => this.engine.resend(it), 50);
            } else if (/^BUSYKEY/.test(msg)) {
                this.engine.conflict(it.counts, keyOf(it));
                released += it.bytes;
            } else if (/Bad data format|payload version or checksum/i.test(msg)) {
                // The target cannot load this encoding (an older engine): rebuild the value element by element.
                // Copies: the batch buffer goes back to the pool when this batch is done.
                const { rdbType, value } = parseDumpPayload(Buffer.from(payloadOf(it)));
                const key = Buffer.from(keyOf(it));
                this.engine.done(it.bytes);
                await this.engine.elementWise(key, it.slot, decodeValue(rdbType, value), it.expireAt || null, it.counts);
            } else {
                this.engine.done(released);
                throw new StepError({
                    op: "restore", step: "restore-keys", node: wasAsking ?? this.node, cause: `RESTORE ${keyOf(it).toString("utf8").slice(0, 80)}: ${msg}`,
                    state: "keys sent before are restored", resume: "fix the cause, then run `restore` again with --replace",
                });
            }
        }
        this.engine.done(released);
    }
}

/** Slot -> the key of the master that owns it. */
export function ownerKeys(view: ClusterView): (NodeKey | undefined)[] {
    const nodes = [...view.knownNodes().values()];
    const byId = new Map(nodes.map((n) => [n.id, n.key]));
    return slotOwners(nodes).map((id) => (id ? byId.get(id) : undefined));
}

/** The target's facts: the oldest RDB version and smallest proto-max-bulk-len among its masters. */
export async function readTarget(pool: NodePool, masters: NodeKey[]): Promise<Target> {
    const facts = await Promise.all(masters.map(async (k) => {
        const info = parseInfo(String(await pool.call(k, "INFO", "server")));
        const engine = info.server_name === "valkey" ? "valkey" : "redis";
        const version = engine === "valkey" ? info.valkey_version ?? info.redis_version : info.redis_version;
        const bulk = (await pool.call(k, "CONFIG", "GET", "proto-max-bulk-len")) as string[];
        return { rdb: rdbVersionOf(engine, version), bulk: Number(bulk[1] ?? 512 * 1024 * 1024), major: Number(version.split(".")[0]) };
    }));
    return {
        rdbVersion: Math.min(...facts.map((f) => f.rdb)),
        protoMaxBulkLen: Math.min(...facts.map((f) => f.bulk)),
        hasFunctions: facts.every((f) => f.major >= 7),
        streamsV2: facts.every((f) => f.major >= 7),
    };
}

/** Restores every shard of a loaded backup; the caller checks the target and confirms first. */
export async function restoreBackup(pool: NodePool, view: ClusterView, store: BackupStore, loaded: LoadedBackup, opts: RestoreOptions): Promise<RestoreResult> {
    const t0 = Date.now();
    const now = opts.now ?? Date.now;
    const masters = [...new Set(ownerKeys(view).filter((k): k is NodeKey => k !== undefined))];
    const target = await readTarget(pool, masters);
    const engine = new RestoreEngine(pool, view, target, opts);
    const memory = opts.memoryBytes ?? 256 * 1024 * 1024;
    const paths = backupPaths(loaded.backup.clusterName, loaded.backup.backupId);
    const totalBytes = loaded.shards.reduce((a, s) => a + s.bytes, 0);
    const counts: ShardCounts[] = loaded.shards.map((m) => ({ shard: m.shard, keysExpected: m.keys, keysRead: 0, restored: 0, expired: 0, conflicts: 0, elementWise: 0, toolKeys: 0, withTtl: 0, emptySkipped: 0, bytes: 0, checksumOk: false }));
    const functions: Buffer[] = [];
    // Fewer readers than shards when memory is small: each holds up to maxValueBytes.
    const readers = Math.max(1, Math.min(loaded.shards.length, 4));
    const maxValueBytes = Math.max(1024 * 1024, Math.min(64 * 1024 * 1024, Math.floor(memory / 4 / readers), target.protoMaxBulkLen));
    let bytesRead = 0;
    const ticker = setInterval(() => {
        const secs = (Date.now() - t0) / 1000;
        const keys = counts.reduce((a, c) => a + c.keysRead, 0);
        const rate = bytesRead / secs;
        const eta = rate > 0 ? (totalBytes - bytesRead) / rate : 0;
        opts.out.event("progress", { keys, bytes: bytesRead, totalBytes, keysPerSec: Math.round(keys / secs) },
            `restore: ${keys} keys (${Math.round(keys / secs)}/s), ${fmtBytes(bytesRead)} of ${fmtBytes(totalBytes)}, ETA ${fmtDuration(eta * 1000)}`);
    }, 1000);
    ticker.unref();

    const restoreShard = async (m: ShardManifest, c: ShardCounts) => {
        const where = `${store.location}/${paths.rdb(m.shard)}`;
        const size = await store.size(paths.rdb(m.shard));
        if (size !== m.bytes) {
            throw new StepError({ op: "restore", step: "read-rdb", node: `shard ${m.shard}`, cause: `${where} has ${size ?? "no"} bytes, the manifest says ${m.bytes} (truncated or replaced)`, state: "nothing of this shard was restored", resume: "restore another backup (--backup ID)" });
        }
        const hash = createHash("sha256");
        const tap = new Transform({
            transform(chunk: Buffer, _e, cb) {
                hash.update(chunk);
                c.bytes += chunk.length;
                bytesRead += chunk.length;
                cb(null, chunk);
            },
        });
        const input = (await store.read(paths.rdb(m.shard))).pipe(tap);
        try {
            for await (const batch of readRdbBatches(input, { source: `shard ${m.shard} (${where})`, maxValueBytes })) {
                engine.check();
                // Once per batch (records of one buffer, read within a millisecond or so of each other).
                const nowMs = now();
                for (const r of batch) {
                    if (r.kind !== "key") {
                        if (r.kind === "db" && r.index !== 0) throw new RdbUnsupportedError(`shard ${m.shard} (${where})`, r.offset, `database ${r.index}: a cluster has only database 0`);
                        // Every master holds the cluster's libraries, so every shard's RDB has them: restore each once.
                        if (r.kind === "function" && !functions.some((f) => f.equals(r.payload))) functions.push(Buffer.from(r.payload));
                        if (r.kind === "end") {
                            c.emptySkipped = r.emptyKeysSkipped;
                            c.checksumOk = r.checksumOk !== false;
                            if (r.checksumOk === false) throw new RdbFormatError(`shard ${m.shard} (${where})`, r.offset, "the file's CRC-64", "checksum mismatch");
                        }
                        continue;
                    }
                    c.keysRead++;
                    // Another run's lease in the source would block every command on the target until it expired.
                    if (r.key.length === LEASE_KEY_BYTES.length && r.key.equals(LEASE_KEY_BYTES)) {
                        c.toolKeys++;
                        if (r.elements) for await (const _ of r.elements()) { /* skipped */ }
                        continue;
                    }
                    if (r.expireAtMs !== null && r.expireAtMs <= nowMs) {
                        c.expired++;
                        if (r.elements) for await (const _ of r.elements()) { /* skipped */ }
                        continue;
                    }
                    if (r.expireAtMs !== null) c.withTtl++;
                    const slot = keySlot(r.key);
                    if (r.value === null || engine.needsElementWise(r.rdbType, r.valueBytes + 11)) {
                        await engine.drain();
                        // The reader's buffers are reused: copy the key.
                        const key = Buffer.from(r.key);
                        const chunks = r.value === null ? r.elements!() : decodeValue(r.rdbType, r.value);
                        await engine.elementWise(key, slot, chunks, r.expireAtMs, c);
                        continue;
                    }
                    // Key and value are copied into the batch buffer before the reader moves on (it waits for this loop).
                    const wait = engine.restore(r.key, slot, r.rdbType, r.value, r.rdbVersion, r.expireAtMs ?? 0, c);
                    if (wait) await wait;
                }
            }
        } catch (e) {
            if (e instanceof StepError || e instanceof RefusedError) throw e;
            const fmt = e instanceof RdbFormatError || e instanceof RdbUnsupportedError;
            throw new StepError({
                op: "restore", step: "read-rdb", node: `shard ${m.shard}`, cause: e,
                state: fmt ? `the keys of shard ${m.shard} before that offset were sent; the restore is not complete` : "the restore is not complete",
                resume: fmt ? "restore another backup (--backup ID); `backups` shows which ones verify" : "run `restore` again with --replace",
            });
        }
        const sha = hash.digest("hex");
        if (sha !== m.sha256) {
            throw new StepError({ op: "restore", step: "checksum", node: `shard ${m.shard}`, cause: `${where} hashes to ${sha}, the manifest says ${m.sha256}`, state: "its keys were sent; the restore is not complete", resume: "restore another backup (--backup ID)" });
        }
    };

    try {
        // Shards in parallel, at most `readers` at once.
        const queue = loaded.shards.map((m, i) => [m, counts[i]] as const);
        await Promise.all(Array.from({ length: readers }, async () => {
            for (let next = queue.shift(); next; next = queue.shift()) await restoreShard(next[0], next[1]);
        }));
        await engine.drain();
    } catch (e) {
        engine.fail(e as Error);
        await engine.drain().catch(() => undefined);
        if (e instanceof StepError || e instanceof RefusedError) throw e;
        throw new StepError({ op: "restore", step: "restore-keys", cause: e, state: "the keys sent so far are restored", resume: "fix the cause, then run `restore` again with --replace" });
    } finally {
        clearInterval(ticker);
        await engine.close();
    }

    let fnRestored = 0;
    if (functions.length) {
        if (!target.hasFunctions) throw new RefusedError(`the backup holds ${functions.length} function librar${functions.length === 1 ? "y" : "ies"}, and the target (before Redis 7.0) has no FUNCTION RESTORE; the keys were restored`);
        for (const f of functions) {
            for (const k of masters) {
                try {
                    const v = f.readUInt16LE(f.length - 10);
                    await pool.call(k, "FUNCTION", "RESTORE", v > target.rdbVersion ? retargetPayload(f, target.rdbVersion) : f, opts.replace ? "REPLACE" : "APPEND");
                } catch (e) {
                    if (!/already exists/i.test(errText(e))) throw new StepError({ op: "restore", step: "function-restore", node: k, cause: e, state: "every key is restored", resume: "FUNCTION RESTORE by hand, or rerun with --replace" });
                }
            }
            fnRestored++;
        }
    }

    const problems: string[] = [];
    for (const c of counts) {
        if (c.keysRead + c.emptySkipped !== c.keysExpected) problems.push(`shard ${c.shard}: read ${c.keysRead} keys, the manifest says ${c.keysExpected}`);
        if (c.restored + c.expired + c.conflicts + c.toolKeys !== c.keysRead) problems.push(`shard ${c.shard}: ${c.keysRead} read but ${c.restored} restored + ${c.expired} expired + ${c.conflicts} kept + ${c.toolKeys} lease`);
    }
    return { shards: counts, functions: fnRestored, conflictSamples: engine.conflictSamples, durationMs: Date.now() - t0, ok: problems.length === 0, problems };
}
