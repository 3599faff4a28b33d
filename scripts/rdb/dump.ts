/** DUMP payloads (redis src/cluster.c createDumpPayload / verifyDumpPayload). */
import { Crc64, writeCrc64LE as writeCrc } from "./crc64";

// Bound once: a transpiled import is a getter call per use, and this runs per key.
const writeCrc64LE = writeCrc;
import { RdbFormatError } from "./errors";

/** A DUMP payload for RESTORE: <type byte><serialized value><RDB version, 2 bytes LE><CRC-64, 8 bytes LE>. */
export function dumpPayload(rdbType: number, value: Buffer, rdbVersion: number): Buffer {
    const out = Buffer.allocUnsafe(value.length + 11);
    writeDumpPayload(out, 0, rdbType, value, rdbVersion);
    return out;
}

/**
 * Writes the DUMP payload into out[at, at + value.length + 11): the RDB value bytes as read, framed
 * (type byte before; version and CRC-64 after), nothing re-encoded. Returns the end offset.
 */
export function writeDumpPayload(out: Buffer, at: number, rdbType: number, value: Buffer, rdbVersion: number): number {
    const n = value.length;
    out[at] = rdbType;
    if (n <= 64) for (let i = 0; i < n; i++) out[at + 1 + i] = value[i];
    else value.copy(out, at + 1);
    const v = at + 1 + n;
    out[v] = rdbVersion & 0xff;
    out[v + 1] = (rdbVersion >> 8) & 0xff;
    writeCrc64LE(out, at, v + 2, v + 2);
    return v + 10;
}

/** Splits a DUMP payload and checks its CRC-64 (a zero CRC is accepted, as Redis does with rdbchecksum off). */
export function parseDumpPayload(payload: Buffer, source = "DUMP payload"): { rdbType: number; value: Buffer; rdbVersion: number } {
    if (payload.length < 11) throw new RdbFormatError(source, payload.length, "at least 11 bytes (type, RDB version, CRC-64)", `found ${payload.length}`);
    const end = payload.length - 10;
    const crcOk = payload.subarray(end + 2).every((b) => b === 0) || new Crc64().update(payload, 0, end + 2).equalsLE(payload, end + 2);
    if (!crcOk) throw new RdbFormatError(source, end + 2, "the CRC-64 of the payload", "checksum mismatch");
    return { rdbType: payload[0], value: payload.subarray(1, end), rdbVersion: payload.readUInt16LE(end) };
}

/**
 * The same payload stamped with another RDB version (new CRC-64). A serialized value does not
 * depend on the RDB version, only its type does: a value whose type the target knows
 * (RDB_TYPE_MIN_VERSION[type] <= target version) can be restored into an older server this way,
 * e.g. a 7.0 (RDB 10) string or intset into Redis 6.2 (RDB 9). Works for FUNCTION DUMP payloads too.
 */
export function retargetPayload(payload: Buffer, rdbVersion: number): Buffer {
    const out = Buffer.from(payload);
    const v = out.length - 10;
    out.writeUInt16LE(rdbVersion, v);
    new Crc64().update(out, 0, v + 2).writeLE(out, v + 2);
    return out;
}
