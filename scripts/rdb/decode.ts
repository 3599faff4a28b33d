/**
 * Element-by-element decoding of serialized values, from a live stream (values above
 * maxValueBytes) or from a buffer (`decodeValue`). Formats: redis src/rdb.c rdbLoadObject,
 * and for streams src/t_stream.c (listpack node layout).
 */
import { RDB_TYPE, moduleTypeName, rdbTypeName } from "./constants";
import { BlobError, intsetMembers, listpackEntries, ziplistEntries, zipmapEntries } from "./encodings";
import { RdbFormatError, RdbUnsupportedError } from "./errors";
import { Source } from "./source";
import type { StreamConsumer, StreamEntry, StreamGroup, StreamMeta, StreamPending, ValueChunk } from "./types";

const STREAM_ITEM_FLAG_DELETED = 1;
const STREAM_ITEM_FLAG_SAMEFIELDS = 2;
/** Raw strings longer than this are handed out in pieces (APPEND-sized), at most maxValueBytes each. */
const STRING_PIECE = 1 << 20;

function parseScore(b: Buffer): number {
    const t = b.toString("latin1");
    const m = /^([+-]?)inf/i.exec(t);
    if (m) return m[1] === "-" ? -Infinity : Infinity;
    return Number(t);
}

function toInt(b: Buffer): number {
    return Number(b.toString("latin1"));
}

function toBig(b: Buffer): bigint {
    return BigInt(b.toString("latin1"));
}

/** Decodes a blob-encoded value (ziplist, listpack ...), turning a BlobError into an RdbFormatError at the blob. */
function blob<T>(s: Source, at: number, what: string, decode: (b: Buffer) => T, b: Buffer): T {
    try {
        return decode(b);
    } catch (e) {
        if (e instanceof BlobError) throw new RdbFormatError(s.name, at, `${what}: ${e.expected}`, `byte ${e.at} of the ${b.length}-byte blob`);
        throw e;
    }
}

function pairs(items: Buffer[], s: Source, at: number, what: string): [Buffer, Buffer][] {
    if (items.length % 2) throw new RdbFormatError(s.name, at, `${what} with an even number of elements`, `found ${items.length}`);
    const out: [Buffer, Buffer][] = new Array(items.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = [items[2 * i], items[2 * i + 1]];
    return out;
}

function idOf(ms: bigint, seq: bigint): string {
    return `${ms}-${seq}`;
}

function rawId(b: Buffer, p = 0): string {
    return idOf(b.readBigUInt64BE(p), b.readBigUInt64BE(p + 8));
}

/** Entries of one stream listpack node (t_stream.c: master entry, then delta-encoded entries). */
export function streamNodeEntries(masterKey: Buffer, lp: Buffer): StreamEntry[] {
    const e = listpackEntries(lp);
    let i = 0;
    const at = (what: string): Buffer => {
        if (i >= e.length) throw new BlobError(lp.length - 1, `stream node ${what}`);
        return e[i++];
    };
    const masterMs = masterKey.readBigUInt64BE(0);
    const masterSeq = masterKey.readBigUInt64BE(8);
    at("entry count");
    at("deleted count");
    const nf = toInt(at("master field count"));
    const masterFields: Buffer[] = [];
    for (let k = 0; k < nf; k++) masterFields.push(at("master field"));
    if (toInt(at("master entry terminator")) !== 0) throw new BlobError(0, "stream master entry terminator 0");
    const out: StreamEntry[] = [];
    while (i < e.length) {
        const flags = toInt(at("entry flags"));
        const ms = masterMs + toBig(at("entry ms delta"));
        const seq = masterSeq + toBig(at("entry seq delta"));
        const fields: Buffer[] = [];
        if (flags & STREAM_ITEM_FLAG_SAMEFIELDS) {
            for (let k = 0; k < nf; k++) fields.push(masterFields[k], at("entry value"));
        } else {
            const n = toInt(at("entry field count"));
            for (let k = 0; k < 2 * n; k++) fields.push(at("entry field or value"));
        }
        at("entry lp-count");
        if (!(flags & STREAM_ITEM_FLAG_DELETED)) out.push({ id: idOf(ms, seq), fields });
    }
    return out;
}

function ms8(s: Source, what: string): number {
    return Number(s.bytes(8, what).readBigInt64LE(0));
}

/**
 * Decodes the value of RDB type `type` starting at s.pos, in chunks of about `batch` elements,
 * leaving s.pos just past the value.
 */
export async function* decodeFrom(s: Source, type: number, batch: number, pieceBytes = STRING_PIECE): AsyncGenerator<ValueChunk> {
    const valueAt = s.offset;
    switch (type) {
        case RDB_TYPE.STRING: {
            const n = await s.unit(() => {
                const start = s.pos;
                const len = s.lenOrEnc("a string length");
                s.pos = start;
                return len;
            });
            if (n < 0 || n <= pieceBytes) {
                yield { type: "string", value: await s.unit(() => s.str("a string value")) };
                return;
            }
            await s.unit(() => s.lenOrEnc("a string length"));
            let left = n;
            while (left > 0) {
                const piece = Math.min(left, pieceBytes);
                await s.ensure(piece, `${left} more bytes of a ${n}-byte string`);
                yield { type: "string", value: s.bytes(piece, "string bytes") };
                left -= piece;
            }
            return;
        }
        case RDB_TYPE.LIST:
        case RDB_TYPE.SET: {
            const n = await s.unit(() => s.len(`the ${type === RDB_TYPE.LIST ? "list" : "set"} length`));
            const one = (): Buffer => s.str("an element");
            for (let i = 0; i < n; ) {
                const acc: Buffer[] = [];
                while (acc.length < batch && i < n) i += await s.units(Math.min(batch - acc.length, n - i), one, acc);
                yield type === RDB_TYPE.LIST ? { type: "list", items: acc } : { type: "set", members: acc };
            }
            return;
        }
        case RDB_TYPE.ZSET:
        case RDB_TYPE.ZSET_2: {
            const n = await s.unit(() => s.len("the sorted set length"));
            const one = (): [Buffer, number] => {
                const m = s.str("a sorted set member");
                if (type === RDB_TYPE.ZSET_2) return [m, s.bytes(8, "a binary double score").readDoubleLE(0)];
                const l = s.u8("a score length");
                if (l === 253) return [m, NaN];
                if (l === 254) return [m, Infinity];
                if (l === 255) return [m, -Infinity];
                return [m, parseScore(s.bytes(l, "a score"))];
            };
            for (let i = 0; i < n; ) {
                const acc: [Buffer, number][] = [];
                while (acc.length < batch && i < n) i += await s.units(Math.min(batch - acc.length, n - i), one, acc);
                yield { type: "zset", entries: acc };
            }
            return;
        }
        case RDB_TYPE.HASH: {
            const n = await s.unit(() => s.len("the hash length"));
            const one = (): [Buffer, Buffer] => [s.str("a hash field"), s.str("a hash value")];
            for (let i = 0; i < n; ) {
                const acc: [Buffer, Buffer][] = [];
                while (acc.length < batch && i < n) i += await s.units(Math.min(batch - acc.length, n - i), one, acc);
                yield { type: "hash", fields: acc };
            }
            return;
        }
        case RDB_TYPE.HASH_ZIPMAP:
        case RDB_TYPE.HASH_ZIPLIST:
        case RDB_TYPE.HASH_LISTPACK: {
            const b = await s.unit(() => s.str("a hash blob"));
            const dec = type === RDB_TYPE.HASH_ZIPMAP ? zipmapEntries : type === RDB_TYPE.HASH_ZIPLIST ? ziplistEntries : listpackEntries;
            const what = rdbTypeName(type);
            yield* chunked({ type: "hash", fields: pairs(blob(s, valueAt, what, dec, b), s, valueAt, what) }, batch);
            return;
        }
        case RDB_TYPE.ZSET_ZIPLIST:
        case RDB_TYPE.ZSET_LISTPACK: {
            const b = await s.unit(() => s.str("a sorted set blob"));
            const what = rdbTypeName(type);
            const items = blob(s, valueAt, what, type === RDB_TYPE.ZSET_ZIPLIST ? ziplistEntries : listpackEntries, b);
            const entries = pairs(items, s, valueAt, what).map(([m, sc]): [Buffer, number] => [m, parseScore(sc)]);
            yield* chunked({ type: "zset", entries }, batch);
            return;
        }
        case RDB_TYPE.SET_INTSET:
        case RDB_TYPE.SET_LISTPACK: {
            const b = await s.unit(() => s.str("a set blob"));
            const members = blob(s, valueAt, rdbTypeName(type), type === RDB_TYPE.SET_INTSET ? intsetMembers : listpackEntries, b);
            yield* chunked({ type: "set", members }, batch);
            return;
        }
        case RDB_TYPE.LIST_ZIPLIST: {
            const b = await s.unit(() => s.str("a ziplist"));
            yield* chunked({ type: "list", items: blob(s, valueAt, "LIST_ZIPLIST", ziplistEntries, b) }, batch);
            return;
        }
        case RDB_TYPE.LIST_QUICKLIST:
        case RDB_TYPE.LIST_QUICKLIST_2: {
            const n = await s.unit(() => s.len("the quicklist node count"));
            for (let i = 0; i < n; i++) {
                const at = s.offset;
                const [container, b] = await s.unit((): [number, Buffer] => {
                    const c = type === RDB_TYPE.LIST_QUICKLIST_2 ? s.len("a quicklist node container") : 2;
                    return [c, s.str("a quicklist node")];
                });
                if (type === RDB_TYPE.LIST_QUICKLIST) {
                    yield* chunked({ type: "list", items: blob(s, at, "a quicklist ziplist node", ziplistEntries, b) }, batch);
                } else if (container === 1) {
                    yield { type: "list", items: [b] };
                } else if (container === 2) {
                    yield* chunked({ type: "list", items: blob(s, at, "a quicklist listpack node", listpackEntries, b) }, batch);
                } else {
                    throw new RdbFormatError(s.name, at, "a quicklist node container of 1 (plain) or 2 (packed)", `found ${container}`);
                }
            }
            return;
        }
        case RDB_TYPE.STREAM_LISTPACKS:
        case RDB_TYPE.STREAM_LISTPACKS_2:
        case RDB_TYPE.STREAM_LISTPACKS_3:
            yield* decodeStream(s, type, batch);
            return;
        case RDB_TYPE.MODULE_2:
        case RDB_TYPE.MODULE_PRE_GA: {
            const id = type === RDB_TYPE.MODULE_2 ? await s.unit(() => s.lenBig("a module id")) : null;
            throw moduleRefusal(s.name, valueAt, id);
        }
        default:
            throw new RdbFormatError(s.name, valueAt, "a value of a known RDB type", `found type ${type}`);
    }
}

export function moduleRefusal(source: string, at: number, id: bigint | null): RdbUnsupportedError {
    if (id === null) return new RdbUnsupportedError(source, at, "a module value in the pre-release (4.0 RC) format cannot be restored");
    const { name, encver } = moduleTypeName(id);
    return new RdbUnsupportedError(
        source,
        at,
        `a value of module type '${name}' (encoding version ${encver}, module id ${id}) cannot be restored: ` +
            "module values need the module on the target, and this tool restores only core types",
    );
}

function* chunked(c: ValueChunk, batch: number): Generator<ValueChunk> {
    const arr = c.type === "list" ? c.items : c.type === "set" ? c.members : c.type === "zset" ? c.entries : c.type === "hash" ? c.fields : null;
    if (!arr || arr.length <= batch) {
        yield c;
        return;
    }
    for (let i = 0; i < arr.length; i += batch) {
        const part = arr.slice(i, i + batch);
        if (c.type === "list") yield { type: "list", items: part as Buffer[] };
        else if (c.type === "set") yield { type: "set", members: part as Buffer[] };
        else if (c.type === "zset") yield { type: "zset", entries: part as [Buffer, number][] };
        else yield { type: "hash", fields: part as [Buffer, Buffer][] };
    }
}

const NOT_SET = 0xffffffffffffffffn;

async function* decodeStream(s: Source, type: number, batch: number): AsyncGenerator<ValueChunk> {
    const v2 = type >= RDB_TYPE.STREAM_LISTPACKS_2;
    const v3 = type >= RDB_TYPE.STREAM_LISTPACKS_3;
    const nodes = await s.unit(() => s.len("the stream node count"));
    let acc: StreamEntry[] = [];
    for (let i = 0; i < nodes; i++) {
        const at = s.offset;
        const [key, lp] = await s.unit((): [Buffer, Buffer] => [s.str("a stream node master ID"), s.str("a stream node listpack")]);
        if (key.length !== 16) throw new RdbFormatError(s.name, at, "a 16-byte stream node master ID", `found ${key.length} bytes`);
        const entries = blob(s, at, "a stream node listpack", (b) => streamNodeEntries(key, b), lp);
        for (const e of entries) acc.push(e);
        if (acc.length >= batch) {
            yield { type: "stream", entries: acc };
            acc = [];
        }
    }
    const meta = await s.unit((): StreamMeta => {
        const length = Number(s.lenBig("the stream length"));
        const lastId = idOf(s.lenBig("the last ID (ms)"), s.lenBig("the last ID (seq)"));
        if (!v2) return { length, lastId, firstId: null, maxDeletedId: null, entriesAdded: null };
        const firstId = idOf(s.lenBig("the first ID (ms)"), s.lenBig("the first ID (seq)"));
        const maxDeletedId = idOf(s.lenBig("the max deleted ID (ms)"), s.lenBig("the max deleted ID (seq)"));
        const entriesAdded = Number(s.lenBig("entries-added"));
        return { length, lastId, firstId, maxDeletedId, entriesAdded };
    });
    const groupCount = await s.unit(() => s.len("the consumer group count"));
    const groups: StreamGroup[] = [];
    for (let g = 0; g < groupCount; g++) {
        const [name, lastId, entriesRead, pelCount] = await s.unit((): [Buffer, string, number | null, number] => {
            const name = s.str("a consumer group name");
            const lastId = idOf(s.lenBig("a group last ID (ms)"), s.lenBig("a group last ID (seq)"));
            let read: number | null = null;
            if (v2) {
                const r = s.lenBig("a group entries-read");
                read = r === NOT_SET ? null : Number(r);
            }
            return [name, lastId, read, s.len("a group PEL size")];
        });
        const pending: StreamPending[] = [];
        const byId = new Map<string, StreamPending>();
        for (let i = 0; i < pelCount; i++) {
            const p = await s.unit((): StreamPending => {
                const id = rawId(s.bytes(16, "a PEL entry ID"));
                return { id, deliveryTime: ms8(s, "a PEL delivery time"), deliveryCount: s.len("a PEL delivery count"), consumer: null };
            });
            pending.push(p);
            byId.set(p.id, p);
        }
        const consumerCount = await s.unit(() => s.len("the consumer count"));
        const consumers: StreamConsumer[] = [];
        for (let c = 0; c < consumerCount; c++) {
            const at = s.offset;
            const [cname, seenTime, activeTime, n] = await s.unit((): [Buffer, number, number | null, number] => {
                const cname = s.str("a consumer name");
                const seen = ms8(s, "a consumer seen-time");
                const active = v3 ? ms8(s, "a consumer active-time") : null;
                return [cname, seen, active, s.len("a consumer PEL size")];
            });
            const mine: string[] = [];
            for (let i = 0; i < n; i++) {
                const id = await s.unit(() => rawId(s.bytes(16, "a consumer PEL entry ID")));
                const nack = byId.get(id);
                if (!nack) throw new RdbFormatError(s.name, at, `consumer PEL entry ${id} to be in the group's PEL`);
                nack.consumer = cname;
                mine.push(id);
            }
            consumers.push({ name: cname, seenTime, activeTime, pending: mine });
        }
        groups.push({ name, lastId, entriesRead, pending, consumers });
    }
    yield { type: "stream", entries: acc, meta, groups };
}

/**
 * Decodes a serialized value (a record's `value`, or a DUMP body without type byte and trailer)
 * element by element. Errors name `source` and the offset inside the value.
 */
export function decodeValue(rdbType: number, value: Buffer, opts: { batch?: number; source?: string; offset?: number } = {}): AsyncIterable<ValueChunk> {
    return {
        [Symbol.asyncIterator]: () => {
            const s = new Source(opts.source ?? "serialized value", value, { checksum: false });
            s.base = opts.offset ?? 0;
            const gen = decodeFrom(s, rdbType, opts.batch ?? 1000);
            let checked = false;
            return {
                next: async () => {
                    const r = await gen.next();
                    if (r.done && !checked) {
                        checked = true;
                        if (s.pos !== value.length) throw s.error(`the end of the ${rdbTypeName(rdbType)} value`, `${value.length - s.pos} bytes left over`);
                    }
                    return r;
                },
                return: (v?: unknown) => gen.return(v as undefined),
            };
        },
    };
}

/** All chunks of a decoded value. */
export async function decodeValueAll(rdbType: number, value: Buffer, opts: { batch?: number; source?: string } = {}): Promise<ValueChunk[]> {
    const out: ValueChunk[] = [];
    for await (const c of decodeValue(rdbType, value, { batch: Infinity, ...opts })) out.push(c);
    return out;
}
