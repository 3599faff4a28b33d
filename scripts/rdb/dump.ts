/** DUMP payloads (redis src/cluster.c createDumpPayload / verifyDumpPayload). */
import { Crc64 } from "./crc64";
import { RdbFormatError } from "./errors";

/** A DUMP payload for RESTORE: <type byte><serialized value><RDB version, 2 bytes LE><CRC-64, 8 bytes LE>. */
export function dumpPayload(rdbType: number, value: Buffer, rdbVersion: number): Buffer {
    const n = value.length;
    const out = Buffer.allocUnsafe(n + 11);
    out[0] = rdbType;
    value.copy(out, 1);
    out[n + 1] = rdbVersion & 0xff;
    out[n + 2] = (rdbVersion >> 8) & 0xff;
    new Crc64().update(out, 0, n + 3).writeLE(out, n + 3);
    return out;
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
