/**
 * Backup and restore round trips through the tool, on real redis-server clusters:
 * a 3-shard cluster holding every type and encoding (with TTLs, a function library,
 * a 50 MiB string and a hash of 200k fields) backed up to a directory, restored into a
 * fresh 5-shard cluster and into a 3-shard cluster on other ports (with a memory bound
 * that forces the big values element by element); a restore killed mid-way and rerun
 * with --replace; truncated and corrupted RDB files refused naming shard and offset.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import type { Cluster } from "ioredis";
import { ClusterFixture, loadKeys, spawnCli, startCluster, waitFor } from "../helpers/cluster";

let src: ClusterFixture, five: ClusterFixture, three: ClusterFixture;
let tmp: string;
let store: string;
type Want = { dump: Buffer; pttl: number; type: string; at: number };
let expected: Map<string, Want>;
const BIG_STRING = 50 * 1024 * 1024;
const BIG_HASH = 200_000;

/** The result document of a --json run: the last line, after the NDJSON progress events. */
function resultDoc(stdout: string): any {
    return JSON.parse(stdout.trim().split("\n").pop()!);
}

async function masters(fx: ClusterFixture) {
    return fx.shards.map((sh) => fx.client(sh[0]));
}

async function allKeys(fx: ClusterFixture): Promise<string[]> {
    const keys: string[] = [];
    for (const c of await masters(fx)) {
        let cursor = "0";
        do {
            const [next, batch] = (await c.scan(cursor, "COUNT", 1000)) as [string, string[]];
            keys.push(...batch);
            cursor = next;
        } while (cursor !== "0");
    }
    return keys.sort();
}

async function load(fx: ClusterFixture): Promise<void> {
    const c = fx.clusterClient();
    await loadKeys(c, 3000);
    await c.set("s:int", "123456");
    await c.set("s:embstr", "short");
    await c.set("s:raw", "r".repeat(100));
    await c.rpush("l:small", "a", "b", "c");
    await c.rpush("l:big", ...Array.from({ length: 2000 }, (_, i) => `item-${i}-${"x".repeat(90)}`));
    await c.sadd("set:int", ...Array.from({ length: 50 }, (_, i) => String(i)));
    await c.sadd("set:small", "a", "b", "c");
    await c.sadd("set:ht", ...Array.from({ length: 1000 }, (_, i) => `m${i}`));
    await c.zadd("z:small", 1, "a", 2.5, "b", -3, "c");
    await c.zadd("z:sl", ...Array.from({ length: 500 }, (_, i) => [String(i / 3), `m${i}`]).flat());
    await c.hset("h:small", "f1", "v1", "f2", "v2");
    await c.hset("h:ht", ...Array.from({ length: 1000 }, (_, i) => [`f${i}`, `v${i}`]).flat());
    for (let i = 0; i < 100; i++) await c.xadd("st", "*", "n", String(i));
    await c.xgroup("CREATE", "st", "g1", "0");
    await c.xreadgroup("GROUP", "g1", "c1", "COUNT", "10", "STREAMS", "st", ">");
    for (let i = 0; i < 100; i++) await c.set(`ttl:${i}`, "v", "PX", 3_600_000 + i);
    await c.set("big:str", randomBytes(BIG_STRING));
    for (let i = 0; i < BIG_HASH; i += 5000) {
        await c.hset("big:hash", ...Array.from({ length: 5000 }, (_, j) => [`field:${i + j}`, `value:${i + j}`]).flat());
    }
    // Function libraries live on every master.
    const lib = "#!lua name=backuplib\nredis.register_function('bl_one', function(keys, args) return 1 end)";
    for (const m of await masters(fx)) await m.call("FUNCTION", "LOAD", lib);
}

async function snapshot(fx: ClusterFixture) {
    const c = fx.clusterClient();
    const out = new Map<string, Want>();
    for (const k of await allKeys(fx)) {
        if (k === "exp:soon") continue;
        out.set(k, { dump: (await c.callBuffer("DUMP", k)) as Buffer, pttl: await c.pttl(k), type: await c.type(k), at: Date.now() });
    }
    return out;
}

/** Same value (by DUMP, else by type-aware reads: a value rebuilt element by element may be encoded otherwise) and PTTL within a second. */
async function assertSame(c: Cluster, key: string, want: Want, srcC: Cluster): Promise<void> {
    const dump = (await c.callBuffer("DUMP", key)) as Buffer | null;
    assert.ok(dump, `${key} is missing`);
    const pttl = await c.pttl(key);
    if (want.pttl < 0) assert.equal(pttl, want.pttl, `${key} PTTL`);
    else {
        // The absolute expiry is kept: what is left now is what was left then, minus the time since.
        const now = want.pttl - (Date.now() - want.at);
        assert.ok(Math.abs(pttl - now) < 1000, `${key} PTTL ${pttl}, expected about ${now}`);
    }
    if (dump.equals(want.dump)) return;
    assert.equal(await c.type(key), want.type, key);
    const sorted = (a: string[]) => [...a].sort();
    switch (want.type) {
        case "string": {
            const [a, b] = [await c.getBuffer(key), await srcC.getBuffer(key)];
            assert.ok(a!.equals(b!), `${key}: string differs`);
            break;
        }
        case "list": assert.deepEqual(await c.lrange(key, 0, -1), await srcC.lrange(key, 0, -1), key); break;
        case "set": assert.deepEqual(sorted(await c.smembers(key)), sorted(await srcC.smembers(key)), key); break;
        case "zset": assert.deepEqual(await c.zrange(key, 0, -1, "WITHSCORES"), await srcC.zrange(key, 0, -1, "WITHSCORES"), key); break;
        case "hash": assert.deepEqual(await c.hgetall(key), await srcC.hgetall(key), key); break;
        case "stream":
            assert.deepEqual(await c.xrange(key, "-", "+"), await srcC.xrange(key, "-", "+"), key);
            assert.deepEqual(await c.xpending(key, "g1"), await srcC.xpending(key, "g1"), key);
            break;
        default: assert.fail(`${key}: unexpected type ${want.type}`);
    }
}

async function assertRestored(fx: ClusterFixture): Promise<void> {
    const c = fx.clusterClient();
    const srcC = src.clusterClient();
    assert.deepEqual(await allKeys(fx), [...expected.keys()].sort(), "the same keys, and exp:soon skipped");
    for (const [k, v] of expected) await assertSame(c, k, v, srcC);
    for (const m of await masters(fx)) {
        const libs = (await m.call("FUNCTION", "LIST")) as unknown[][];
        assert.ok(JSON.stringify(libs).includes("backuplib"), "function library restored on every master");
    }
}

before(async () => {
    tmp = mkdtempSync(join(tmpdir(), "rct-restore-"));
    store = join(tmp, "store");
    [src, five, three] = await Promise.all([
        startCluster({ masters: 3, acl: true, clusterName: "src" }),
        startCluster({ masters: 5, acl: true, clusterName: "five" }),
        startCluster({ masters: 3, acl: true, clusterName: "three" }),
    ]);
    await load(src);
    // In the backup, expired by the time of the restores: skipped and counted.
    await src.clusterClient().set("exp:soon", "gone", "PX", 10_000);
    const b = await spawnCli(["backup", "--topology", src.topologyFile, "--to", store, "--json"]).done;
    assert.equal(b.code, 0, b.stderr);
    expected = await snapshot(src);
    assert.equal(resultDoc(b.stdout).totalKeys, expected.size + 1, "the backup holds exp:soon");
    // Let exp:soon lapse: it is in the backup, but restore must skip it.
    await waitFor(async () => (await src.clusterClient().exists("exp:soon")) === 0, 15000, "exp:soon to expire");
});

after(async () => {
    await Promise.all([src?.stop(), five?.stop(), three?.stop()]);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test("restore: 3 shards into a fresh 5-shard cluster, every key's value, type and TTL equal; counts match the manifests", async () => {
    const r = await spawnCli(["restore", "--from", store, "--topology", five.topologyFile, "--json", "-q"]).done;
    assert.equal(r.code, 0, r.stderr);
    const doc = resultDoc(r.stdout);
    assert.equal(doc.ok, true);
    const sum = (f: string) => doc.shards.reduce((a: number, s: Record<string, number>) => a + s[f], 0);
    assert.equal(sum("keysRead"), expected.size + 1);
    assert.equal(sum("expired"), 1, "exp:soon skipped and counted");
    assert.equal(sum("restored"), expected.size);
    assert.equal(doc.functions, 1);
    await assertRestored(five);
});

test("restore: into 3 shards on other ports with 8 MiB of memory: the big values go element by element", async () => {
    const r = await spawnCli(["restore", "--from", store, "--topology", three.topologyFile, "--memory-mb", "8", "--json", "-q"]).done;
    assert.equal(r.code, 0, r.stderr);
    const doc = resultDoc(r.stdout);
    assert.ok(doc.shards.reduce((a: number, s: { elementWise: number }) => a + s.elementWise, 0) >= 2, "the 50 MiB string and the 200k-field hash were rebuilt element by element");
    await assertRestored(three);

    // Into a cluster that holds keys: refused without --yes (no terminal to ask on) ...
    const refused = await spawnCli(["restore", "--from", store, "--topology", three.topologyFile]).done;
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /holds \d+ key\(s\); confirm with --yes .*nothing was restored/);
    // ... and with --yes, existing keys are reported and kept.
    const kept = await spawnCli(["restore", "--from", store, "--topology", three.topologyFile, "--yes", "--json", "-q"]).done;
    assert.equal(kept.code, 0, kept.stderr);
    const k = resultDoc(kept.stdout);
    assert.equal(k.shards.reduce((a: number, s: { conflicts: number }) => a + s.conflicts, 0), expected.size);
});

test("restore: killed mid-way, rerun with --replace, ends with every key", async () => {
    for (const m of await masters(three)) await m.flushall();
    const run = spawnCli(["restore", "--from", store, "--topology", three.topologyFile, "--memory-mb", "8"]);
    const c = three.clusterClient();
    await waitFor(async () => (await Promise.all((await masters(three)).map((m) => m.dbsize()))).reduce((a, b) => a + b, 0) > 100, 60000, "the restore to be under way");
    run.proc.kill("SIGKILL");
    await run.done;
    const partial = (await Promise.all((await masters(three)).map((m) => m.dbsize()))).reduce((a, b) => a + b, 0);
    assert.ok(partial < expected.size, `killed after ${partial} of ${expected.size} keys`);
    // The killed run's lease stays behind (docs/lease.md): the rerun takes it over, as the refusal says.
    const refused = await spawnCli(["restore", "--from", store, "--topology", three.topologyFile, "--replace", "--yes", "-q"]).done;
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /no longer runs .*--take-over-lease/s);
    const again = await spawnCli(["restore", "--from", store, "--topology", three.topologyFile, "--replace", "--yes", "--take-over-lease", "-q"]).done;
    assert.equal(again.code, 0, again.stderr);
    await assertRestored(three);
    void c;
});

test("restore: a truncated or corrupted RDB is refused with the shard and byte offset, and the exit code says so", async () => {
    const bad = join(tmp, "bad");
    cpSync(store, bad, { recursive: true });
    const [id] = JSON.parse((await spawnCli(["backups", "--from", bad, "--no-verify", "--json"]).done).stdout).backups.map((b: { backupId: string }) => b.backupId);
    const dir = join(bad, "src", id);
    const rdb = join(dir, "shard-1.rdb");
    const size = readFileSync(rdb).length;

    // Truncated, manifest untouched: refused before a key is sent.
    truncateSync(rdb, Math.floor(size / 2));
    for (const m of await masters(three)) await m.flushall();
    let r = await spawnCli(["restore", "--from", bad, "--topology", three.topologyFile]).done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /shard 1.*has \d+ bytes, the manifest says \d+ \(truncated or replaced\)/s);

    // Truncated, with manifests that agree (as if written so): the reader stops at the end of the data and names the offset.
    const half = readFileSync(rdb);
    const sha = createHash("sha256").update(half).digest("hex");
    const fix = (f: string, edit: (d: any) => void) => {
        const d = JSON.parse(readFileSync(join(dir, f), "utf8"));
        edit(d);
        writeFileSync(join(dir, f), JSON.stringify(d));
    };
    fix("shard-1.json", (d) => { d.bytes = half.length; d.sha256 = sha; });
    fix("backup.json", (d) => {
        const s = d.shards.find((x: { shard: number }) => x.shard === 1);
        d.totalBytes += half.length - s.bytes;
        s.bytes = half.length;
        s.sha256 = sha;
    });
    r = await spawnCli(["restore", "--from", bad, "--topology", three.topologyFile, "--yes"]).done;
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /restore: step "read-rdb" failed on shard 1/);
    assert.match(r.stderr, /invalid RDB at byte \d+/);
    assert.doesNotMatch(r.stdout, /^restored /m, "no success is claimed");

    // A flipped byte, manifests untouched: the SHA-256 (or the reader) refuses it.
    cpSync(join(store, "src", id, "shard-1.rdb"), rdb);
    fix("shard-1.json", (d) => { d.bytes = size; d.sha256 = JSON.parse(readFileSync(join(store, "src", id, "shard-1.json"), "utf8")).sha256; });
    cpSync(join(store, "src", id, "backup.json"), join(dir, "backup.json"));
    const buf = readFileSync(rdb);
    buf[Math.floor(size / 3)] ^= 0xff;
    writeFileSync(rdb, buf);
    r = await spawnCli(["restore", "--from", bad, "--topology", three.topologyFile, "--yes", "--replace"]).done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /shard 1/);
    assert.match(r.stderr, /invalid RDB at byte \d+|checksum mismatch|hashes to [0-9a-f]{64}, the manifest says/);
});
