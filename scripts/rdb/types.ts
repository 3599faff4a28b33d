/** Records and decoded values produced by the RDB reader (see /work/notes/rdb-api.md). */

export interface StreamEntry {
    /** "<ms>-<seq>" */
    id: string;
    /** field, value, field, value ... */
    fields: Buffer[];
}

export interface StreamPending {
    id: string;
    /** Last delivery, Unix ms. */
    deliveryTime: number;
    deliveryCount: number;
    /** Owner; null only in a corrupt file (Redis requires every PEL entry to have one). */
    consumer: Buffer | null;
}

export interface StreamConsumer {
    name: Buffer;
    /** Unix ms of the last interaction (seen-time). */
    seenTime: number;
    /** Unix ms of the last successful read/claim (RDB type STREAM_LISTPACKS_3 only, Redis 7.2+). */
    activeTime: number | null;
    /** IDs of the entries this consumer owns, in ID order. */
    pending: string[];
}

export interface StreamGroup {
    name: Buffer;
    /** The group's last delivered ID. */
    lastId: string;
    /** ENTRIESREAD (RDB 10+; null when absent or recorded as unknown). */
    entriesRead: number | null;
    pending: StreamPending[];
    consumers: StreamConsumer[];
}

export interface StreamMeta {
    /** Number of live entries. */
    length: number;
    lastId: string;
    /** RDB 10+ (STREAM_LISTPACKS_2/3); null in older files. */
    firstId: string | null;
    maxDeletedId: string | null;
    entriesAdded: number | null;
}

/**
 * A value decoded element by element. A value arrives as one or more chunks of its type, in
 * order; chunk boundaries carry no meaning. A stream's last chunk carries `meta` and `groups`.
 */
export type ValueChunk =
    | { type: "string"; value: Buffer }
    | { type: "list"; items: Buffer[] }
    | { type: "set"; members: Buffer[] }
    | { type: "zset"; entries: [Buffer, number][] }
    | { type: "hash"; fields: [Buffer, Buffer][] }
    | { type: "stream"; entries: StreamEntry[]; meta?: StreamMeta; groups?: StreamGroup[] };

export type RdbRecord =
    | { kind: "header"; rdbVersion: number; offset: number }
    | { kind: "aux"; name: string; value: string; offset: number }
    | { kind: "db"; index: number; keysHint?: number; expiresHint?: number; offset: number }
    /** A function library; `payload` is ready for FUNCTION RESTORE (FUNCTION DUMP format); `code` is its source. */
    | { kind: "function"; payload: Buffer; code: Buffer; offset: number }
    /** Module AUX data, reported only with `moduleAux: "skip"` (refused by default). */
    | { kind: "module-aux"; module: string; moduleId: bigint; when: number; offset: number }
    | KeyRecord
    /** checksumOk is null when the file was written with `rdbchecksum no`; emptyKeysSkipped counts empty collections dropped as Redis does. */
    | { kind: "end"; checksumOk: boolean | null; bytes: number; emptyKeysSkipped: number; offset: number };

export interface KeyRecord {
    kind: "key";
    db: number;
    key: Buffer;
    rdbType: number;
    /** RDB version of the file, for dumpPayload. */
    rdbVersion: number;
    /** Absolute expiry, Unix ms; null when the key has none. */
    expireAtMs: number | null;
    /** LRU idle seconds (maxmemory-policy *-lru), or undefined. */
    idleSeconds?: number;
    /** LFU counter (maxmemory-policy *-lfu), or undefined. */
    lfuFreq?: number;
    /** The serialized value (a DUMP body without its type byte and trailer) when it fits in maxValueBytes; else null. */
    value: Buffer | null;
    /**
     * Set when `value` is null: the value decoded element by element from the stream. Iterate it
     * before asking the reader for the next record (the reader skips what was not consumed);
     * it can be iterated once.
     */
    elements?: () => AsyncIterable<ValueChunk>;
    /** Size of the serialized value; when streamed (value null), a lower bound: what was buffered before the limit. */
    valueBytes: number;
    /** File offset of the record (its first opcode or type byte). */
    offset: number;
}

export interface ReadOptions {
    /** Values larger than this are not buffered but streamed through `elements()`. @default 64 MiB */
    maxValueBytes?: number;
    /** Names the input in errors (file path, s3:// URL). @default "RDB" */
    source?: string;
    /** Refuse files newer than this RDB version. @default 11 (Redis 7.2, Valkey 8) */
    maxRdbVersion?: number;
    /** Module AUX data: "refuse" (as Redis does without the module) or "skip" (reported as a record). @default "refuse" */
    moduleAux?: "refuse" | "skip";
    /** Elements per chunk when decoding element by element. @default 1000 */
    batch?: number;
}
