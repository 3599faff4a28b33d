/**
 * Writes every type and encoding Redis 7.0 produces into a server, and reads a key back in the
 * shape decodeValue produces, for the RDB reader tests.
 */
import Redis from "ioredis";
import type { ValueChunk, StreamGroup, StreamEntry, StreamMeta } from "../../scripts/rdb";

export const FUNCTION_CODE = "#!lua name=rdbtestlib\nredis.register_function('rdbtest_echo', function(keys, args) return args[1] end)";

/** Populates db 0 (and one key in db 1). Returns the number of keys written to db 0. */
export async function populate(r: Redis): Promise<number> {
    // Elements above 100 bytes go to PLAIN quicklist nodes; list-compress-depth 1 LZF-compresses inner nodes.
    await r.call("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "100");
    const p = r.pipeline();
    // strings: int, embstr, raw, LZF-compressible raw, incompressible, big, binary key
    p.set("s:int", "12345").set("s:neg", "-129").set("s:int64", "4294967296123").set("s:embstr", "hello");
    p.set("s:raw", "x".repeat(30) + "y".repeat(30)).set("s:lzf", "abcdefghij".repeat(500));
    p.set("s:random", randomBytes(200, 1)).set("s:big", randomBytes(3 * 1024 * 1024, 2)).set("s:empty", "");
    p.set(Buffer.from([0, 1, 2, 255, 0xfe]), "binary key");
    p.set("k".repeat(100), "long LZF-compressible key");
    p.set("s:ttl", "v", "PX", 3_600_000).set("s:ttl2", "v").pexpireat("s:ttl2", Date.now() + 86_400_000);
    // lists: one listpack node, many nodes, plain nodes, ints
    p.rpush("l:small", "a", "b", "12", "-5", "100000", "9999999999");
    p.rpush("l:multi", ...Array.from({ length: 5000 }, (_, i) => `item-${i}-${"z".repeat(i % 40)}`));
    p.rpush("l:plain", "small", "p".repeat(500), "tiny", randomBytes(300, 3));
    // sets: intset, hashtable (7.0 has no listpack sets)
    p.sadd("set:int", 1, 2, 3, -4, 70000, 5000000000);
    p.sadd("set:str", "a", "b", "c");
    p.sadd("set:big", ...Array.from({ length: 3000 }, (_, i) => `m${i}`));
    p.sadd("set:bigint", ...Array.from({ length: 1000 }, (_, i) => i * 7));
    // zsets: listpack, skiplist, special scores
    p.zadd("z:small", 1, "one", 2.5, "two.5", -3, "minus", "inf", "top", "-inf", "bottom");
    p.zadd("z:big", ...Array.from({ length: 500 }, (_, i) => [i / 3, `member-${i}`]).flat());
    p.zadd("z:longmember", 1, "q".repeat(100));
    // hashes: listpack, hashtable (many fields, long value)
    p.hset("h:small", "f1", "v1", "f2", "12", "f3", "");
    p.hset("h:big", ...Array.from({ length: 2000 }, (_, i) => [`field${i}`, `value${i}`]).flat());
    p.hset("h:longvalue", "f", "L".repeat(200));
    await p.exec();
    // streams: several nodes, same/different fields, deletions, groups, PELs, consumers
    for (let i = 0; i < 250; i++) {
        if (i % 3 === 0) await r.xadd("st:big", "*", "a", String(i), "b", "x");
        else await r.xadd("st:big", "*", "other", String(i));
    }
    await r.xadd("st:small", "1-1", "f", "v");
    await r.xadd("st:small", "2-5", "f", "w", "g", "h");
    await r.xadd("st:small", "3-0", "f", "gone");
    await r.xdel("st:small", "3-0");
    await r.xgroup("CREATE", "st:big", "g1", "0");
    await r.xgroup("CREATE", "st:big", "g2", "$");
    await r.xreadgroup("GROUP", "g1", "alice", "COUNT", "10", "STREAMS", "st:big", ">");
    await r.xreadgroup("GROUP", "g1", "bob", "COUNT", "5", "STREAMS", "st:big", ">");
    await r.call("XGROUP", "CREATECONSUMER", "st:big", "g2", "carol");
    await r.xgroup("CREATE", "st:small", "g", "0");
    await r.xreadgroup("GROUP", "g", "dave", "STREAMS", "st:small", ">");
    await r.xgroup("CREATE", "st:mkstream", "g", "$", "MKSTREAM");
    await r.xadd("st:empty", "5-5", "f", "v");
    await r.xdel("st:empty", "5-5");
    await r.call("FUNCTION", "LOAD", FUNCTION_CODE);
    await r.select(1);
    await r.set("db1:key", "in db 1");
    await r.select(0);
    return Number(await r.dbsize());
}

function randomBytes(n: number, seed: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    let x = seed * 2654435761;
    for (let i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        b[i] = x >>> 24;
    }
    return b;
}

const sortBuf = (a: Buffer, b: Buffer): number => Buffer.compare(a, b);

function num(s: string): number {
    if (s === "inf") return Infinity;
    if (s === "-inf") return -Infinity;
    return Number(s);
}

export type Canonical = { type: string; data: unknown };

/** Merges decoded chunks into a canonical form (sets and hashes sorted) for comparison. */
export function canonicalOf(chunks: ValueChunk[]): Canonical {
    const type = chunks[0]?.type;
    switch (type) {
        case "string":
            return { type, data: Buffer.concat(chunks.map((c) => (c as { value: Buffer }).value)).toString("hex") };
        case "list":
            return { type, data: chunks.flatMap((c) => (c as { items: Buffer[] }).items).map((b) => b.toString("hex")) };
        case "set":
            return { type, data: chunks.flatMap((c) => (c as { members: Buffer[] }).members).sort(sortBuf).map((b) => b.toString("hex")) };
        case "zset":
            // Order by score then member: a skiplist is saved tail first.
            return { type, data: sortZ(chunks.flatMap((c) => (c as { entries: [Buffer, number][] }).entries)).map(([m, s]) => [m.toString("hex"), s]) };
        case "hash":
            return {
                type,
                data: chunks
                    .flatMap((c) => (c as { fields: [Buffer, Buffer][] }).fields)
                    .sort((a, b) => sortBuf(a[0], b[0]))
                    .map(([f, v]) => [f.toString("hex"), v.toString("hex")]),
            };
        case "stream": {
            const sc = chunks as { entries: StreamEntry[]; meta?: StreamMeta; groups?: StreamGroup[] }[];
            const last = sc[sc.length - 1];
            return {
                type,
                data: {
                    entries: sc.flatMap((c) => c.entries).map((e) => [e.id, e.fields.map((f) => f.toString())]),
                    length: last.meta!.length,
                    lastId: last.meta!.lastId,
                    groups: last.groups!.map((g) => ({
                        name: g.name.toString(),
                        lastId: g.lastId,
                        entriesRead: g.entriesRead,
                        pending: g.pending.map((p) => [p.id, p.consumer?.toString(), p.deliveryTime, p.deliveryCount]),
                        consumers: g.consumers.map((c) => [c.name.toString(), c.seenTime, c.pending]),
                    })),
                },
            };
        }
        default:
            throw new Error(`no chunks`);
    }
}

function sortZ(e: [Buffer, number][]): [Buffer, number][] {
    return e.sort((a, b) => a[1] - b[1] || sortBuf(a[0], b[0]));
}

function pairsOf<T>(a: T[]): [T, T][] {
    const out: [T, T][] = [];
    for (let i = 0; i < a.length; i += 2) out.push([a[i], a[i + 1]]);
    return out;
}

/** What the server returns for `key`, in canonical form. */
export async function serverCanonical(r: Redis, key: Buffer): Promise<Canonical> {
    const type = await r.type(key);
    switch (type) {
        case "string":
            return { type, data: (await r.getBuffer(key))!.toString("hex") };
        case "list":
            return { type, data: (await r.lrangeBuffer(key, 0, -1)).map((b) => b.toString("hex")) };
        case "set":
            return { type, data: (await r.smembersBuffer(key)).sort(sortBuf).map((b) => b.toString("hex")) };
        case "zset": {
            const flat = (await r.callBuffer("ZRANGE", key, "0", "-1", "WITHSCORES")) as Buffer[];
            return { type, data: sortZ(pairsOf(flat).map(([m, s]): [Buffer, number] => [m, num(s.toString())])).map(([m, s]) => [m.toString("hex"), s]) };
        }
        case "hash": {
            const flat = (await r.callBuffer("HGETALL", key)) as Buffer[];
            return { type, data: pairsOf(flat).sort((a, b) => sortBuf(a[0], b[0])).map(([f, v]) => [f.toString("hex"), v.toString("hex")]) };
        }
        case "stream": {
            const entries = (await r.call("XRANGE", key, "-", "+")) as [string, string[]][];
            const full = kv((await r.call("XINFO", "STREAM", key, "FULL", "COUNT", "0")) as unknown[]);
            const groups = ((full.groups as unknown[][]) ?? []).map((g0) => {
                const g = kv(g0);
                return {
                    name: g.name,
                    lastId: g["last-delivered-id"],
                    entriesRead: g["entries-read"] ?? null,
                    pending: (g.pending as [string, string, number, number][]).map(([id, c, t, n]) => [id, c, t, n]),
                    consumers: (g.consumers as unknown[][]).map((c0) => {
                        const c = kv(c0);
                        return [c.name, c["seen-time"], (c.pending as [string][]).map((p) => p[0])];
                    }),
                };
            });
            return { type, data: { entries, length: full.length, lastId: full["last-generated-id"], groups } };
        }
        default:
            throw new Error(`unexpected type ${type}`);
    }
}

function kv(a: unknown[]): Record<string, any> {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < a.length; i += 2) o[String(a[i])] = a[i + 1];
    return o;
}
