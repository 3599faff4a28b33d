/**
 * Bad input: every truncation and every single-byte corruption of a real RDB file is refused with
 * an RdbFormatError naming the source and a byte offset (never a hang, never a partial success);
 * content that is valid but cannot be restored (module types, module AUX, newer versions) is
 * refused by name. Synthetic files are built here with a valid CRC-64.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readRdb, crc64, dumpPayload, parseDumpPayload, lzfDecompress, RdbFormatError, RdbUnsupportedError, RdbRecord, Crc64 } from "../../scripts/rdb";

const MEMORY = readFileSync(join(__dirname, "..", "fixtures", "rdb", "hdt3213-rdb", "memory.rdb"));

async function* chunks(buf: Buffer, size: number): AsyncGenerator<Buffer> {
    for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function readAll(buf: Buffer, opts: Parameters<typeof readRdb>[1] = {}, chunk = 5): Promise<RdbRecord[]> {
    const out: RdbRecord[] = [];
    for await (const r of readRdb(chunks(buf, chunk), { source: "t.rdb", ...opts })) out.push(r);
    return out;
}

/** An RDB file: header, body, EOF, CRC-64. */
function rdbFile(version: number, ...body: (number | Buffer)[]): Buffer {
    const head = Buffer.from(`REDIS${String(version).padStart(4, "0")}`);
    const parts = body.map((b) => (typeof b === "number" ? Buffer.from([b]) : b));
    const content = Buffer.concat([head, ...parts, Buffer.from([0xff])]);
    const crc = Buffer.alloc(8);
    new Crc64().update(content).writeLE(crc, 0);
    return Buffer.concat([content, crc]);
}
const str = (s: string): Buffer => Buffer.concat([Buffer.from([s.length]), Buffer.from(s)]);
const len64 = (n: bigint): Buffer => {
    const b = Buffer.alloc(9);
    b[0] = 0x81;
    b.writeBigUInt64BE(n, 1);
    return b;
};
/** Module id of a 9-character module type name and encoding version (redis moduleTypeEncodeId). */
function moduleId(name: string, encver: number): bigint {
    const cs = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let id = 0n;
    for (const ch of name) id = (id << 6n) | BigInt(cs.indexOf(ch));
    return (id << 10n) | BigInt(encver);
}

test("CRC-64-Jones check value and chaining", () => {
    assert.equal(crc64(Buffer.from("123456789")), 0xe9c6d914c4b8d9can);
    assert.equal(crc64(Buffer.from("56789"), crc64(Buffer.from("1234"))), 0xe9c6d914c4b8d9can);
    // Slicing-by-8 and the byte loop agree at every length and alignment.
    const data = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 0xff));
    for (let n = 0; n < 40; n++) {
        let bytewise = 0n;
        for (let i = 0; i < n + 200; i++) bytewise = crc64(data.subarray(i + 3, i + 4), bytewise);
        assert.equal(crc64(data.subarray(3, n + 203)), bytewise);
    }
});

test("DUMP payloads: layout, CRC check, and corruption refused", () => {
    const p = dumpPayload(0, Buffer.from([5, ...Buffer.from("hello")]), 10);
    assert.equal(p.length, 1 + 6 + 2 + 8);
    assert.deepEqual([p[0], p.readUInt16LE(7)], [0, 10]);
    assert.deepEqual(parseDumpPayload(p).value, Buffer.from([5, ...Buffer.from("hello")]));
    p[3] ^= 1;
    assert.throws(() => parseDumpPayload(p), /DUMP payload: invalid RDB at byte 9: expected the CRC-64 of the payload/);
});

test("LZF: a back reference before the start of the output or a short input is refused", () => {
    assert.deepEqual(lzfDecompress(Buffer.from([2, 97, 98, 99, 0x20, 2]), 0, 6, 6), Buffer.from("abcabc"));
    assert.equal(lzfDecompress(Buffer.from([0x20, 9]), 0, 2, 3), null);
    assert.equal(lzfDecompress(Buffer.from([5, 97]), 0, 2, 6), null);
    assert.equal(lzfDecompress(Buffer.from([0, 97]), 0, 2, 5), null);
});

test("every truncation of a real RDB is refused with the source and the byte offset where data ran out", async () => {
    for (let cut = 0; cut < MEMORY.length; cut++) {
        await assert.rejects(readAll(MEMORY.subarray(0, cut), {}, 61), (e: Error) => {
            assert.ok(e instanceof RdbFormatError, `cut at ${cut}: ${e.message}`);
            assert.ok(e.offset <= cut, `cut at ${cut}: offset ${e.offset}`);
            assert.match(e.message, /^t\.rdb: invalid RDB at byte \d+: expected .+/);
            if (cut >= 9) assert.match(e.message, /truncated/, `cut at ${cut}: ${e.message}`);
            return true;
        });
    }
});

test("every single-byte corruption of a real RDB is refused (format error, unsupported content or CRC mismatch)", async () => {
    let crcCaught = 0;
    for (let i = 0; i < MEMORY.length; i++) {
        const bad = Buffer.from(MEMORY);
        bad[i] ^= 0x5a;
        await assert.rejects(readAll(bad, {}, 1024), (e: Error) => {
            assert.ok(e instanceof RdbFormatError || e instanceof RdbUnsupportedError, `byte ${i}: ${e.message}`);
            assert.match(e.message, /^t\.rdb: /);
            if (/CRC-64/.test(e.message)) crcCaught++;
            return true;
        });
    }
    // Most flips inside values keep the structure valid: only the file checksum finds them.
    assert.ok(crcCaught > MEMORY.length / 2, `CRC mismatches: ${crcCaught}`);
});

test("the checksum mismatch names the stored and the computed CRC and the offset of the trailer", async () => {
    const bad = Buffer.from(MEMORY);
    bad[500] ^= 1;
    await assert.rejects(readAll(bad), (e: Error) => {
        assert.ok(e instanceof RdbFormatError);
        assert.equal(e.offset, MEMORY.length - 8);
        assert.match(e.message, /expected CRC-64 [0-9a-f]{16} stored at the end of the file \(the content checksums to [0-9a-f]{16}: the file is corrupt\)/);
        return true;
    });
});

test("signature, version, unknown type, trailing data", async () => {
    await assert.rejects(readAll(Buffer.from("NOTANRDBFILE")), /t\.rdb: invalid RDB at byte 0: expected the RDB signature REDIS<4-digit version> \(found "NOTANRDBF"\)/);
    await assert.rejects(readAll(rdbFile(13)), (e: Error) => e instanceof RdbUnsupportedError && /RDB version 13 is newer than this reader supports \(at most 11/.test(e.message));
    await assert.rejects(readAll(rdbFile(10), { maxRdbVersion: 9 }), /t\.rdb: RDB version 10 \(Redis 7\.0\) is newer than this reader supports \(at most 9 \(Redis 5\.0-6\.2\)\) \(at byte 5\)$/);
    await assert.rejects(readAll(Buffer.from("VALKEY080\xfa", "latin1")), /t\.rdb: RDB version 80 \(signature VALKEY080, Valkey 9 or newer\) is newer than this reader supports/);
    await assert.rejects(readAll(rdbFile(12, 24, str("h")), { maxRdbVersion: 12 }), /t\.rdb: a hash with field expirations \(RDB type 24, Redis 7\.4\+\) cannot be read by this reader \(at byte 9\)/);
    await assert.rejects(readAll(rdbFile(10, 30, str("k"))), /t\.rdb: invalid RDB at byte 9: expected a known RDB value type or opcode \(found 30\)/);
    await assert.rejects(readAll(Buffer.concat([rdbFile(10), Buffer.from("*1\r\n")])), /expected the end of the file after the RDB checksum/);
});

test("databases, RESIZEDB hints, old EXPIRETIME, IDLE, FREQ, SLOT_INFO", async () => {
    const f = rdbFile(10, 254, 0, 251, 2, 1, 253, Buffer.from([0x10, 0, 0, 0]), 0, str("a"), str("1"), 248, 7, 0, str("b"), str("2"), 249, 3, 244, 5, 1, 0, 254, 3, 0, str("c"), str("3"));
    const rs = await readAll(f, {}, 3);
    assert.deepEqual(
        rs.map((r) => (r.kind === "key" ? [r.db, r.key.toString(), r.expireAtMs, r.idleSeconds, r.lfuFreq] : r.kind === "db" ? ["db", r.index, r.keysHint] : r.kind)),
        ["header", ["db", 0, 2], [0, "a", 16000, undefined, undefined], [0, "b", null, 7, undefined], ["db", 3, undefined], [3, "c", null, undefined, 3], "end"],
    );
});

test("module values and module AUX data are refused naming the module; AUX can be skipped", async () => {
    const id = moduleId("mymodtype", 3);
    await assert.rejects(readAll(rdbFile(10, 7, str("mkey"), len64(id), 2, 1, 0)), (e: Error) => {
        assert.ok(e instanceof RdbUnsupportedError);
        assert.match(e.message, /^t\.rdb: a value of module type 'mymodtype' \(encoding version 3, module id \d+\) cannot be restored/);
        assert.match(e.message, /at byte 9\)$/);
        return true;
    });
    const aux = rdbFile(10, 247, len64(id), 2, 2, 2, 40, 5, str("x"), 4, Buffer.alloc(8), 3, Buffer.alloc(4), 0, 0, str("k"), str("v"));
    await assert.rejects(readAll(aux), /t\.rdb: the RDB file holds AUX data of module 'mymodtype'; Redis refuses to load it without the module/);
    const rs = await readAll(aux, { moduleAux: "skip" });
    assert.deepEqual(
        rs.map((r) => (r.kind === "module-aux" ? [r.kind, r.module, r.when] : r.kind === "key" ? r.key.toString() : r.kind)),
        ["header", ["module-aux", "mymodtype", 2], "k", "end"],
    );
});

test("a value that is cut mid-way while streamed element by element fails with the offset, not a short value", async () => {
    const big = Buffer.concat([Buffer.from([0x40 | (300 >> 8), 300 & 0xff]), ...Array.from({ length: 300 }, (_, i) => str(`member-${i}`))]);
    const f = rdbFile(10, 2, str("s"), big);
    const out: Buffer[] = [];
    await assert.rejects(
        (async () => {
            for await (const r of readRdb(chunks(f.subarray(0, 1500), 64), { source: "t.rdb", maxValueBytes: 256, batch: 10 })) {
                if (r.kind === "key") for await (const c of r.elements!()) if (c.type === "set") out.push(...c.members);
            }
        })(),
        (e: Error) => e instanceof RdbFormatError && /^t\.rdb: invalid RDB at byte \d+: expected an element \(the input ends there: truncated\)/.test(e.message),
    );
    assert.ok(out.length > 0 && out.length < 300);
});

test("a string far above maxValueBytes arrives in pieces no larger than the limit, and the file still checks out", async () => {
    const value = Buffer.alloc(8 << 20);
    for (let i = 0; i < value.length; i += 4) value.writeUInt32LE((i * 2654435761) >>> 0, i);
    const hdr = Buffer.alloc(5);
    hdr[0] = 0x80;
    hdr.writeUInt32BE(value.length, 1);
    const f = rdbFile(10, 0, str("big"), hdr, value, 0, str("after"), str("x"));
    const pieces: Buffer[] = [];
    const seen: string[] = [];
    for await (const r of readRdb(chunks(f, 64 * 1024), { maxValueBytes: 256 * 1024 })) {
        if (r.kind === "key") seen.push(r.key.toString());
        if (r.kind === "key" && r.elements) for await (const c of r.elements()) if (c.type === "string") pieces.push(c.value);
        if (r.kind === "end") assert.equal(r.checksumOk, true);
    }
    assert.deepEqual(seen, ["big", "after"]);
    assert.equal(pieces.length, 32);
    assert.ok(pieces.every((p) => p.length <= 256 * 1024));
    assert.ok(Buffer.concat(pieces).equals(value));
});

test("decodeValue names the source and offset; elements() can be iterated once", async () => {
    const { decodeValueAll } = await import("../../scripts/rdb");
    await assert.rejects(decodeValueAll(99, Buffer.from([1]), { source: "key k" }), /^RdbFormatError: key k: invalid RDB at byte 0: expected a value of a known RDB type \(found type 99\)/);
    await assert.rejects(decodeValueAll(2, Buffer.from([3, 1, 0x61]), { source: "key s" }), /key s: invalid RDB at byte 3: expected an element \(the input ends there: truncated\)/);
    await assert.rejects(decodeValueAll(0, Buffer.from([1, 0x61, 0x62]), { source: "key x" }), /key x: invalid RDB at byte 2: expected the end of the STRING value \(1 bytes left over\)/);
    const f = rdbFile(10, 2, str("s"), Buffer.from([0x40 | 1, 44]), ...Array.from({ length: 300 }, (_, i) => str(`m${i}`)));
    for await (const r of readRdb(chunks(f, 100), { maxValueBytes: 128 })) {
        if (r.kind !== "key") continue;
        r.elements!();
        assert.throws(() => r.elements!(), /elements\(\) of key "s" can be iterated only once/);
    }
});

test("a consumer that stops early, or an error, closes the input", async () => {
    let closed = 0;
    const input = (buf: Buffer): AsyncIterable<Buffer> => ({
        [Symbol.asyncIterator]() {
            let i = 0;
            return {
                next: async () => (i < buf.length ? { done: false, value: buf.subarray(i, (i += 100)) } : { done: true, value: undefined }),
                return: async () => {
                    closed++;
                    return { done: true, value: undefined };
                },
            };
        },
    });
    for await (const r of readRdb(input(MEMORY))) if (r.kind === "key") break;
    assert.equal(closed, 1);
    const bad = Buffer.from(MEMORY);
    bad[88] = 30; // the first key's type byte
    await assert.rejects(async () => {
        for await (const r of readRdb(input(bad))) void r;
    }, /invalid RDB at byte 88: expected a known RDB value type or opcode \(found 30\)/);
    assert.equal(closed, 2);
});
