/**
 * Element-wise fallback: the commands that rebuild a decoded value when RESTORE cannot carry it
 * (a value above the target's proto-max-bulk-len, or an RDB type/version the target cannot load,
 * e.g. a listpack set from 7.2 into Redis 6.2). Pure: commands out, the caller sends them
 * (pipelined, in order, to the key's owner) to a key that does not exist yet.
 *
 * What cannot be carried this way, by design of the commands: a consumer's seen/active time
 * (XCLAIM and XGROUP CREATECONSUMER set them to now), PEL entries whose message was deleted
 * (XCLAIM skips IDs not in the stream), and LRU/LFU state.
 */
import type { StreamGroup, StreamMeta, ValueChunk } from "./types";

export type Command = [name: string, ...args: (string | Buffer)[]];

export interface RebuildOptions {
    /** Absolute expiry (Unix ms) to set after the value, or null. */
    expireAtMs: number | null;
    /** Most elements per command. @default 1000 */
    maxElements?: number;
    /**
     * Whether the target has the Redis 7.0 stream arguments (XSETID ENTRIESADDED/MAXDELETEDID,
     * XGROUP CREATE ... ENTRIESREAD). Without them (6.2) those counters are left to the server.
     * @default true
     */
    streamsV2?: boolean;
}

const TMP_GROUP = "rdb-restore-mkstream";

/** A score as Redis parses it back to the same double (shortest round-trip form, ±inf). */
export function formatScore(n: number): string {
    if (n === Infinity) return "+inf";
    if (n === -Infinity) return "-inf";
    return String(n);
}

/** Commands rebuilding `key` from its decoded chunks, in order. */
export async function* rebuildCommands(key: Buffer, chunks: AsyncIterable<ValueChunk> | Iterable<ValueChunk>, opts: RebuildOptions): AsyncGenerator<Command> {
    const max = opts.maxElements ?? 1000;
    const v2 = opts.streamsV2 ?? true;
    let first = true;
    let streamTail: { meta: StreamMeta; groups: StreamGroup[] } | null = null;
    let streamEntries = 0;
    let kind: ValueChunk["type"] | null = null;
    for await (const c of chunks) {
        kind = c.type;
        switch (c.type) {
            case "string":
                yield first ? ["SET", key, c.value] : ["APPEND", key, c.value];
                break;
            case "list":
                for (let i = 0; i < c.items.length; i += max) yield ["RPUSH", key, ...c.items.slice(i, i + max)];
                break;
            case "set":
                for (let i = 0; i < c.members.length; i += max) yield ["SADD", key, ...c.members.slice(i, i + max)];
                break;
            case "zset":
                for (let i = 0; i < c.entries.length; i += max) {
                    yield ["ZADD", key, ...c.entries.slice(i, i + max).flatMap(([m, s]) => [formatScore(s), m])];
                }
                break;
            case "hash":
                for (let i = 0; i < c.fields.length; i += max) yield ["HSET", key, ...c.fields.slice(i, i + max).flat()];
                break;
            case "stream":
                for (const e of c.entries) {
                    yield ["XADD", key, e.id, ...e.fields];
                    streamEntries++;
                }
                if (c.meta) streamTail = { meta: c.meta, groups: c.groups ?? [] };
                break;
        }
        first = false;
    }
    if (kind === "stream") {
        if (!streamTail) throw new Error(`stream ${JSON.stringify(key.toString())}: the decoded value has no metadata chunk`);
        const { meta, groups } = streamTail;
        if (streamEntries === 0) {
            // An empty stream is a key too: MKSTREAM creates it without an entry (an XADD+XDEL would leave a max-deleted ID).
            yield ["XGROUP", "CREATE", key, TMP_GROUP, "$", "MKSTREAM"];
            yield ["XGROUP", "DESTROY", key, TMP_GROUP];
        }
        const setid: Command = ["XSETID", key, meta.lastId];
        if (v2 && meta.entriesAdded !== null && meta.maxDeletedId !== null) setid.push("ENTRIESADDED", String(meta.entriesAdded), "MAXDELETEDID", meta.maxDeletedId);
        yield setid;
        for (const g of groups) {
            const create: Command = ["XGROUP", "CREATE", key, g.name, g.lastId];
            if (v2 && g.entriesRead !== null) create.push("ENTRIESREAD", String(g.entriesRead));
            yield create;
            for (const c of g.consumers) {
                yield ["XGROUP", "CREATECONSUMER", key, g.name, c.name];
            }
            for (const p of g.pending) {
                if (!p.consumer) continue;
                yield ["XCLAIM", key, g.name, p.consumer, "0", p.id, "TIME", String(p.deliveryTime), "RETRYCOUNT", String(p.deliveryCount), "FORCE", "JUSTID"];
            }
        }
    }
    if (kind !== null && opts.expireAtMs !== null) yield ["PEXPIREAT", key, String(opts.expireAtMs)];
}
