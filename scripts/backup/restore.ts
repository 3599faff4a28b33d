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
 * not buffered but decoded element by element from the stream, and the RESTORE bytes in
 * flight never exceed half of it (the reader waits).
 */
import { createHash } from "node:crypto";
import { Transform } from "node:stream";
import { interruption, RefusedError, StepError } from "../errors";
import { Output, fmtBytes, fmtDuration } from "../output";
import { dumpPayload, parseDumpPayload, readRdb, rebuildCommands, retargetPayload, decodeValue, RdbFormatError, RdbUnsupportedError, RDB_TYPE_MIN_VERSION } from "../rdb";
import type { Command } from "../rdb";
import { ClusterView, parseInfo } from "../redis/clusterView";
import { slotOwners } from "../redis/clusterNodes";
import { keySlot } from "../redis/keySlot";
import { NodeKey, NodePool } from "../redis/pool";
import { Arg, RespPipe } from "../redis/respPipe";
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
    async acquire(n: number): Promise<void> {
        while (this.used > 0 && this.used + n > this.limit) await new Promise<void>((r) => this.waiters.push(r));
        this.used += n;
    }
    release(n: number): void {
        this.used -= n;
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
    }
}

interface Item {
    key: Buffer;
    slot: number;
    payload: Buffer;
    expireAt: number;
    counts: ShardCounts;
    asking?: NodeKey;
    tries: number;
}

const LEASE_KEY_BYTES = Buffer.from(LEASE_KEY);

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
        this.budget = new Budget(Math.floor((opts.memoryBytes ?? 256 * 1024 * 1024) / 2));
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

    ownerOf(slot: number): NodeKey {
        return this.owners[slot]!;
    }

    moved(slot: number, to: NodeKey): void {
        this.owners[slot] = to;
    }

    get batch(): number {
        return this.opts.batch ?? 1024;
    }

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

    async send(item: Item): Promise<void> {
        this.check();
        await this.budget.acquire(item.payload.length);
        this.check();
        await this.lane(item.asking ?? this.ownerOf(item.slot)).add(item);
    }

    /** Re-routes an item after MOVED/ASK without taking budget again. */
    resend(item: Item): void {
        void this.lane(item.asking ?? this.ownerOf(item.slot)).add(item).catch((e) => this.fail(e));
    }

    done(item: Item): void {
        this.budget.release(item.payload.length);
    }

    conflict(item: Item): void {
        item.counts.conflicts++;
        if (this.conflictSamples.length < 10) this.conflictSamples.push(item.key.toString("utf8"));
    }

    /** A value RESTORE cannot carry: rebuilt element by element on its owner. */
    async elementWise(key: Buffer, slot: number, chunks: AsyncIterable<import("../rdb").ValueChunk>, expireAt: number | null, counts: ShardCounts): Promise<void> {
        const node = this.ownerOf(slot);
        const c = await this.pool.get(node);
        if (this.replace) await c.del(key);
        else if (await c.exists(key)) {
            this.conflict({ key, counts } as Item);
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

    payloadFor(rdbType: number, value: Buffer, rdbVersion: number): Buffer {
        const p = dumpPayload(rdbType, value, rdbVersion);
        // A value whose type the older target knows loads fine once stamped with its version.
        return rdbVersion > this.target.rdbVersion ? retargetPayload(p, this.target.rdbVersion) : p;
    }
}

class Lane {
    private pending: Item[] = [];
    private inFlight = 0;
    private slots: (() => void)[] = [];
    constructor(private engine: RestoreEngine, readonly node: NodeKey) {}

    idle(): boolean {
        return this.pending.length === 0 && this.inFlight === 0;
    }

    async add(item: Item): Promise<void> {
        this.pending.push(item);
        if (this.pending.length >= this.engine.batch) await this.flush();
    }

    async flushAll(): Promise<void> {
        while (this.pending.length) await this.flush();
    }

    private async flush(): Promise<void> {
        while (this.inFlight >= this.engine.maxInFlight) await new Promise<void>((r) => this.slots.push(r));
        const items = this.pending.splice(0, this.engine.batch);
        if (!items.length) return;
        this.inFlight++;
        void this.exec(items).catch((e) => this.engine.fail(e)).finally(() => {
            this.inFlight--;
            this.slots.shift()?.();
        });
    }

    private async exec(items: Item[]): Promise<void> {
        const cmds: Arg[][] = [];
        for (const it of items) {
            if (it.asking) cmds.push(["ASKING"]);
            cmds.push(this.engine.replace ? ["RESTORE", it.key, String(it.expireAt), it.payload, "ABSTTL", "REPLACE"] : ["RESTORE", it.key, String(it.expireAt), it.payload, "ABSTTL"]);
        }
        let res: (Error | null)[];
        try {
            res = await (await this.engine.pipe(this.node)).send(cmds);
        } catch (e) {
            throw new StepError({ op: "restore", step: "restore-keys", node: this.node, cause: e, state: "keys sent before this batch are restored", resume: "run `restore` again with --replace" });
        }
        let i = 0;
        for (const it of items) {
            if (it.asking) i++;
            const err = res[i++];
            const wasAsking = it.asking;
            it.asking = undefined;
            if (!err) {
                it.counts.restored++;
                this.engine.done(it);
                continue;
            }
            const msg = err.message;
            const moved = /^MOVED (\d+) (\S+)/.exec(msg);
            const ask = /^ASK (\d+) (\S+)/.exec(msg);
            if ((moved || ask) && it.tries++ < 16) {
                if (moved) this.engine.moved(Number(moved[1]), moved[2]);
                else it.asking = ask![2];
                this.engine.resend(it);
            } else if (/^TRYAGAIN/.test(msg) && it.tries++ < 100) {
                setTimeout(() => this.engine.resend(it), 50);
            } else if (/^BUSYKEY/.test(msg)) {
                this.engine.conflict(it);
                this.engine.done(it);
            } else if (/Bad data format|payload version or checksum/i.test(msg)) {
                // The target cannot load this encoding (an older engine): rebuild the value element by element.
                const { rdbType, value } = parseDumpPayload(it.payload);
                this.engine.done(it);
                await this.engine.elementWise(it.key, it.slot, decodeValue(rdbType, value), it.expireAt || null, it.counts);
            } else {
                throw new StepError({
                    op: "restore", step: "restore-keys", node: wasAsking ?? this.node, cause: `RESTORE ${it.key.toString("utf8").slice(0, 80)}: ${msg}`,
                    state: "keys sent before are restored", resume: "fix the cause, then run `restore` again with --replace",
                });
            }
        }
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
            for await (const r of readRdb(input, { source: `shard ${m.shard} (${where})`, maxValueBytes })) {
                engine.check();
                if (r.kind === "db" && r.index !== 0) throw new RdbUnsupportedError(`shard ${m.shard} (${where})`, r.offset, `database ${r.index}: a cluster has only database 0`);
                // Every master holds the cluster's libraries, so every shard's RDB has them: restore each once.
                if (r.kind === "function" && !functions.some((f) => f.equals(r.payload))) functions.push(Buffer.from(r.payload));
                if (r.kind === "end") {
                    c.emptySkipped = r.emptyKeysSkipped;
                    c.checksumOk = r.checksumOk !== false;
                    if (r.checksumOk === false) throw new RdbFormatError(`shard ${m.shard} (${where})`, r.offset, "the file's CRC-64", "checksum mismatch");
                }
                if (r.kind !== "key") continue;
                c.keysRead++;
                // Another run's lease in the source would block every command on the target until it expired.
                if (r.key.equals(LEASE_KEY_BYTES)) {
                    c.toolKeys++;
                    if (r.elements) for await (const _ of r.elements()) { /* skipped */ }
                    continue;
                }
                if (r.expireAtMs !== null && r.expireAtMs <= now()) {
                    c.expired++;
                    if (r.elements) for await (const _ of r.elements()) { /* skipped */ }
                    continue;
                }
                if (r.expireAtMs !== null) c.withTtl++;
                const slot = keySlot(r.key);
                // The reader's buffers are reused: copy the key (the payload is a copy already).
                const key = Buffer.from(r.key);
                if (r.value === null || engine.needsElementWise(r.rdbType, r.valueBytes + 11)) {
                    await engine.drain();
                    const chunks = r.value === null ? r.elements!() : decodeValue(r.rdbType, r.value);
                    await engine.elementWise(key, slot, chunks, r.expireAtMs, c);
                    continue;
                }
                await engine.send({ key, slot, payload: engine.payloadFor(r.rdbType, r.value, r.rdbVersion), expireAt: r.expireAtMs ?? 0, counts: c, tries: 0 });
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
