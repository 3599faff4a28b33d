/** RDB type and opcode numbers (redis src/rdb.h; unchanged in Valkey 8). */
export const RDB_TYPE = {
    STRING: 0,
    LIST: 1,
    SET: 2,
    ZSET: 3,
    HASH: 4,
    ZSET_2: 5,
    MODULE_PRE_GA: 6,
    MODULE_2: 7,
    HASH_ZIPMAP: 9,
    LIST_ZIPLIST: 10,
    SET_INTSET: 11,
    ZSET_ZIPLIST: 12,
    HASH_ZIPLIST: 13,
    LIST_QUICKLIST: 14,
    STREAM_LISTPACKS: 15,
    HASH_LISTPACK: 16,
    ZSET_LISTPACK: 17,
    LIST_QUICKLIST_2: 18,
    STREAM_LISTPACKS_2: 19,
    SET_LISTPACK: 20,
    STREAM_LISTPACKS_3: 21,
} as const;

export const RDB_OPCODE = {
    SLOT_INFO: 244,
    FUNCTION2: 245,
    FUNCTION_PRE_GA: 246,
    MODULE_AUX: 247,
    IDLE: 248,
    FREQ: 249,
    AUX: 250,
    RESIZEDB: 251,
    EXPIRETIME_MS: 252,
    EXPIRETIME: 253,
    SELECTDB: 254,
    EOF: 255,
} as const;

/** Newest RDB version this library reads: Redis 7.2 and Valkey 8 write 11. */
export const MAX_RDB_VERSION = 11;

/** The RDB version each RDB type first appeared in (a RESTORE target older than that refuses it). */
export const RDB_TYPE_MIN_VERSION: Record<number, number> = {
    [RDB_TYPE.ZSET_2]: 8,
    [RDB_TYPE.LIST_QUICKLIST]: 7,
    [RDB_TYPE.STREAM_LISTPACKS]: 9,
    [RDB_TYPE.HASH_LISTPACK]: 10,
    [RDB_TYPE.ZSET_LISTPACK]: 10,
    [RDB_TYPE.LIST_QUICKLIST_2]: 10,
    [RDB_TYPE.STREAM_LISTPACKS_2]: 10,
    [RDB_TYPE.SET_LISTPACK]: 11,
    [RDB_TYPE.STREAM_LISTPACKS_3]: 11,
};

export type ValueKind = "string" | "list" | "set" | "zset" | "hash" | "stream" | "module";

const KIND: Record<number, ValueKind> = {
    0: "string",
    1: "list",
    10: "list",
    14: "list",
    18: "list",
    2: "set",
    11: "set",
    20: "set",
    3: "zset",
    5: "zset",
    12: "zset",
    17: "zset",
    4: "hash",
    9: "hash",
    13: "hash",
    16: "hash",
    15: "stream",
    19: "stream",
    21: "stream",
    6: "module",
    7: "module",
};

/** The Redis TYPE of a value stored with this RDB type, or undefined for an unknown type byte. */
export function valueKind(rdbType: number): ValueKind | undefined {
    return KIND[rdbType];
}

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(RDB_TYPE).map(([k, v]) => [v, k]));
export function rdbTypeName(rdbType: number): string {
    return NAMES[rdbType] ?? `unknown type ${rdbType}`;
}

const MODULE_CHARSET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/** The 9-character module type name and encoding version packed in a module id (redis moduleTypeNameByID). */
export function moduleTypeName(moduleId: bigint): { name: string; encver: number } {
    const encver = Number(moduleId & 1023n);
    let id = moduleId >> 10n;
    let name = "";
    for (let j = 0; j < 9; j++) {
        name = MODULE_CHARSET[Number(id & 63n)] + name;
        id >>= 6n;
    }
    return { name, encver };
}
