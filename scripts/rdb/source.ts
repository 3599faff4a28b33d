/**
 * The byte source under the reader: the current buffer (a view of the stream's chunks), the file
 * offset of its first byte and the running CRC-64 of every byte already consumed.
 *
 * Two ways to read it:
 * - synchronous (`u8`, `len`, `skipStr`, `str` ...) over what is buffered, throwing NEED_MORE when
 *   the data runs out; the caller rewinds to the start of the unit, `fill`s and retries. This is
 *   the hot path: no promise per field, and values come out as views (subarray) of the chunk.
 * - asynchronous (`ensure`) for element-by-element decoding of values too large to buffer.
 */
import { Crc64 } from "./crc64";
import { RdbFormatError } from "./errors";
import { lzfDecompress } from "./lzf";

/** Thrown (never escapes the library) when a synchronous read runs past the buffered data. */
export const NEED_MORE = { needMore: true } as const;

const EMPTY = Buffer.alloc(0);

function syncToAsync(input: Iterable<Uint8Array>): AsyncIterator<Uint8Array> {
    const it = input[Symbol.iterator]();
    return { next: async () => it.next() };
}

export class Source {
    buf: Buffer = EMPTY;
    pos = 0;
    /** File offset of buf[0]. */
    base = 0;
    /** Where the last synchronous read ran short, and what it expected there. */
    shortAt = 0;
    shortWhat = "";
    ended: boolean;
    crc: Crc64 | null;
    private crcFrom = 0;
    private readonly it: AsyncIterator<Uint8Array | string> | null;

    constructor(
        readonly name: string,
        input: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array> | Buffer,
        opts: { checksum: boolean; base?: number },
    ) {
        if (Buffer.isBuffer(input)) {
            this.buf = input;
            this.it = null;
            this.ended = true;
        } else {
            this.it = Symbol.asyncIterator in input ? input[Symbol.asyncIterator]() : syncToAsync(input as Iterable<Uint8Array>);
            this.ended = false;
        }
        this.base = opts.base ?? 0;
        this.crc = opts.checksum ? new Crc64() : null;
    }

    get offset(): number {
        return this.base + this.pos;
    }

    avail(): number {
        return this.buf.length - this.pos;
    }

    /** Reads until at least `want` bytes are buffered past `pos`; false when the input ended first. */
    async fill(want: number): Promise<boolean> {
        let have = this.buf.length - this.pos;
        if (have >= want) return true;
        if (this.ended) return false;
        const parts: Buffer[] = [];
        while (have < want) {
            const r = await this.it!.next();
            if (r.done) {
                this.ended = true;
                break;
            }
            const v = r.value;
            const chunk = typeof v === "string" ? Buffer.from(v, "latin1") : Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
            if (chunk.length === 0) continue;
            parts.push(chunk);
            have += chunk.length;
        }
        if (parts.length === 0) return false;
        // Bytes before pos are never read again: fold them into the CRC and let go of them.
        if (this.crc && this.crcFrom < this.pos) this.crc.update(this.buf, this.crcFrom, this.pos);
        this.base += this.pos;
        const rest = this.pos < this.buf.length ? this.buf.subarray(this.pos) : EMPTY;
        this.buf = rest.length === 0 && parts.length === 1 ? parts[0] : Buffer.concat(rest.length ? [rest, ...parts] : parts);
        this.pos = 0;
        this.crcFrom = 0;
        return have >= want;
    }

    /** Lets go of the input (closes a file or network stream a consumer stopped reading early). */
    async close(): Promise<void> {
        if (!this.ended) {
            this.ended = true;
            await this.it?.return?.();
        }
    }

    /** CRC of everything up to `pos`; further bytes are not checksummed (the trailer itself). */
    finishCrc(): Crc64 | null {
        if (!this.crc) return null;
        if (this.crcFrom < this.pos) this.crc.update(this.buf, this.crcFrom, this.pos);
        this.crcFrom = this.pos;
        const c = this.crc;
        this.crc = null;
        return c;
    }

    error(expected: string, detail?: string, at = this.offset): RdbFormatError {
        return new RdbFormatError(this.name, at, expected, detail);
    }

    /** The truncation error for the last NEED_MORE, once the input has ended. */
    truncated(): RdbFormatError {
        return new RdbFormatError(this.name, this.base + this.shortAt, this.shortWhat, "the input ends there: truncated");
    }

    // ---- synchronous reads (throw NEED_MORE) ----

    short(what: string): never {
        this.shortAt = this.pos;
        this.shortWhat = what;
        throw NEED_MORE;
    }

    u8(what: string): number {
        if (this.pos >= this.buf.length) this.short(what);
        return this.buf[this.pos++];
    }

    skip(n: number, what: string): void {
        if (this.pos + n > this.buf.length) this.short(what);
        this.pos += n;
    }

    bytes(n: number, what: string): Buffer {
        if (this.pos + n > this.buf.length) this.short(what);
        const b = this.buf.subarray(this.pos, this.pos + n);
        this.pos += n;
        return b;
    }

    /** An RDB length (rdbLoadLen), as a number; -1 - enc for the special string encodings (11xxxxxx). */
    lenOrEnc(what: string): number {
        const buf = this.buf;
        const p = this.pos;
        if (p >= buf.length) this.short(what);
        const b = buf[p];
        const t = b >> 6;
        if (t === 0) {
            this.pos = p + 1;
            return b & 0x3f;
        }
        if (t === 1) {
            if (p + 2 > buf.length) this.short(what);
            this.pos = p + 2;
            return ((b & 0x3f) << 8) | buf[p + 1];
        }
        if (t === 3) {
            this.pos = p + 1;
            return -1 - (b & 0x3f);
        }
        if (b === 0x80) {
            if (p + 5 > buf.length) this.short(what);
            this.pos = p + 5;
            return buf.readUInt32BE(p + 1);
        }
        if (b === 0x81) {
            if (p + 9 > buf.length) this.short(what);
            const hi = buf.readUInt32BE(p + 1);
            if (hi >= 0x200000) throw this.error(what, `a 64-bit length of ${buf.readBigUInt64BE(p + 1)} is beyond what this reader handles`, this.base + p);
            this.pos = p + 9;
            return hi * 0x100000000 + buf.readUInt32BE(p + 5);
        }
        throw this.error(what, `found length byte 0x${b.toString(16)}`, this.base + p);
    }

    len(what: string): number {
        const at = this.pos;
        const n = this.lenOrEnc(what);
        if (n < 0) throw this.error(what, "found a string encoding where a length belongs", this.base + at);
        return n;
    }

    /** A length that may need all 64 bits (stream IDs), as a bigint. */
    lenBig(what: string): bigint {
        const buf = this.buf;
        const p = this.pos;
        if (p < buf.length && buf[p] === 0x81) {
            if (p + 9 > buf.length) this.short(what);
            this.pos = p + 9;
            return buf.readBigUInt64BE(p + 1);
        }
        return BigInt(this.len(what));
    }

    skipStr(what: string): void {
        const at = this.pos;
        const n = this.lenOrEnc(what);
        if (n >= 0) return this.skip(n, what);
        const enc = -1 - n;
        if (enc === 0) return this.skip(1, what);
        if (enc === 1) return this.skip(2, what);
        if (enc === 2) return this.skip(4, what);
        if (enc === 3) {
            const clen = this.len(`${what} (LZF compressed length)`);
            this.len(`${what} (LZF original length)`);
            return this.skip(clen, `${what} (LZF data)`);
        }
        throw this.error(what, `unknown string encoding ${enc}`, this.base + at);
    }

    /** A string value (rdbGenericLoadStringObject): a view of the buffer, or a new Buffer when int/LZF encoded. */
    str(what: string): Buffer {
        const at = this.pos;
        const n = this.lenOrEnc(what);
        if (n >= 0) return this.bytes(n, what);
        const enc = -1 - n;
        const buf = this.buf;
        if (enc === 0) {
            this.skip(1, what);
            return Buffer.from(String(buf.readInt8(this.pos - 1)));
        }
        if (enc === 1) {
            this.skip(2, what);
            return Buffer.from(String(buf.readInt16LE(this.pos - 2)));
        }
        if (enc === 2) {
            this.skip(4, what);
            return Buffer.from(String(buf.readInt32LE(this.pos - 4)));
        }
        if (enc === 3) {
            const clen = this.len(`${what} (LZF compressed length)`);
            const ulen = this.len(`${what} (LZF original length)`);
            const dataAt = this.pos;
            this.skip(clen, `${what} (LZF data)`);
            const out = lzfDecompress(this.buf, dataAt, dataAt + clen, ulen);
            if (!out) throw this.error(`${what}: LZF data that decompresses to ${ulen} bytes`, "corrupt LZF data", this.base + dataAt);
            return out;
        }
        throw this.error(what, `unknown string encoding ${enc}`, this.base + at);
    }

    // ---- asynchronous: make n bytes available or fail with a truncation error ----

    async ensure(n: number, what: string): Promise<void> {
        if (this.buf.length - this.pos >= n) return;
        if (!(await this.fill(n))) {
            this.shortAt = this.pos;
            this.shortWhat = what;
            throw this.truncated();
        }
    }

    /**
     * Reads up to `max` small units synchronously while they are buffered (at least one, refilling
     * for it if needed), pushing them to `into`; returns how many. One await per buffer, not per element.
     */
    async units<T>(max: number, read: () => T, into: T[]): Promise<number> {
        let got = 0;
        while (got < max) {
            const start = this.pos;
            try {
                into.push(read());
                got++;
            } catch (e) {
                if (e !== NEED_MORE) throw e;
                this.pos = start;
                if (got > 0) return got;
                if (this.ended) throw this.truncated();
                const have = this.avail();
                await this.fill(have + Math.max(have, 4096));
            }
        }
        return got;
    }

    /**
     * Runs a synchronous read, refilling and retrying on NEED_MORE: for small units (one element,
     * one listpack) inside a value decoded element by element.
     */
    async unit<T>(read: () => T): Promise<T> {
        for (;;) {
            const start = this.pos;
            try {
                return read();
            } catch (e) {
                if (e !== NEED_MORE) throw e;
                this.pos = start;
                if (this.ended) throw this.truncated();
                const have = this.avail();
                await this.fill(have + Math.max(have, 4096));
            }
        }
    }
}
