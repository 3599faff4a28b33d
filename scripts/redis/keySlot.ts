/**
 * The hash slot of a key, as Redis computes it (src/cluster.c keyHashSlot): CRC16-XMODEM
 * of the key, or of the part between the first `{` and the next `}` when that part is
 * not empty, modulo 16384. On bytes: keys restored from an RDB need not be UTF-8
 * (npm's cluster-key-slot takes strings only).
 */
const TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    TABLE[i] = c;
}

function crc16(buf: Buffer, start: number, end: number): number {
    let crc = 0;
    for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ buf[i]) & 0xff];
    return crc;
}

export function keySlot(key: Buffer): number {
    const open = key.indexOf(0x7b); // {
    if (open !== -1) {
        const close = key.indexOf(0x7d, open + 1); // }
        if (close > open + 1) return crc16(key, open + 1, close) & 16383;
    }
    return crc16(key, 0, key.length) & 16383;
}
