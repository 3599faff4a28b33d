/**
 * LZF decompression as Redis' src/lzf_d.c (liblzf 3.6) with its input checks: Redis LZF-compresses
 * strings longer than 20 bytes in RDB files and DUMP payloads when `rdbcompression yes`.
 * Returns null on malformed input; the caller names source and offset.
 */
export function lzfDecompress(input: Uint8Array, inStart: number, inEnd: number, outLen: number): Buffer | null {
    const out = Buffer.allocUnsafe(outLen);
    let ip = inStart;
    let op = 0;
    while (ip < inEnd) {
        let ctrl = input[ip++];
        if (ctrl < 32) {
            ctrl++;
            if (op + ctrl > outLen || ip + ctrl > inEnd) return null;
            if (ctrl > 16) {
                out.set(input.subarray(ip, ip + ctrl), op);
                op += ctrl;
                ip += ctrl;
            } else {
                while (ctrl--) out[op++] = input[ip++];
            }
        } else {
            let len = ctrl >> 5;
            let ref = op - ((ctrl & 0x1f) << 8) - 1;
            if (ip >= inEnd) return null;
            if (len === 7) {
                len += input[ip++];
                if (ip >= inEnd) return null;
            }
            ref -= input[ip++];
            len += 2;
            if (op + len > outLen || ref < 0) return null;
            // Byte by byte: the reference may overlap the bytes being written (run-length case).
            while (len--) out[op++] = out[ref++];
        }
    }
    return op === outLen ? out : null;
}
