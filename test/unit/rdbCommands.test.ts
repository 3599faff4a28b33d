/**
 * The element-wise fallback's command shapes (the integration test rebuilds every type against a
 * real server; this pins argument order, batching, scores and the stream tail without one).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { rebuildCommands, formatScore, Command, ValueChunk } from "../../scripts/rdb";

async function commands(chunks: ValueChunk[], opts: Parameters<typeof rebuildCommands>[2]): Promise<string[][]> {
    const out: string[][] = [];
    for await (const c of rebuildCommands(Buffer.from("k"), chunks, opts)) out.push((c as Command).map(String));
    return out;
}

const b = (s: string): Buffer => Buffer.from(s);

test("scores round-trip through Redis' strtod: shortest form, +inf/-inf", () => {
    assert.deepEqual([0.1, 1 / 3, -2.5e-300, 1e21, Infinity, -Infinity].map(formatScore), ["0.1", "0.3333333333333333", "-2.5e-300", "1e+21", "+inf", "-inf"]);
});

test("strings: SET then APPEND per piece; collections batched by maxElements; expiry last", async () => {
    assert.deepEqual(await commands([{ type: "string", value: b("ab") }, { type: "string", value: b("cd") }], { expireAtMs: 1700000000000 }), [
        ["SET", "k", "ab"],
        ["APPEND", "k", "cd"],
        ["PEXPIREAT", "k", "1700000000000"],
    ]);
    assert.deepEqual(await commands([{ type: "list", items: ["a", "b", "c"].map(b) }, { type: "list", items: [b("d")] }], { expireAtMs: null, maxElements: 2 }), [
        ["RPUSH", "k", "a", "b"],
        ["RPUSH", "k", "c"],
        ["RPUSH", "k", "d"],
    ]);
    assert.deepEqual(await commands([{ type: "zset", entries: [[b("m"), -Infinity], [b("n"), 2.5]] }], { expireAtMs: null }), [["ZADD", "k", "-inf", "m", "2.5", "n"]]);
    assert.deepEqual(await commands([{ type: "hash", fields: [[b("f"), b("v")]] }], { expireAtMs: null }), [["HSET", "k", "f", "v"]]);
    assert.deepEqual(await commands([{ type: "set", members: [b("x")] }], { expireAtMs: null }), [["SADD", "k", "x"]]);
});

test("streams: entries, XSETID with 7.0 counters (or without on 6.2), groups, consumers, PEL via XCLAIM", async () => {
    const chunk: ValueChunk = {
        type: "stream",
        entries: [{ id: "1-1", fields: [b("f"), b("v")] }],
        meta: { length: 1, lastId: "2-0", firstId: "1-1", maxDeletedId: "2-0", entriesAdded: 2 },
        groups: [
            {
                name: b("g"),
                lastId: "1-1",
                entriesRead: 1,
                pending: [{ id: "1-1", deliveryTime: 1700000000000, deliveryCount: 3, consumer: b("alice") }],
                consumers: [{ name: b("alice"), seenTime: 0, activeTime: null, pending: ["1-1"] }],
            },
        ],
    };
    const tail = [
        ["XGROUP", "CREATECONSUMER", "k", "g", "alice"],
        ["XCLAIM", "k", "g", "alice", "0", "1-1", "TIME", "1700000000000", "RETRYCOUNT", "3", "FORCE", "JUSTID"],
    ];
    assert.deepEqual(await commands([chunk], { expireAtMs: null }), [
        ["XADD", "k", "1-1", "f", "v"],
        ["XSETID", "k", "2-0", "ENTRIESADDED", "2", "MAXDELETEDID", "2-0"],
        ["XGROUP", "CREATE", "k", "g", "1-1", "ENTRIESREAD", "1"],
        ...tail,
    ]);
    assert.deepEqual(await commands([chunk], { expireAtMs: null, streamsV2: false }), [["XADD", "k", "1-1", "f", "v"], ["XSETID", "k", "2-0"], ["XGROUP", "CREATE", "k", "g", "1-1"], ...tail]);
    // An empty stream still becomes a key.
    assert.deepEqual(await commands([{ type: "stream", entries: [], meta: { ...chunk.meta!, length: 0 }, groups: [] }], { expireAtMs: null }), [
        ["XGROUP", "CREATE", "k", "rdb-restore-mkstream", "$", "MKSTREAM"],
        ["XGROUP", "DESTROY", "k", "rdb-restore-mkstream"],
        ["XSETID", "k", "2-0", "ENTRIESADDED", "2", "MAXDELETEDID", "2-0"],
    ]);
});
