/**
 * The RDB reader on files Redis 7.0 cannot write: older encodings (zipmap, ziplist, intset, linked
 * list, RDB 3-9), RDB 11 from Redis 7.2 (listpack sets, functions), RDB 12 (STREAM_LISTPACKS_3).
 * Sources and licenses: test/fixtures/rdb/README.md.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readRdb, decodeValueAll, parseDumpPayload, RDB_TYPE, RdbRecord, KeyRecord, ValueChunk, RdbFormatError, RdbUnsupportedError } from "../../scripts/rdb";

const DIR = join(__dirname, "..", "fixtures", "rdb");
const file = (name: string): Buffer => readFileSync(join(DIR, name));

async function* chunks(buf: Buffer, size: number): AsyncGenerator<Buffer> {
    for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function read(name: string, opts: Parameters<typeof readRdb>[1] = {}, chunk = 4096): Promise<RdbRecord[]> {
    const out: RdbRecord[] = [];
    for await (const r of readRdb(chunks(file(name), chunk), { source: name, ...opts })) out.push(r);
    return out;
}

const keysOf = (rs: RdbRecord[]): KeyRecord[] => rs.filter((r): r is KeyRecord => r.kind === "key");

/** A key's value as plain JSON-able data (strings for Buffers). */
async function plain(k: KeyRecord): Promise<unknown> {
    const cs = await decodeValueAll(k.rdbType, k.value!);
    const s = (b: Buffer): string => b.toString();
    const c = cs[0] as ValueChunk;
    switch (c.type) {
        case "string":
            return s(c.value);
        case "list":
            return cs.flatMap((x) => (x as { items: Buffer[] }).items.map(s));
        case "set":
            return cs.flatMap((x) => (x as { members: Buffer[] }).members.map(s)).sort();
        case "zset":
            return Object.fromEntries(cs.flatMap((x) => (x as { entries: [Buffer, number][] }).entries.map(([m, sc]) => [s(m), sc])));
        case "hash":
            return Object.fromEntries(cs.flatMap((x) => (x as { fields: [Buffer, Buffer][] }).fields.map(([f, v]) => [s(f), s(v)])));
        case "stream":
            return c;
    }
}

async function byKey(name: string, opts: Parameters<typeof readRdb>[1] = {}): Promise<Record<string, { type: number; value: unknown; ttl: number | null }>> {
    const out: Record<string, { type: number; value: unknown; ttl: number | null }> = {};
    for (const k of keysOf(await read(name, opts))) out[k.key.toString()] = { type: k.rdbType, value: await plain(k), ttl: k.expireAtMs };
    return out;
}

test("encodings.rdb (RDB 4): ziplist, intset, linked list, hashtable, old ZSET, LZF", async () => {
    const rs = await read("redis/encodings.rdb");
    assert.deepEqual(rs[0], { kind: "header", rdbVersion: 4, offset: 0 });
    const end = rs[rs.length - 1];
    assert.ok(end.kind === "end" && end.checksumOk === null && end.bytes === 667);
    const k = await byKey("redis/encodings.rdb");
    assert.equal(Object.keys(k).length, 13);
    assert.deepEqual(k.list_zipped, { type: RDB_TYPE.LIST_ZIPLIST, value: ["1", "2", "3", "a", "b", "c", "100000", "6000000000"], ttl: null });
    assert.deepEqual(k.list.value, Array(3).fill(["1", "2", "3", "a", "b", "c", "100000", "6000000000"]).flat());
    assert.equal(k.list.type, RDB_TYPE.LIST);
    assert.deepEqual(k.set_zipped_3, { type: RDB_TYPE.SET_INTSET, value: ["1000000000", "2000000000", "3000000000", "4000000000", "5000000000", "6000000000"], ttl: null });
    assert.deepEqual(k.set.value, ["1", "100000", "2", "3", "6000000000", "a", "b", "c"]);
    assert.deepEqual(k.zset_zipped, { type: RDB_TYPE.ZSET_ZIPLIST, value: { a: 1, b: 2, c: 3 }, ttl: null });
    assert.equal(k.zset.type, RDB_TYPE.ZSET);
    assert.deepEqual(k.zset.value, { a: 1, aa: 10, aaa: 100, aaaa: 1000, b: 2, bb: 20, bbb: 200, bbbb: 5000000000, c: 3, cc: 30, ccc: 300, cccc: 123456789 });
    assert.deepEqual(k.hash_zipped.value, { a: "1", b: "2", c: "3" });
    assert.deepEqual(k.hash.value, { a: "1", b: "2", c: "3", aa: "10", bb: "20", cc: "30", aaa: "100", bbb: "200", ccc: "300", ddd: "400", eee: "5000000000" });
    assert.equal(k.compressible.value, "a".repeat(137)); // as redis tests/integration/rdb.tcl expects
    assert.deepEqual([k.number.value, k.string.value], ["10", "Hello World"]);
});

test("zipmap hashes (RDB 3), ziplist hash (RDB 9), quicklist of ziplists (RDB 8), ziplist zset", async () => {
    assert.deepEqual(await byKey("redis/hash-zipmap.rdb"), { hash: { type: RDB_TYPE.HASH_ZIPMAP, value: { f1: "v1", f2: "v2" }, ttl: null } });
    // Its header count is 255 for 2 entries: Redis 7 refuses it (zipmapValidateIntegrity), so does the decoder.
    const [big] = keysOf(await read("hdt3213-rdb/zipmap_big_len.rdb"));
    await assert.rejects(decodeValueAll(big.rdbType, big.value!, { source: "zipmap_big_len" }), /zipmap_big_len: invalid RDB at byte 0: expected HASH_ZIPMAP: zipmap count 2 \(header says 255\)/);
    assert.deepEqual(await byKey("redis/hash-ziplist.rdb"), { hash: { type: RDB_TYPE.HASH_ZIPLIST, value: { f1: "v1", f2: "v2" }, ttl: null } });
    assert.deepEqual(await byKey("redis/list-quicklist.rdb"), {
        list: { type: RDB_TYPE.LIST_QUICKLIST, value: ["7"], ttl: null },
        x: { type: RDB_TYPE.STRING, value: "7", ttl: null },
    });
    assert.deepEqual(await byKey("redis/zset-ziplist.rdb"), { zset: { type: RDB_TYPE.ZSET_ZIPLIST, value: { one: 1, two: 2 }, ttl: null } });
});

test("RDB 9 from Redis 6.0 (ziplist hash/zset, quicklist, TTL) and listpack integers of every width (RDB 10)", async () => {
    const m = await byKey("hdt3213-rdb/memory.rdb");
    assert.deepEqual(Object.keys(m).sort(), ["e", "hash", "large", "list", "s", "set", "zset"]);
    assert.deepEqual(m.e, { type: RDB_TYPE.STRING, value: "zxcvb", ttl: 1645136129180 });
    assert.deepEqual(m.zset, { type: RDB_TYPE.ZSET_ZIPLIST, value: { zn4ejjo4ths63irg: 1, "1ik4jifkg6olxf5n": 2 }, ttl: null });
    assert.deepEqual(m.list.value, ["7fbn7xhcnu", "lmproj6c2e", "e5lom29act", "yy3ux925do"]);
    const q = await byKey("hdt3213-rdb/quicklist.rdb");
    assert.deepEqual(q.list.value, ["eb5foapxep8846is", "ns8ra7iy34tpvt", "2dmoobfe4vlmok1f", "bmnctno6rrxjs5yl", "sq1c36x0ixv50jqm", "jfds2extynrj6l"]);
    const l = await byKey("hdt3213-rdb/listpack.rdb");
    assert.deepEqual(l.l, { type: RDB_TYPE.LIST_QUICKLIST_2, value: ["1", "20000", "aaaa", "4", "16380", "-16380", "1048576", "268435456", "8589934592"], ttl: null });
    assert.deepEqual((l.z.value as Record<string, number>)["11"], -8589934592);
    assert.deepEqual((l.h.value as Record<string, string>)["9"], "-268435456");
});

test("RDB 11 from Redis 7.2: listpack set, function library, EXPIRETIME_MS", async () => {
    const s = await read("hdt3213-rdb/set_listpack.rdb");
    assert.equal((s[0] as { rdbVersion: number }).rdbVersion, 11);
    const [k] = keysOf(s);
    assert.equal(k.rdbType, RDB_TYPE.SET_LISTPACK);
    assert.deepEqual(await plain(k), ["a", "b", "c", "d"]);

    const f = await read("hdt3213-rdb/function.rdb");
    const fn = f.find((r) => r.kind === "function");
    assert.ok(fn && fn.kind === "function");
    assert.match(fn.code.toString(), /^#!lua name=mylib\n/);
    // FUNCTION DUMP format: FUNCTION2 opcode, RDB string, version 11, valid CRC.
    const p = parseDumpPayload(fn.payload);
    assert.deepEqual([p.rdbType, p.rdbVersion], [245, 11]);

    assert.deepEqual(await byKey("hdt3213-rdb/expiration.rdb"), {
        noexpire: { type: RDB_TYPE.STRING, value: "1", ttl: null },
        expired: { type: RDB_TYPE.STRING, value: "1", ttl: 1751792339236 },
    });
});

test("RDB 12 is refused by default, naming the version; STREAM_LISTPACKS_3 reads with maxRdbVersion 12", async () => {
    await assert.rejects(read("hdt3213-rdb/stream_listoacks_3.rdb"), (e: Error) => {
        assert.ok(e instanceof RdbUnsupportedError);
        assert.match(e.message, /^hdt3213-rdb\/stream_listoacks_3\.rdb: RDB version 12 \(Redis 7\.4\+\) is newer than this reader supports \(at most 11 \(Redis 7\.2, Valkey 7\.2-8\.x\)\)/);
        return true;
    });
    const [k] = keysOf(await read("hdt3213-rdb/stream_listoacks_3.rdb", { maxRdbVersion: 12 }));
    assert.equal(k.rdbType, RDB_TYPE.STREAM_LISTPACKS_3);
    const [c] = await decodeValueAll(k.rdbType, k.value!);
    assert.ok(c.type === "stream");
    assert.deepEqual(c.entries.map((e) => [e.id, e.fields.map(String)]), [["1704557973866-0", ["name", "Sara", "surname", "OConnor"]]]);
    assert.deepEqual(c.meta, { length: 1, lastId: "1704557973866-0", firstId: "1704557973866-0", maxDeletedId: "0-0", entriesAdded: 1 });
    const [g] = c.groups!;
    assert.equal(g.name.toString(), "consumer-group-name");
    assert.deepEqual([g.lastId, g.entriesRead], ["1704557973866-0", 1]);
    assert.deepEqual(g.pending.map((p) => [p.id, p.deliveryTime, p.deliveryCount, p.consumer?.toString()]), [["1704557973866-0", 1704557998397, 1, "consumer-name"]]);
    assert.deepEqual(g.consumers.map((x) => [x.name.toString(), x.seenTime, x.activeTime, x.pending]), [["consumer-name", 1704557998397, 1704557998397, ["1704557973866-0"]]]);
});

test("a 55 KB multi-node stream decodes the same buffered, streamed in 1 KB values, and read 1 byte at a time", async () => {
    const whole = keysOf(await read("hdt3213-rdb/issue27.rdb"))[0];
    const all = await decodeValueAll(whole.rdbType, whole.value!);
    const entries = all.flatMap((c) => (c.type === "stream" ? c.entries : []));
    const last = all[all.length - 1];
    assert.ok(last.type === "stream" && last.meta);
    assert.equal(entries.length, last.meta.length);
    assert.ok(entries.length > 500);
    // Streamed: the value exceeds maxValueBytes.
    const streamed: ValueChunk[] = [];
    for await (const r of readRdb(chunks(file("hdt3213-rdb/issue27.rdb"), 333), { maxValueBytes: 1024, batch: 50 })) {
        if (r.kind === "key") {
            assert.equal(r.value, null);
            for await (const c of r.elements!()) streamed.push(c);
        }
    }
    assert.ok(streamed.length > 2);
    assert.deepEqual(streamed.flatMap((c) => (c.type === "stream" ? c.entries : [])), entries);
    // One byte per chunk: every retry path of the synchronous parser.
    const tiny = keysOf(await read("hdt3213-rdb/issue27.rdb", {}, 1))[0];
    assert.ok(tiny.value!.equals(whole.value!));
});

test("empty collections (redis#8453) are dropped and counted, as Redis does on load", async () => {
    const rs = await read("redis/corrupt_empty_keys.rdb");
    const end = rs[rs.length - 1];
    assert.ok(end.kind === "end");
    assert.equal(end.emptyKeysSkipped, 8);
    // A quicklist whose only node is an empty ziplist is not visible without decoding: RESTORE decides.
    assert.deepEqual(keysOf(rs).map((k) => k.key.toString()), ["list_quicklist_empty_ziplist"]);
});

test("scriptbackup.rdb: the lua AUX field comes through; a corrupt ziplist fails to decode with its offset", async () => {
    const rs = await read("redis/scriptbackup.rdb");
    assert.deepEqual(
        rs.filter((r) => r.kind === "aux" && r.name === "lua").map((r) => (r as { value: string }).value),
        ["return redis.call('set', 'foo', 'bar')"],
    );
    const bad = keysOf(await read("redis/corrupt_ziplist.rdb")).find((k) => k.key.toString() === "key:000000000091")!;
    assert.equal(bad.rdbType, RDB_TYPE.HASH_ZIPLIST);
    await assert.rejects(decodeValueAll(bad.rdbType, bad.value!, { source: "key:000000000091" }), (e: Error) => {
        assert.ok(e instanceof RdbFormatError);
        assert.match(e.message, /^key:000000000091: invalid RDB at byte 0: expected HASH_ZIPLIST: a ziplist header/);
        return true;
    });
});
