/**
 * Streaming RDB reader. Formats: redis src/rdb.c (rdbLoadRioWithLoadingCtx, rdbLoadObject) and
 * src/rdb.h, as written by Redis 6.2 (RDB 9), 7.0 (10), 7.2 and Valkey 8 (11), and older files.
 *
 * Keys come out with their serialized value as a view of the input chunk (no copy, no decode):
 * the restore sends it to RESTORE as is. Only the extent of each value is walked. Values larger
 * than maxValueBytes are not buffered: the record carries `elements()` instead, which decodes
 * them element by element from the stream. Memory is therefore bounded by maxValueBytes plus one
 * input chunk, whatever the file size. The whole-file CRC-64 is checked at the end.
 */
import { MAX_RDB_VERSION, RDB_OPCODE, RDB_TYPE, moduleTypeName } from "./constants";
import { Crc64 } from "./crc64";
import { decodeFrom, moduleRefusal } from "./decode";
import { RdbFormatError, RdbUnsupportedError } from "./errors";
import { NEED_MORE, Source } from "./source";
import type { KeyRecord, RdbRecord, ReadOptions, ValueChunk } from "./types";

export const DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024;
const RECORDS_PER_BATCH = 256;

// Plain module constants: through the transpiled import each `RDB_TYPE.X` is a getter call per
// access, and the reader's switch runs once per key (profiled: 4% of a restore).
const {
    HASH: T_HASH,
    HASH_LISTPACK: T_HASH_LISTPACK,
    HASH_ZIPLIST: T_HASH_ZIPLIST,
    HASH_ZIPMAP: T_HASH_ZIPMAP,
    LIST: T_LIST,
    LIST_QUICKLIST: T_LIST_QUICKLIST,
    LIST_QUICKLIST_2: T_LIST_QUICKLIST_2,
    LIST_ZIPLIST: T_LIST_ZIPLIST,
    MODULE_2: T_MODULE_2,
    MODULE_PRE_GA: T_MODULE_PRE_GA,
    SET: T_SET,
    SET_INTSET: T_SET_INTSET,
    SET_LISTPACK: T_SET_LISTPACK,
    STREAM_LISTPACKS: T_STREAM_LISTPACKS,
    STREAM_LISTPACKS_2: T_STREAM_LISTPACKS_2,
    STREAM_LISTPACKS_3: T_STREAM_LISTPACKS_3,
    STRING: T_STRING,
    ZSET: T_ZSET,
    ZSET_2: T_ZSET_2,
    ZSET_LISTPACK: T_ZSET_LISTPACK,
    ZSET_ZIPLIST: T_ZSET_ZIPLIST,
} = RDB_TYPE;
const {
    AUX: OP_AUX,
    EOF: OP_EOF,
    EXPIRETIME: OP_EXPIRETIME,
    EXPIRETIME_MS: OP_EXPIRETIME_MS,
    FREQ: OP_FREQ,
    FUNCTION2: OP_FUNCTION2,
    FUNCTION_PRE_GA: OP_FUNCTION_PRE_GA,
    IDLE: OP_IDLE,
    MODULE_AUX: OP_MODULE_AUX,
    RESIZEDB: OP_RESIZEDB,
    SELECTDB: OP_SELECTDB,
    SLOT_INFO: OP_SLOT_INFO,
} = RDB_OPCODE;

/**
 * Whether a blob-encoded collection (ziplist, listpack, intset) holds no element, from its header
 * count; false when unknown (LZF-compressed blob).
 */
function emptyBlob(s: Source, type: number, at: number): boolean {
    const b = s.buf;
    if (b[at] >> 6 === 3) return false;
    const hdr = at + (b[at] >> 6 === 0 ? 1 : b[at] >> 6 === 1 ? 2 : b[at] === 0x80 ? 5 : 9);
    const end = s.pos;
    if (type === T_SET_INTSET) return hdr + 8 <= end && b.readUInt32LE(hdr + 4) === 0;
    if (type === T_LIST_ZIPLIST || type === T_ZSET_ZIPLIST || type === T_HASH_ZIPLIST) return hdr + 10 <= end && b.readUInt16LE(hdr + 8) === 0;
    return hdr + 6 <= end && b.readUInt16LE(hdr + 4) === 0;
}

/**
 * Walks one serialized value of RDB type `type` from s.pos (synchronous; throws NEED_MORE).
 * Returns true when the value is an empty collection (see rdb.c RDB_LOAD_ERR_EMPTY_KEY).
 */
function skipValue(s: Source, type: number, recordAt: number): boolean {
    switch (type) {
        case T_HASH_ZIPLIST:
        case T_LIST_ZIPLIST:
        case T_SET_INTSET:
        case T_ZSET_ZIPLIST:
        case T_HASH_LISTPACK:
        case T_ZSET_LISTPACK:
        case T_SET_LISTPACK: {
            const at = s.pos;
            s.skipStr("a string value");
            return emptyBlob(s, type, at);
        }
        case T_STRING:
        case T_HASH_ZIPMAP:
        case T_LIST_ZIPLIST:
        case T_SET_INTSET:
        case T_ZSET_ZIPLIST:
            s.skipStr("a string value");
            return false;
        case T_LIST:
        case T_SET:
        case T_LIST_QUICKLIST: {
            const count = s.len("an element count");
            for (let n = count; n > 0; n--) s.skipStr("an element");
            return count === 0;
        }
        case T_HASH: {
            const count = s.len("the hash length");
            for (let n = count; n > 0; n--) {
                s.skipStr("a hash field");
                s.skipStr("a hash value");
            }
            return count === 0;
        }
        case T_ZSET: {
            const count = s.len("the sorted set length");
            for (let n = count; n > 0; n--) {
                s.skipStr("a sorted set member");
                const l = s.u8("a score length");
                if (l < 253) s.skip(l, "a score");
            }
            return count === 0;
        }
        case T_ZSET_2: {
            const count = s.len("the sorted set length");
            for (let n = count; n > 0; n--) {
                s.skipStr("a sorted set member");
                s.skip(8, "a binary double score");
            }
            return count === 0;
        }
        case T_LIST_QUICKLIST_2: {
            const count = s.len("the quicklist node count");
            for (let n = count; n > 0; n--) {
                const at = s.pos;
                const c = s.len("a quicklist node container");
                if (c !== 1 && c !== 2) throw s.error("a quicklist node container of 1 (plain) or 2 (packed)", `found ${c}`, s.base + at);
                s.skipStr("a quicklist node");
            }
            return count === 0;
        }
        case T_STREAM_LISTPACKS:
        case T_STREAM_LISTPACKS_2:
        case T_STREAM_LISTPACKS_3: {
            for (let n = s.len("the stream node count"); n > 0; n--) {
                s.skipStr("a stream node master ID");
                s.skipStr("a stream node listpack");
            }
            const metaLens = type === T_STREAM_LISTPACKS ? 3 : 8;
            for (let i = 0; i < metaLens; i++) s.lenBig("stream metadata");
            for (let g = s.len("the consumer group count"); g > 0; g--) {
                s.skipStr("a consumer group name");
                s.lenBig("a group last ID (ms)");
                s.lenBig("a group last ID (seq)");
                if (type !== T_STREAM_LISTPACKS) s.lenBig("a group entries-read");
                for (let p = s.len("a group PEL size"); p > 0; p--) {
                    s.skip(24, "a PEL entry (ID and delivery time)");
                    s.len("a PEL delivery count");
                }
                for (let c = s.len("the consumer count"); c > 0; c--) {
                    s.skipStr("a consumer name");
                    s.skip(type === T_STREAM_LISTPACKS_3 ? 16 : 8, "consumer times");
                    const p = s.len("a consumer PEL size");
                    s.skip(16 * p, "consumer PEL entry IDs");
                }
            }
            // An empty stream is a valid key (XADD then XDEL keeps it).
            return false;
        }
        case T_MODULE_2: {
            throw moduleRefusal(s.name, recordAt, s.lenBig("a module id"));
        }
        case T_MODULE_PRE_GA:
            throw moduleRefusal(s.name, recordAt, null);
        case 22:
        case 23:
        case 24:
        case 25:
            // RDB 12 (Redis 7.4+): hashes with field expirations; only reachable with maxRdbVersion >= 12.
            throw new RdbUnsupportedError(s.name, recordAt, `a hash with field expirations (RDB type ${type}, Redis 7.4+) cannot be read by this reader`);
        default:
            throw s.error("a known RDB value type or opcode", `found ${type}`, recordAt);
    }
}

/** Skips a module value's self-describing opcodes (as redis-check-rdb does, rdbLoadCheckModuleValue). */
function skipModuleValue(s: Source): void {
    for (;;) {
        const at = s.pos;
        const op = s.len("a module value opcode");
        if (op === 0) return;
        if (op === 1 || op === 2) s.lenBig("a module integer");
        else if (op === 3) s.skip(4, "a module float");
        else if (op === 4) s.skip(8, "a module double");
        else if (op === 5) s.skipStr("a module string");
        else throw s.error("a module value opcode (0-5)", `found ${op}`, s.base + at);
    }
}

interface KeyState {
    db: number;
    expireAtMs: number | null;
    idle?: number;
    freq?: number;
    rdbVersion: number;
}

type Unit = RdbRecord | null | { kind: "eof" } | { kind: "empty" };

/**
 * Parses one unit: an opcode with its operands, or a whole key. Returns null for opcodes that
 * only set state for the next key. On NEED_MORE the caller rewinds to the unit's start.
 */
function parseUnit(s: Source, st: KeyState, opts: Required<Pick<ReadOptions, "moduleAux">>): Unit {
    const at = s.offset;
    const t = s.u8("an opcode or value type");
    switch (t) {
        case OP_EXPIRETIME_MS: {
            const b = s.bytes(8, "an 8-byte expire time");
            st.expireAtMs = Number(b.readBigInt64LE(0));
            return null;
        }
        case OP_EXPIRETIME: {
            st.expireAtMs = s.bytes(4, "a 4-byte expire time").readInt32LE(0) * 1000;
            return null;
        }
        case OP_IDLE:
            st.idle = s.len("an LRU idle time");
            return null;
        case OP_FREQ:
            st.freq = s.u8("an LFU frequency");
            return null;
        case OP_AUX: {
            const name = s.str("an AUX field name").toString("latin1");
            const value = s.str("an AUX field value").toString("latin1");
            return { kind: "aux", name, value, offset: at };
        }
        case OP_SELECTDB: {
            const index = s.len("a database number");
            st.db = index;
            // RESIZEDB follows SELECTDB when the writer knows the sizes: report both as one record.
            if (s.pos < s.buf.length || !s.ended) {
                if (s.pos >= s.buf.length) s.short("the opcode after SELECTDB");
                if (s.buf[s.pos] === OP_RESIZEDB) {
                    s.pos++;
                    const keysHint = s.len("a RESIZEDB key count");
                    const expiresHint = s.len("a RESIZEDB expires count");
                    return { kind: "db", index, keysHint, expiresHint, offset: at };
                }
            }
            return { kind: "db", index, offset: at };
        }
        case OP_RESIZEDB:
            s.len("a RESIZEDB key count");
            s.len("a RESIZEDB expires count");
            return null;
        case OP_SLOT_INFO:
            // Redis 7.4+ (RDB 12): per-slot size hints, no data.
            s.len("a SLOT_INFO slot");
            s.len("a SLOT_INFO slot size");
            s.len("a SLOT_INFO expires size");
            return null;
        case OP_MODULE_AUX: {
            const moduleId = s.lenBig("a module id");
            const whenOp = s.len("a module AUX when-opcode");
            if (whenOp !== 2) throw s.error("module AUX when-opcode 2 (unsigned integer)", `found ${whenOp}`);
            const when = s.len("a module AUX 'when'");
            const { name } = moduleTypeName(moduleId);
            if (opts.moduleAux === "refuse") {
                throw new RdbUnsupportedError(
                    s.name,
                    at,
                    `the RDB file holds AUX data of module '${name}'; Redis refuses to load it without the module, and RESTORE cannot carry it ` +
                        "(read with moduleAux: \"skip\" to ignore it)",
                );
            }
            skipModuleValue(s);
            return { kind: "module-aux", module: name, moduleId, when, offset: at };
        }
        case OP_FUNCTION_PRE_GA:
            throw new RdbUnsupportedError(s.name, at, "function libraries in the Redis 7.0 release-candidate format cannot be read (Redis refuses them too)");
        case OP_FUNCTION2: {
            const codeAt = s.pos;
            const code = s.str("a function library");
            return { kind: "function", code, payload: functionPayload(s.buf.subarray(codeAt, s.pos), st.rdbVersion), offset: at };
        }
        case OP_EOF:
            return { kind: "eof" };
        default: {
            const key = s.str("a key");
            const vs = s.pos;
            if (skipValue(s, t, at)) return { kind: "empty" };
            const rec: KeyRecord = {
                kind: "key",
                db: st.db,
                key,
                rdbType: t,
                rdbVersion: st.rdbVersion,
                expireAtMs: st.expireAtMs,
                value: s.buf.subarray(vs, s.pos),
                valueBytes: s.pos - vs,
                offset: at,
            };
            if (st.idle !== undefined) rec.idleSeconds = st.idle;
            if (st.freq !== undefined) rec.lfuFreq = st.freq;
            return rec;
        }
    }
}

/** FUNCTION DUMP format for one library: FUNCTION2 opcode, the code as an RDB string, version, CRC-64. */
function functionPayload(serializedCode: Buffer, rdbVersion: number): Buffer {
    const out = Buffer.allocUnsafe(1 + serializedCode.length + 10);
    out[0] = OP_FUNCTION2;
    serializedCode.copy(out, 1);
    const v = 1 + serializedCode.length;
    out.writeUInt16LE(rdbVersion, v);
    new Crc64().update(out, 0, v + 2).writeLE(out, v + 2);
    return out;
}

/**
 * Reads an RDB stream record by record. Throws RdbFormatError (source, offset, what was expected)
 * on corrupt or truncated input and RdbUnsupportedError for content it will not carry; the `end`
 * record comes only after the whole file, including its checksum, was read.
 */
export async function* readRdb(
    input: AsyncIterable<Uint8Array | string> | NodeJS.ReadableStream | Iterable<Uint8Array> | Buffer,
    options: ReadOptions = {},
): AsyncGenerator<RdbRecord> {
    for await (const batch of readRdbBatches(input, options)) yield* batch;
}

/**
 * readRdb, a buffer's worth of records at a time: the same records in the same order, for
 * consumers whose per-record work is small (one await per record costs more than a key's parse).
 * The `value` and `key` views of a batch's records stay valid until the next batch is asked for;
 * a key streamed through `elements()` is always the last record of its batch. Records parsed
 * before a format error are yielded before the error is thrown, as readRdb does.
 */
export async function* readRdbBatches(
    input: AsyncIterable<Uint8Array | string> | NodeJS.ReadableStream | Iterable<Uint8Array> | Buffer,
    options: ReadOptions = {},
): AsyncGenerator<RdbRecord[]> {
    const s = new Source(options.source ?? "RDB", input as AsyncIterable<Uint8Array | string> | Iterable<Uint8Array> | Buffer, { checksum: true });
    try {
        yield* read(s, options);
    } finally {
        // On an error or a consumer that stops early, close the input (a file descriptor, an S3 response).
        await s.close().catch(() => undefined);
    }
}

/** Who writes each recent RDB version, for refusal messages. */
const WRITERS: Record<number, string> = {
    8: "Redis 4.0",
    9: "Redis 5.0-6.2",
    10: "Redis 7.0",
    11: "Redis 7.2, Valkey 7.2-8.x",
    12: "Redis 7.4+",
};
const writtenBy = (v: number): string => (WRITERS[v] ? ` (${WRITERS[v]})` : "");

async function* read(s: Source, options: ReadOptions): AsyncGenerator<RdbRecord[]> {
    const maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    const maxVersion = options.maxRdbVersion ?? MAX_RDB_VERSION;
    const batch = options.batch ?? 1000;
    const opts = { moduleAux: options.moduleAux ?? "refuse" } as const;

    await s.fill(9);
    const sig = s.buf.toString("latin1", 0, Math.min(9, s.avail()));
    // Valkey 9+ writes "VALKEY" and a 3-digit version (80+): a format this reader does not know yet.
    if (/^VALKEY\d{3}$/.test(sig)) {
        throw new RdbUnsupportedError(s.name, 6, `RDB version ${Number(sig.slice(6))} (signature ${sig}, Valkey 9 or newer) is newer than this reader supports (at most ${maxVersion}${writtenBy(maxVersion)})`);
    }
    if (!/^REDIS\d{4}$/.test(sig)) {
        throw s.error("the RDB signature REDIS<4-digit version>", `found ${JSON.stringify(sig)}`);
    }
    const rdbVersion = Number(sig.slice(5));
    if (rdbVersion < 1 || rdbVersion > maxVersion) {
        throw new RdbUnsupportedError(
            s.name,
            5,
            rdbVersion < 1
                ? `RDB version ${rdbVersion} is invalid`
                : `RDB version ${rdbVersion}${writtenBy(rdbVersion)} is newer than this reader supports (at most ${maxVersion}${writtenBy(maxVersion)})`,
        );
    }
    s.pos = 9;
    // Records parsed from the buffer at hand; handed out before the buffer is refilled or replaced.
    let out: RdbRecord[] = [{ kind: "header", rdbVersion, offset: 0 }];

    const st: KeyState = { db: 0, expireAtMs: null, rdbVersion };
    let emptyKeysSkipped = 0;
    for (;;) {
        const start = s.pos;
        let unit: Unit;
        try {
            unit = parseUnit(s, st, opts);
        } catch (e) {
            if (e !== NEED_MORE) {
                if (out.length) yield out;
                throw e;
            }
            s.pos = start;
            if (out.length) {
                yield out;
                out = [];
            }
            if (s.ended) throw s.truncated();
            const have = s.avail();
            // Only key values stream; an opcode's operand (AUX, function code) is buffered whatever its size.
            if (have > maxValueBytes && s.buf[start] < OP_SLOT_INFO) {
                yield* streamKey(s, st, batch, maxValueBytes);
                continue;
            }
            // Doubling keeps re-walking a large value linear overall.
            const want = have + Math.max(have, 1);
            await s.fill(s.buf[start] < OP_SLOT_INFO ? Math.min(want, maxValueBytes + 1) : want);
            continue;
        }
        if (unit === null) continue;
        if (unit.kind === "eof") break;
        if (unit.kind === "empty") {
            // Old Redis bugs (redis#8453) saved empty collections; Redis drops them on load, and RESTORE refuses them.
            emptyKeysSkipped++;
            st.expireAtMs = null;
            st.idle = st.freq = undefined;
            continue;
        }
        if (unit.kind === "key" && unit.valueBytes > maxValueBytes) {
            // Buffered by chance (it fit in the chunks at hand): hand it out the same way as any value over the limit.
            s.pos = start;
            if (out.length) {
                yield out;
                out = [];
            }
            yield* streamKey(s, st, batch, maxValueBytes);
            continue;
        }
        if (unit.kind === "key") {
            st.expireAtMs = null;
            st.idle = st.freq = undefined;
        }
        out.push(unit);
        // Short batches: records that die before the next scavenge are nearly free for the GC; a
        // whole 1 MiB chunk of them (40k keys) outlives it and is promoted (profiled: 470 MiB RSS).
        if (out.length >= RECORDS_PER_BATCH) {
            yield out;
            out = [];
        }
    }
    if (out.length) yield out;

    const crc = s.finishCrc();
    let checksumOk: boolean | null = null;
    if (rdbVersion >= 5) {
        if (!(await s.fill(8))) {
            s.shortAt = s.pos;
            s.shortWhat = "the 8-byte CRC-64 after the EOF opcode";
            throw s.truncated();
        }
        const stored = s.buf.subarray(s.pos, s.pos + 8);
        // A zero checksum means the writer ran with rdbchecksum no.
        if (stored.some((b) => b !== 0)) {
            checksumOk = crc!.equalsLE(s.buf, s.pos);
            if (!checksumOk) {
                throw s.error(
                    `CRC-64 ${stored.readBigUInt64LE(0).toString(16).padStart(16, "0")} stored at the end of the file`,
                    `the content checksums to ${crc!.value().toString(16).padStart(16, "0")}: the file is corrupt`,
                );
            }
        }
        s.pos += 8;
    }
    const bytes = s.offset;
    if (await s.fill(1)) {
        throw s.error("the end of the file after the RDB checksum", `found more data; an RDB with an AOF tail is not a backup this reader accepts`);
    }
    yield [{ kind: "end", checksumOk, bytes, emptyKeysSkipped, offset: bytes }];
}

/** A key whose value is larger than maxValueBytes: yielded with `elements()`, then skipped past. */
async function* streamKey(s: Source, st: KeyState, batch: number, maxValueBytes: number): AsyncGenerator<RdbRecord[]> {
    const at = s.offset;
    const [type, key] = await s.unit((): [number, Buffer] => [s.u8("a value type"), s.str("a key")]);
    // Pieces of a big string: within the limit, but not so small that a tiny limit means a yield per byte.
    const gen = decodeFrom(s, type, batch, Math.min(1 << 20, Math.max(64 * 1024, maxValueBytes)));
    let taken = false;
    let done = false;
    const pull = async (): Promise<IteratorResult<ValueChunk>> => {
        const r = await gen.next();
        if (r.done) done = true;
        return r;
    };
    const rec: KeyRecord = {
        kind: "key",
        db: st.db,
        key,
        rdbType: type,
        rdbVersion: st.rdbVersion,
        expireAtMs: st.expireAtMs,
        value: null,
        valueBytes: s.avail(),
        offset: at,
        elements: () => {
            if (taken) throw new Error(`elements() of key ${JSON.stringify(key.toString())} can be iterated only once`);
            taken = true;
            // return() is not forwarded: a consumer that stops early leaves the rest for the reader to skip.
            return { [Symbol.asyncIterator]: () => ({ next: pull, return: async () => ({ done: true, value: undefined }) }) };
        },
    };
    if (st.idle !== undefined) rec.idleSeconds = st.idle;
    if (st.freq !== undefined) rec.lfuFreq = st.freq;
    st.expireAtMs = null;
    st.idle = st.freq = undefined;
    yield [rec];
    taken = true;
    while (!done) await pull();
}

export { RdbFormatError };
