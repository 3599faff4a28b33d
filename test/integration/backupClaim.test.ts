/**
 * The tool's own backup (`backup --topology … --to DIR`) under the per-shard claim
 * (scripts/backup/claim.ts), against a real 3-shard cluster (1 replica each) and the
 * directory store, whose exclusive create needs no settle delay.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClusterFixture, loadKeys, startCluster } from "../helpers/cluster";
import { capturedOutput } from "../helpers/output";
import { run as backup } from "../../scripts/commands/backup";
import { openStore } from "../../scripts/backup/store";
import { backupPaths, parseClaim, parseShardManifest, ShardClaim } from "../../scripts/backup/manifest";
import { listBackups } from "../../scripts/backup/catalog";
import { hashObject } from "../../scripts/backup/catalog";
import { StepError } from "../../scripts/errors";

let fx: ClusterFixture;
let dir: string;

before(async () => {
    dir = mkdtempSync(join(tmpdir(), "rct-backupclaim-"));
    fx = await startCluster({ masters: 3, replicasPerMaster: 1, clusterName: "bc" });
    await loadKeys(fx.clusterClient(), 900);
});
after(async () => {
    await fx?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
});

function io() {
    const c = capturedOutput({ json: true });
    return { ...c, ctx: { out: c.out, signal: new AbortController().signal } };
}
const at = (iso: string) => ({ now: () => new Date(iso), claimTiming: { pollMs: 200 } });

test("backup: two runs of the same backup id at once: each shard saved and uploaded once, by its replica; both end with the backup", async () => {
    const [a, b] = [io(), io()];
    const [ca, cb] = await Promise.all([
        backup({ topology: fx.topologyFile, to: dir, json: true }, a.ctx, at("2026-12-01T03:00:00Z")),
        backup({ topology: fx.topologyFile, to: dir, json: true }, b.ctx, at("2026-12-01T03:00:00Z")),
    ]);
    assert.equal(ca, 0, a.stderr());
    assert.equal(cb, 0, b.stderr());
    const events = (a.stdout() + b.stdout()).split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const starts = events.filter((e) => e.event === "shard-start");
    assert.deepEqual(starts.map((e) => e.shard).sort(), [0, 1, 2], `one BGSAVE and upload per shard, not ${starts.length}`);
    assert.ok(starts.every((e) => e.role === "replica"));
    const store = openStore(dir);
    const paths = backupPaths("bc", "20261201T030000Z");
    for (let shard = 0; shard < 3; shard++) {
        const m = parseShardManifest((await store.readText(paths.shardManifest(shard)))!, "manifest");
        assert.equal(m.nodeName, `bc-s${shard}-r1`);
        assert.equal((await hashObject(store, paths.rdb(shard))).sha256, m.sha256);
        const c = parseClaim((await store.readText(paths.claim(shard, 1)))!, "claim");
        assert.deepEqual([c.nodeName, c.generation, c.reason], [`bc-s${shard}-r1`, 1, "in-sync replica with the smallest node id"]);
    }
    assert.deepEqual(events.filter((e) => e.ok === true).map((e) => e.totalKeys), [900, 900], "both runs report the whole backup");
});

function staleClaim(shard: number, generation: 1 | 2, nodeName: string, expiredAgoMs: number): ShardClaim {
    const t = new Date(Date.now() - expiredAgoMs);
    return {
        version: 1, backupId: "20261201T040000Z", clusterName: "bc", shard, generation, nodeName, nodeId: "f".repeat(40), address: "127.0.0.1:1",
        role: "replica", token: `dead${generation}`, reason: "in-sync replica with the smallest node id", claimedAt: t.toISOString(), renewedAt: t.toISOString(), expiresAt: t.toISOString(),
    };
}

test("backup: a claim whose holder died (expired, no manifest) is taken over once; a stale takeover is final and named", async () => {
    const paths = backupPaths("bc", "20261201T040000Z");
    mkdirSync(join(dir, paths.dir), { recursive: true });
    // A node claimed shard 0 and died: its claim expired a minute ago.
    writeFileSync(join(dir, paths.claim(0, 1)), JSON.stringify(staleClaim(0, 1, "bc-s0-r1", 60_000), null, 2));
    const a = io();
    assert.equal(await backup({ topology: fx.topologyFile, to: dir, json: true }, a.ctx, at("2026-12-01T04:00:00Z")), 0, a.stderr());
    const t = parseClaim(readFileSync(join(dir, paths.claim(0, 2)), "utf8"), "takeover");
    assert.equal(t.generation, 2);
    assert.match(t.reason, /^takeover: bc-s0-r1 \(127\.0\.0\.1:1\)'s claim expired at .* without a manifest$/);
    assert.equal(parseShardManifest(readFileSync(join(dir, paths.shardManifest(0)), "utf8"), "m").nodeName, "bc-s0-r1");

    // Shard 1 of another id: claimed, taken over, and the takeover died too.
    const p2 = backupPaths("bc", "20261201T050000Z");
    mkdirSync(join(dir, p2.dir), { recursive: true });
    writeFileSync(join(dir, p2.claim(1, 1)), JSON.stringify({ ...staleClaim(1, 1, "bc-s1-r1", 120_000), backupId: "20261201T050000Z" }, null, 2));
    writeFileSync(join(dir, p2.claim(1, 2)), JSON.stringify({ ...staleClaim(1, 2, "bc-s1-r0", 60_000), backupId: "20261201T050000Z", failed: "BGSAVE failed" }, null, 2));
    const b = io();
    await assert.rejects(backup({ topology: fx.topologyFile, to: dir, json: true }, b.ctx, at("2026-12-01T05:00:00Z")), (e: unknown) => {
        assert.ok(e instanceof StepError);
        assert.match((e as Error).message, /the takeover by bc-s1-r0 \(127\.0\.0\.1:1\)'s claim expired at .* without a manifest \(BGSAVE failed\), and a claim is taken over once: no backup of shard 1/);
        return true;
    });
    const [l] = (await listBackups(openStore(dir), { clusterName: "bc" })).filter((x) => x.backupId === "20261201T050000Z");
    assert.equal(l.complete, false);
    const u = l.unfinished.find((x) => x.shard === 1)!;
    assert.deepEqual([u.state, u.claim.nodeName, u.takenOverFrom], ["gave-up", "bc-s1-r0", "bc-s1-r1"]);
    assert.match(l.problems.join("\n"), /shard 1: claimed by bc-s1-r0 \(replica, 127\.0\.0\.1:1\) taking over from bc-s1-r1, no manifest; the holder gave up: BGSAVE failed/);
});
