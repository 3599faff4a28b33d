/**
 * RDB library: reads what Redis 6.2/7.0/7.2 and Valkey 8 write (RDB 1-11), builds DUMP payloads
 * and decodes values element by element. No network I/O: it consumes bytes.
 */
export { crc64, Crc64 } from "./crc64";
export { dumpPayload, writeDumpPayload, parseDumpPayload, retargetPayload } from "./dump";
export { readRdb, readRdbBatches, DEFAULT_MAX_VALUE_BYTES } from "./reader";
export { decodeValue, decodeValueAll } from "./decode";
export { lzfDecompress } from "./lzf";
export { RdbFormatError, RdbUnsupportedError } from "./errors";
export { RDB_TYPE, RDB_OPCODE, MAX_RDB_VERSION, RDB_TYPE_MIN_VERSION, valueKind, rdbTypeName, moduleTypeName } from "./constants";
export type { ValueKind } from "./constants";
export type * from "./types";
export { rebuildCommands, formatScore } from "./commands";
export type { Command, RebuildOptions } from "./commands";
