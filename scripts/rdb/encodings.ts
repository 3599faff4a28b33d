/**
 * Decoders for the compact blobs Redis stores as one RDB string: ziplist (src/ziplist.c),
 * listpack (src/listpack.c), intset (src/intset.c) and zipmap (src/zipmap.c).
 * Elements come back as Buffers (integers as their decimal text, as Redis replies them).
 * Every read is bounds-checked: a bad blob throws BlobError with the offset inside the blob.
 */
export class BlobError extends Error {
    constructor(
        readonly at: number,
        readonly expected: string,
    ) {
        super(`expected ${expected} at blob offset ${at}`);
    }
}

function need(blob: Buffer, at: number, n: number, what: string): void {
    if (at + n > blob.length) throw new BlobError(at, what);
}

const intBuf = (n: number | bigint): Buffer => Buffer.from(String(n));

/** Elements of a ziplist (RDB 9 and older list/hash/zset encodings, quicklist v1 nodes). */
export function ziplistEntries(blob: Buffer): Buffer[] {
    need(blob, 0, 11, "a ziplist header (11 bytes)");
    const total = blob.readUInt32LE(0);
    if (total !== blob.length) throw new BlobError(0, `ziplist size ${blob.length} in its header (found ${total})`);
    const count = blob.readUInt16LE(8);
    const out: Buffer[] = [];
    let p = 10;
    for (;;) {
        need(blob, p, 1, "a ziplist entry or the end marker");
        if (blob[p] === 0xff) break;
        // prevlen: 1 byte, or 0xFE + 4 bytes
        p += blob[p] === 0xfe ? 5 : 1;
        need(blob, p, 1, "a ziplist entry encoding");
        const enc = blob[p];
        const top = enc >> 6;
        if (top === 0) {
            const len = enc & 0x3f;
            need(blob, p + 1, len, `a ziplist string of ${len} bytes`);
            out.push(blob.subarray(p + 1, p + 1 + len));
            p += 1 + len;
        } else if (top === 1) {
            need(blob, p, 2, "a ziplist 14-bit length");
            const len = ((enc & 0x3f) << 8) | blob[p + 1];
            need(blob, p + 2, len, `a ziplist string of ${len} bytes`);
            out.push(blob.subarray(p + 2, p + 2 + len));
            p += 2 + len;
        } else if (enc === 0x80) {
            need(blob, p, 5, "a ziplist 32-bit length");
            const len = blob.readUInt32BE(p + 1);
            need(blob, p + 5, len, `a ziplist string of ${len} bytes`);
            out.push(blob.subarray(p + 5, p + 5 + len));
            p += 5 + len;
        } else if (enc === 0xc0) {
            need(blob, p + 1, 2, "a ziplist int16");
            out.push(intBuf(blob.readInt16LE(p + 1)));
            p += 3;
        } else if (enc === 0xd0) {
            need(blob, p + 1, 4, "a ziplist int32");
            out.push(intBuf(blob.readInt32LE(p + 1)));
            p += 5;
        } else if (enc === 0xe0) {
            need(blob, p + 1, 8, "a ziplist int64");
            out.push(intBuf(blob.readBigInt64LE(p + 1)));
            p += 9;
        } else if (enc === 0xf0) {
            need(blob, p + 1, 3, "a ziplist int24");
            out.push(intBuf(blob.readIntLE(p + 1, 3)));
            p += 4;
        } else if (enc === 0xfe) {
            need(blob, p + 1, 1, "a ziplist int8");
            out.push(intBuf(blob.readInt8(p + 1)));
            p += 2;
        } else if (enc >= 0xf1 && enc <= 0xfd) {
            out.push(intBuf((enc & 0x0f) - 1));
            p += 1;
        } else {
            throw new BlobError(p, `a ziplist entry encoding (found 0x${enc.toString(16)})`);
        }
    }
    if (p !== blob.length - 1) throw new BlobError(p, `the ziplist end at byte ${blob.length - 1}`);
    // 65535 means "count too large to store": only then is the header count not exact.
    if (count !== 0xffff && count !== out.length) throw new BlobError(8, `ziplist count ${out.length} (header says ${count})`);
    return out;
}

/** Elements of a listpack (RDB 10+ hash/zset/list nodes, RDB 11 sets, stream nodes). */
export function listpackEntries(blob: Buffer): Buffer[] {
    need(blob, 0, 7, "a listpack header (7 bytes)");
    const total = blob.readUInt32LE(0);
    if (total !== blob.length) throw new BlobError(0, `listpack size ${blob.length} in its header (found ${total})`);
    const count = blob.readUInt16LE(4);
    const out: Buffer[] = [];
    let p = 6;
    for (;;) {
        need(blob, p, 1, "a listpack entry or the end marker");
        const enc = blob[p];
        if (enc === 0xff) break;
        let size: number; // encoding + data, which the backlen repeats
        if (enc < 0x80) {
            out.push(intBuf(enc));
            size = 1;
        } else if ((enc & 0xc0) === 0x80) {
            const len = enc & 0x3f;
            need(blob, p + 1, len, `a listpack string of ${len} bytes`);
            out.push(blob.subarray(p + 1, p + 1 + len));
            size = 1 + len;
        } else if ((enc & 0xe0) === 0xc0) {
            need(blob, p, 2, "a listpack 13-bit integer");
            const u = ((enc & 0x1f) << 8) | blob[p + 1];
            out.push(intBuf(u >= 4096 ? u - 8192 : u));
            size = 2;
        } else if ((enc & 0xf0) === 0xe0) {
            need(blob, p, 2, "a listpack 12-bit length");
            const len = ((enc & 0x0f) << 8) | blob[p + 1];
            need(blob, p + 2, len, `a listpack string of ${len} bytes`);
            out.push(blob.subarray(p + 2, p + 2 + len));
            size = 2 + len;
        } else if (enc === 0xf0) {
            need(blob, p, 5, "a listpack 32-bit length");
            const len = blob.readUInt32LE(p + 1);
            need(blob, p + 5, len, `a listpack string of ${len} bytes`);
            out.push(blob.subarray(p + 5, p + 5 + len));
            size = 5 + len;
        } else if (enc === 0xf1) {
            need(blob, p + 1, 2, "a listpack int16");
            out.push(intBuf(blob.readInt16LE(p + 1)));
            size = 3;
        } else if (enc === 0xf2) {
            need(blob, p + 1, 3, "a listpack int24");
            out.push(intBuf(blob.readIntLE(p + 1, 3)));
            size = 4;
        } else if (enc === 0xf3) {
            need(blob, p + 1, 4, "a listpack int32");
            out.push(intBuf(blob.readInt32LE(p + 1)));
            size = 5;
        } else if (enc === 0xf4) {
            need(blob, p + 1, 8, "a listpack int64");
            out.push(intBuf(blob.readBigInt64LE(p + 1)));
            size = 9;
        } else {
            throw new BlobError(p, `a listpack entry encoding (found 0x${enc.toString(16)})`);
        }
        const backlen = size < 128 ? 1 : size < 16384 ? 2 : size < 2097152 ? 3 : size < 268435456 ? 4 : 5;
        need(blob, p + size, backlen, "a listpack entry back-length");
        p += size + backlen;
    }
    if (p !== blob.length - 1) throw new BlobError(p, `the listpack end at byte ${blob.length - 1}`);
    if (count !== 0xffff && count !== out.length) throw new BlobError(4, `listpack count ${out.length} (header says ${count})`);
    return out;
}

/** Members of an intset (small all-integer sets). */
export function intsetMembers(blob: Buffer): Buffer[] {
    need(blob, 0, 8, "an intset header (8 bytes)");
    const width = blob.readUInt32LE(0);
    if (width !== 2 && width !== 4 && width !== 8) throw new BlobError(0, `an intset encoding of 2, 4 or 8 (found ${width})`);
    const count = blob.readUInt32LE(4);
    if (8 + count * width !== blob.length) throw new BlobError(4, `an intset of ${count} x ${width} bytes in ${blob.length - 8} bytes`);
    const out: Buffer[] = new Array(count);
    for (let i = 0, p = 8; i < count; i++, p += width) {
        out[i] = intBuf(width === 2 ? blob.readInt16LE(p) : width === 4 ? blob.readInt32LE(p) : blob.readBigInt64LE(p));
    }
    return out;
}

/** Field/value pairs of a zipmap (hashes in RDB files from Redis before 2.6), flattened. */
export function zipmapEntries(blob: Buffer): Buffer[] {
    need(blob, 0, 2, "a zipmap header");
    const out: Buffer[] = [];
    let p = 1;
    const len = (): number => {
        need(blob, p, 1, "a zipmap length");
        if (blob[p] < 254) return blob[p++];
        if (blob[p] === 254) {
            need(blob, p, 5, "a zipmap 32-bit length");
            const l = blob.readUInt32LE(p + 1);
            p += 5;
            return l;
        }
        throw new BlobError(p, "a zipmap length (found the end marker)");
    };
    for (;;) {
        need(blob, p, 1, "a zipmap entry or the end marker");
        if (blob[p] === 255) break;
        const klen = len();
        need(blob, p, klen, `a zipmap field of ${klen} bytes`);
        out.push(blob.subarray(p, p + klen));
        p += klen;
        const vlen = len();
        need(blob, p, 1, "a zipmap free-space byte");
        const free = blob[p++];
        need(blob, p, vlen + free, `a zipmap value of ${vlen} bytes`);
        out.push(blob.subarray(p, p + vlen));
        p += vlen + free;
    }
    if (p !== blob.length - 1) throw new BlobError(p, `the zipmap end at byte ${blob.length - 1}`);
    // As zipmapValidateIntegrity: the header count is exact below 254 (254 means "count it").
    const count = out.length / 2;
    if (count === 0 || (blob[0] !== 254 && blob[0] !== count)) throw new BlobError(0, `zipmap count ${count} (header says ${blob[0]})`);
    return out;
}
