import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { createHash, randomBytes } from "node:crypto";
import { BackupStore, NotFoundError, openStore } from "../../scripts/backup/store";
import { S3Fixture, startS3 } from "../helpers/s3";

let s3: S3Fixture;
let dir: string;
before(async () => {
    s3 = await startS3();
    Object.assign(process.env, s3.env);
    dir = mkdtempSync(join(tmpdir(), "rct-store-"));
});
after(async () => {
    await s3?.stop();
    rmSync(dir, { recursive: true, force: true });
});

async function exercise(store: BackupStore): Promise<void> {
    const big = randomBytes(21 * 1024 * 1024 + 17); // > one 8 MiB part: a real multipart upload on S3
    await store.write("c1/20261201T030000Z/shard-0.rdb", Readable.from([big.subarray(0, 1000), big.subarray(1000)]));
    await store.write("c1/20261201T030000Z/shard-0.json", '{"a":1}');
    await store.write("c2/20261201T030000Z/backup.json", Buffer.from("{}"));
    assert.deepEqual((await store.list("c1/")).map((o) => [o.key, o.size]), [
        ["c1/20261201T030000Z/shard-0.json", 7], ["c1/20261201T030000Z/shard-0.rdb", big.length]]);
    assert.equal((await store.list("")).length, 3);
    const h = createHash("sha256");
    for await (const c of await store.read("c1/20261201T030000Z/shard-0.rdb")) h.update(c);
    assert.equal(h.digest("hex"), createHash("sha256").update(big).digest("hex"));
    assert.equal(await store.readText("c1/20261201T030000Z/shard-0.json"), '{"a":1}');
    assert.equal(await store.readText("c1/nope.json"), undefined);
    assert.equal(await store.size("c1/20261201T030000Z/shard-0.rdb"), big.length);
    assert.equal(await store.size("c1/nope"), undefined);
    await assert.rejects(store.read("c1/nope.rdb"), NotFoundError);
    await assert.rejects(store.list("../x"), /invalid backup key/);
}

test("directory store: streams in and out, atomic writes, listing", async () => {
    const store = openStore(dir);
    await exercise(store);
    const failing = new Readable({ read() { this.destroy(new Error("source broke")); } });
    await assert.rejects(store.write("c1/x/shard-9.rdb", failing), /source broke/);
    assert.deepEqual(readdirSync(join(dir, "c1", "x")), [], "a failed write leaves no file, not even a temporary one");
});

test("S3 store against s3rver (path-style endpoint): multipart upload, streaming read, listing", async () => {
    const store = openStore(`s3://${s3.bucket}/backups`, { s3Endpoint: s3.endpoint, partSizeBytes: 8 * 1024 * 1024 });
    await exercise(store);
    const failing = new Readable({ read() { this.destroy(new Error("source broke")); } });
    await assert.rejects(store.write("c1/x/shard-9.rdb", failing), /upload to s3:\/\/backups-test\/backups\/c1\/x\/shard-9.rdb failed/);
    assert.equal(await store.size("c1/x/shard-9.rdb"), undefined, "a failed upload leaves no object");
});

test("directory store create: exclusive (of 20 concurrent creators exactly one wins), whole, and leaves no temporary file", async () => {
    const store = openStore(dir);
    const body = (i: number) => JSON.stringify({ writer: i, pad: "x".repeat(64 * 1024) });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.create("c3/20261201T030000Z/shard-0.claim", body(i))));
    assert.equal(results.filter(Boolean).length, 1, `exactly one creator: ${results}`);
    assert.equal(await store.readText("c3/20261201T030000Z/shard-0.claim"), body(results.indexOf(true)));
    assert.equal(await store.create("c3/20261201T030000Z/shard-0.claim", "late"), false);
    assert.deepEqual(readdirSync(join(dir, "c3", "20261201T030000Z")), ["shard-0.claim"]);
});
