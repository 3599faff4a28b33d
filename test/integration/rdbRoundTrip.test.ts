/**
 * The RDB reader against files written by this machine's redis-server (7.0, RDB 10): every key's
 * dumpPayload equals the server's own DUMP byte for byte (pins CRC-64, value extents and the
 * payload layout), decodeValue matches what the server returns, and the streamed (element by
 * element) path yields the same values as the buffered one.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createReadStream, readFileSync } from "node:fs";
import { join } from "node:path";
import Redis from "ioredis";
import { startServer, stopAll, TestServer } from "../helpers/redisServers";
import { readRdb, dumpPayload, decodeValueAll, decodeValue, rebuildCommands, RDB_TYPE, KeyRecord, RdbRecord, ValueChunk } from "../../scripts/rdb";
import { populate, canonicalOf, serverCanonical, FUNCTION_CODE } from "./rdbServerData";
import { Source } from "../../scripts/rdb/source";

/** Containers (1 plain, 2 packed) of a QUICKLIST_2 value's nodes, and whether each node is LZF-compressed. */
function quicklistNodes(value: Buffer): { container: number; lzf: boolean }[] {
    const s = new Source("value", value, { checksum: false });
    const out: { container: number; lzf: boolean }[] = [];
    for (let n = s.len("nodes"); n > 0; n--) {
        const container = s.len("container");
        out.push({ container, lzf: s.buf[s.pos] === 0xc3 });
        s.skipStr("node");
    }
    return out;
}

const started: TestServer[] = [];
let server: TestServer;
let r: Redis;
let file: string;
let keysInDb0: number;

before(async () => {
    server = await startServer({ cluster: false, extraArgs: ["--enable-debug-command", "yes", "--list-compress-depth", "1", "--maxmemory-policy", "allkeys-lfu"] });
    started.push(server);
    r = new Redis({ host: server.host, port: server.port, lazyConnect: true, maxRetriesPerRequest: 0 });
    await r.connect();
    keysInDb0 = await populate(r);
    await r.call("SAVE");
    file = join(server.dir, "dump.rdb");
});

after(async () => {
    r?.disconnect();
    await stopAll(started);
});

async function collect(opts: Parameters<typeof readRdb>[1] = {}, consume = true): Promise<{ records: RdbRecord[]; streamed: Map<string, ValueChunk[]> }> {
    const records: RdbRecord[] = [];
    const streamed = new Map<string, ValueChunk[]>();
    let n = 0;
    for await (const rec of readRdb(createReadStream(file, { highWaterMark: 16 * 1024 }), { source: file, ...opts })) {
        records.push(rec);
        if (rec.kind === "key" && rec.elements && consume && n++ % 2 === 0) {
            const chunks: ValueChunk[] = [];
            for await (const c of rec.elements()) chunks.push(c);
            streamed.set(rec.key.toString("hex"), chunks);
        }
    }
    return { records, streamed };
}

test("every key's dumpPayload equals the server's DUMP, and decodeValue matches the server's reply", async () => {
    const { records } = await collect();
    assert.equal(records[0].kind, "header");
    assert.equal((records[0] as { rdbVersion: number }).rdbVersion, 10);
    const end = records[records.length - 1];
    assert.deepEqual(end.kind === "end" && [end.checksumOk, end.bytes], [true, readFileSync(file).length]);
    const keys = records.filter((x): x is KeyRecord => x.kind === "key");
    const db0 = keys.filter((k) => k.db === 0);
    assert.equal(db0.length, keysInDb0);
    assert.deepEqual(keys.filter((k) => k.db === 1).map((k) => k.key.toString()), ["db1:key"]);
    const types = new Set<number>();
    for (const k of db0) {
        types.add(k.rdbType);
        const name = JSON.stringify(k.key.toString());
        const dump = (await r.callBuffer("DUMP", k.key)) as Buffer;
        assert.ok(dumpPayload(k.rdbType, k.value!, k.rdbVersion).equals(dump), `DUMP of ${name} (type ${k.rdbType})`);
        assert.deepEqual(canonicalOf(await decodeValueAll(k.rdbType, k.value!)), await serverCanonical(r, k.key), `value of ${name}`);
        // allkeys-lfu: every key is preceded by a FREQ opcode.
        assert.equal(typeof k.lfuFreq, "number", `LFU counter of ${name}`);
        const pexpiretime = Number(await r.call("PEXPIRETIME", k.key));
        assert.equal(k.expireAtMs, pexpiretime === -1 ? null : pexpiretime, `expiry of ${name}`);
    }
    // What 7.0 writes: strings, quicklist 2, intset, hashtable sets, listpack/skiplist zsets, listpack/hashtable hashes, streams v2.
    for (const t of [RDB_TYPE.STRING, RDB_TYPE.LIST_QUICKLIST_2, RDB_TYPE.SET_INTSET, RDB_TYPE.SET, RDB_TYPE.ZSET_LISTPACK, RDB_TYPE.ZSET_2, RDB_TYPE.HASH_LISTPACK, RDB_TYPE.HASH, RDB_TYPE.STREAM_LISTPACKS_2]) {
        assert.ok(types.has(t), `the fixture holds RDB type ${t}`);
    }
    // The fixture really holds multi-node quicklists with LZF-compressed inner nodes and plain nodes.
    const byName = new Map(db0.map((k) => [k.key.toString(), k]));
    const multi = quicklistNodes(byName.get("l:multi")!.value!);
    assert.ok(multi.length > 3 && multi.some((n) => n.lzf) && multi.every((n) => n.container === 2), JSON.stringify(multi));
    assert.deepEqual(quicklistNodes(byName.get("l:plain")!.value!).map((n) => n.container), [2, 1, 2, 1]);
    const fn = records.find((x) => x.kind === "function");
    assert.ok(fn && fn.kind === "function");
    assert.equal(fn.code.toString(), FUNCTION_CODE);
    assert.ok(fn.payload.equals((await r.callBuffer("FUNCTION", "DUMP")) as Buffer), "function payload equals FUNCTION DUMP");
    const aux = new Map(records.flatMap((x) => (x.kind === "aux" ? [[x.name, x.value] as const] : [])));
    assert.match(aux.get("redis-ver") ?? "", /^7\.0\./);
});

test("with a small maxValueBytes, big values stream element by element and equal the buffered ones", async () => {
    const buffered = await collect();
    const small = await collect({ maxValueBytes: 2000, batch: 100 });
    const bufKeys = buffered.records.filter((x): x is KeyRecord => x.kind === "key");
    const smallKeys = small.records.filter((x): x is KeyRecord => x.kind === "key");
    assert.deepEqual(smallKeys.map((k) => k.key.toString("hex")), bufKeys.map((k) => k.key.toString("hex")));
    const streamedKeys = smallKeys.filter((k) => k.value === null);
    const names = new Set(streamedKeys.map((k) => k.key.toString()));
    for (const k of ["s:big", "l:multi", "set:big", "z:big", "h:big", "st:big"]) assert.ok(names.has(k), `${k} streamed`);
    for (const k of streamedKeys) assert.ok(k.valueBytes > 2000, `${k.key} streamed with valueBytes ${k.valueBytes}`);
    assert.ok(small.streamed.size >= 3 && small.streamed.size < streamedKeys.length, "some streamed values consumed, some skipped by the reader");
    for (const k of bufKeys) {
        const chunks = small.streamed.get(k.key.toString("hex"));
        if (!chunks) continue;
        assert.deepEqual(canonicalOf(chunks), canonicalOf(await decodeValueAll(k.rdbType, k.value!)), `streamed value of ${k.key}`);
    }
    const end = small.records[small.records.length - 1];
    assert.ok(end.kind === "end" && end.checksumOk === true);
    // Nothing consumed at all: the reader skips every streamed value itself.
    const skipped = await collect({ maxValueBytes: 2000 }, false);
    assert.equal(skipped.records.filter((x) => x.kind === "key").length, bufKeys.length);
});

test("the element-wise fallback rebuilds every key with plain commands to the same value and expiry", async () => {
    const { records } = await collect();
    const keys = records.filter((x): x is KeyRecord => x.kind === "key" && x.db === 0);
    for (const k of keys) {
        const target = Buffer.concat([Buffer.from("rebuilt:"), k.key]);
        const p = r.pipeline();
        for await (const cmd of rebuildCommands(target, decodeValue(k.rdbType, k.value!, { batch: 300 }), { expireAtMs: k.expireAtMs, maxElements: 250 })) {
            p.callBuffer(cmd[0], ...cmd.slice(1));
        }
        for (const [err] of (await p.exec())!) assert.ifError(err);
        const name = JSON.stringify(k.key.toString());
        const [want, got] = [await serverCanonical(r, k.key), await serverCanonical(r, target)];
        if (want.type === "stream") {
            // XCLAIM and CREATECONSUMER set a consumer's seen-time to now: the one thing the commands cannot carry.
            for (const c of [want, got]) for (const g of (c.data as { groups: { consumers: unknown[][] }[] }).groups) for (const x of g.consumers) x[1] = 0;
        }
        assert.deepEqual(got, want, `rebuilt ${name}`);
        assert.equal(Number(await r.call("PEXPIRETIME", target)), Number(await r.call("PEXPIRETIME", k.key)), `expiry of rebuilt ${name}`);
        if (want.type === "stream") {
            const info = async (key: Buffer) => {
                const a = (await r.call("XINFO", "STREAM", key)) as unknown[];
                const o: Record<string, unknown> = {};
                for (let i = 0; i < a.length; i += 2) o[String(a[i])] = a[i + 1];
                return [o["last-generated-id"], o["max-deleted-entry-id"], o["entries-added"], o["groups"]];
            };
            assert.deepEqual(await info(target), await info(k.key), `stream counters of rebuilt ${name}`);
        }
    }
});
