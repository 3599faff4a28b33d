/**
 * CRC-64-Jones exactly as Redis computes it (src/crc64.c): polynomial 0xad93d23594c935a9,
 * reflected in and out, initial value 0, no final xor; check value of "123456789" is
 * 0xe9c6d914c4b8d9ca. Redis uses it for DUMP payloads, FUNCTION DUMP and the RDB trailer.
 *
 * Slicing-by-8 over two 32-bit halves: BigInt arithmetic per byte would cost ~100x, and the
 * restore checks the CRC of every byte of every backup it reads.
 */

// Reflected form of 0xad93d23594c935a9, split in halves.
const POLY_HI = 0x95ac9329;
const POLY_LO = 0xac4bc9b5;

const T_LO: Uint32Array[] = [];
const T_HI: Uint32Array[] = [];
for (let k = 0; k < 8; k++) {
    T_LO.push(new Uint32Array(256));
    T_HI.push(new Uint32Array(256));
}
for (let i = 0; i < 256; i++) {
    let lo = i;
    let hi = 0;
    for (let b = 0; b < 8; b++) {
        const carry = lo & 1;
        lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
        hi = hi >>> 1;
        if (carry) {
            lo = (lo ^ POLY_LO) >>> 0;
            hi = (hi ^ POLY_HI) >>> 0;
        }
    }
    T_LO[0][i] = lo;
    T_HI[0][i] = hi;
}
for (let i = 0; i < 256; i++) {
    let lo = T_LO[0][i];
    let hi = T_HI[0][i];
    for (let k = 1; k < 8; k++) {
        const idx = lo & 0xff;
        lo = (((lo >>> 8) | (hi << 24)) ^ T_LO[0][idx]) >>> 0;
        hi = ((hi >>> 8) ^ T_HI[0][idx]) >>> 0;
        T_LO[k][i] = lo;
        T_HI[k][i] = hi;
    }
}
const [L0, L1, L2, L3, L4, L5, L6, L7] = T_LO;
const [H0, H1, H2, H3, H4, H5, H6, H7] = T_HI;

/** Running CRC-64 state as two unsigned 32-bit halves (no allocation per update). */
export class Crc64 {
    lo = 0;
    hi = 0;

    constructor(seed: bigint = 0n) {
        this.lo = Number(seed & 0xffffffffn);
        this.hi = Number((seed >> 32n) & 0xffffffffn);
    }

    update(buf: Uint8Array, start = 0, end = buf.length): this {
        crcRange(this.lo, this.hi, buf, start, end);
        const lo = outLo;
        const hi = outHi;
        this.lo = lo >>> 0;
        this.hi = hi >>> 0;
        return this;
    }

    /** Whether the state equals the 8 little-endian bytes at buf[offset]. */
    equalsLE(buf: Uint8Array, offset: number): boolean {
        const lo = (buf[offset] | (buf[offset + 1] << 8) | (buf[offset + 2] << 16) | (buf[offset + 3] << 24)) >>> 0;
        const hi = (buf[offset + 4] | (buf[offset + 5] << 8) | (buf[offset + 6] << 16) | (buf[offset + 7] << 24)) >>> 0;
        return lo === this.lo && hi === this.hi;
    }

    writeLE(buf: Uint8Array, offset: number): void {
        buf[offset] = this.lo & 0xff;
        buf[offset + 1] = (this.lo >>> 8) & 0xff;
        buf[offset + 2] = (this.lo >>> 16) & 0xff;
        buf[offset + 3] = this.lo >>> 24;
        buf[offset + 4] = this.hi & 0xff;
        buf[offset + 5] = (this.hi >>> 8) & 0xff;
        buf[offset + 6] = (this.hi >>> 16) & 0xff;
        buf[offset + 7] = this.hi >>> 24;
    }

    value(): bigint {
        return (BigInt(this.hi) << 32n) | BigInt(this.lo);
    }
}

/** The running CRC's two halves after crcRange (module scratch: no tuple allocated per key). */
let outLo = 0;
let outHi = 0;

/** Slicing-by-8 over buf[start, end) from the state (lo, hi); the result in outLo/outHi. */
function crcRange(lo: number, hi: number, buf: Uint8Array, start: number, end: number): void {
    let i = start;
    const end8 = end - ((end - start) & 7);
    while (i < end8) {
        const a = lo ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24));
        const b = hi ^ (buf[i + 4] | (buf[i + 5] << 8) | (buf[i + 6] << 16) | (buf[i + 7] << 24));
        lo =
            L7[a & 0xff] ^ L6[(a >>> 8) & 0xff] ^ L5[(a >>> 16) & 0xff] ^ L4[a >>> 24] ^
            L3[b & 0xff] ^ L2[(b >>> 8) & 0xff] ^ L1[(b >>> 16) & 0xff] ^ L0[b >>> 24];
        hi =
            H7[a & 0xff] ^ H6[(a >>> 8) & 0xff] ^ H5[(a >>> 16) & 0xff] ^ H4[a >>> 24] ^
            H3[b & 0xff] ^ H2[(b >>> 8) & 0xff] ^ H1[(b >>> 16) & 0xff] ^ H0[b >>> 24];
        i += 8;
    }
    while (i < end) {
        const idx = (lo ^ buf[i++]) & 0xff;
        lo = ((lo >>> 8) | (hi << 24)) ^ L0[idx];
        hi = (hi >>> 8) ^ H0[idx];
    }
    outLo = lo;
    outHi = hi;
}

/**
 * Writes the CRC-64 of buf[start, end) as 8 little-endian bytes at buf[at]: the DUMP payload
 * trailer, built in place by the restore without a Crc64 object per key.
 */
export function writeCrc64LE(buf: Uint8Array, start: number, end: number, at: number): void {
    crcRange(0, 0, buf, start, end);
    const lo = outLo;
    const hi = outHi;
    buf[at] = lo & 0xff;
    buf[at + 1] = (lo >>> 8) & 0xff;
    buf[at + 2] = (lo >>> 16) & 0xff;
    buf[at + 3] = lo >>> 24;
    buf[at + 4] = hi & 0xff;
    buf[at + 5] = (hi >>> 8) & 0xff;
    buf[at + 6] = (hi >>> 16) & 0xff;
    buf[at + 7] = hi >>> 24;
}

/** CRC-64-Jones of `buf`, continuing from `seed` (crc64(a+b) === crc64(b, crc64(a))). */
export function crc64(buf: Uint8Array, seed: bigint = 0n): bigint {
    return new Crc64(seed).update(buf).value();
}
