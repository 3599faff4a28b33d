/**
 * The autoscaler end to end on a local cluster (issue 14): a small maxmemory, a
 * load that fills the masters past the memory target, and the policy's rounds
 * (the same loop `npm run local -- autoscale` runs) grow the cluster by one
 * shard under client traffic with no lost key and no client error; once the load
 * stops and its keys expire, the cluster shrinks back after the (short) cool-down
 * and scale-in window. One round also runs through the real CLI (`--once --json`).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster } from "ioredis";
import { PassThrough } from "node:stream";
import { down, loadLocalConfig, shapeOf, stackDir, up } from "../../scripts/local";
import { localEnv } from "../../scripts/local/autoscale";
import { autoscaleRound, DecisionRecord } from "../../scripts/autoscale/run";
import { createOutput } from "../../scripts/output";
import { missingKeys, startTraffic } from "../helpers/cluster";
import type { Topology } from "../../components/topology";
import { killRedisUnder } from "../helpers/processes";
import { localBasePort } from "../helpers/redisServers";

const ROOT = join(__dirname, "..", "..");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("autoscale (local): grows by one shard under load with no lost key, shrinks back after the load expires", { timeout: 150_000 }, async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), "rct-autoscale-"));
    const config = join(tmp, "Pulumi.as.yaml");
    // maxmemory 10 % of local mode's 384 MiB per node (38 MiB); target 20 % of it.
    writeFileSync(config, [
        "config:",
        "  redis-cluster:shards: 3",
        "  redis-cluster:replicasPerShard: 0",
        "  redis-cluster:maxmemoryPercent: 10",
        "  redis-cluster:clusterNodeTimeoutMs: 1000",
        "  redis-cluster:autoscale:",
        "    enabled: true",
        "    intervalSeconds: 1",
        "    targetMemoryPercent: 20",
        "    maxShards: 4",
        "    scaleOutDatapoints: 2",
        "    scaleOutCooldownSeconds: 2",
        "    scaleInCooldownSeconds: 3",
        "    scaleInWindowSeconds: 3",
        "",
    ].join("\n"));
    const state = join(tmp, "state");
    const opts = { stack: "as", config, stateDir: state, basePort: localBasePort() };
    const sink = new PassThrough().resume();
    const quiet = createOutput({ json: true, stdout: sink, stderr: sink });
    const log: string[] = [];
    const logStream = new PassThrough();
    logStream.on("data", (d) => log.push(...String(d).split("\n").filter(Boolean)));
    let data: Cluster | undefined;
    try {
        const r = await up(opts, quiet);
        assert.ok(r.healthy);
        const dir = join(state, "as");
        const topology = () => JSON.parse(readFileSync(join(dir, "topology.json"), "utf8")) as Topology;
        const creds = JSON.parse(readFileSync(join(dir, "credentials.json"), "utf8")) as { user: string; password: string };
        data = new Cluster([{ host: "127.0.0.1", port: topology().nodes[0].port }], { redisOptions: { username: creds.user, password: creds.password } });

        // The CLI, one round: one JSON line on stdout, one log line on stderr.
        const cli = spawnSync(process.execPath, ["--import", "tsx", "scripts/cli.ts", "local", "autoscale", "--stack", "as", "--config", config, "--state-dir", state, "--once", "--json"], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
        assert.equal(cli.status, 0, cli.stderr);
        const lines = cli.stdout.split("\n").filter(Boolean);
        assert.equal(lines.length, 1, cli.stdout);
        const first = JSON.parse(lines[0]) as DecisionRecord;
        assert.deepEqual([first.event, first.action, first.heldBy, first.shape], ["autoscale-decision", "none", "min-shards", { shards: 3, replicas: 0 }]);
        assert.match(cli.stderr, /autoscale local stack as: none \(held by min-shards\): master memory [\d.]+ % \(target 20 %/);

        const env = localEnv<typeof opts>(opts, quiet, { stackDir, loadLocalConfig, shapeOf, up });
        const records: DecisionRecord[] = [];
        const round = async () => {
            const rec = await autoscaleRound(env, { stdout: sink, stderr: logStream }, quiet);
            records.push(rec);
            return rec;
        };

        // Load: ~24 MiB of 1 KB values with an 8 s TTL (about 27 % of each master's maxmemory), and traffic that checks every write.
        const value = "x".repeat(1000);
        const traffic = startTraffic(data, "t1");
        const loadUntil = Date.now() + 40_000;
        let n = 0;
        let stopLoad = false;
        const load = (async () => {
            // Rewrites keep the TTL fresh while the load lasts.
            while (Date.now() < loadUntil && !stopLoad) {
                const batch = Array.from({ length: 2000 }, (_, i) => `bulk:${(n + i) % 24000}`);
                await Promise.all(batch.map((k) => data!.set(k, value, "PX", 8000)));
                n += 2000;
                if (n >= 24000) await sleep(300);
            }
        })();
        let grown: DecisionRecord | undefined;
        const t0 = Date.now();
        while (!grown && Date.now() - t0 < 45_000) {
            const rec = await round();
            if (rec.action === "add-shards") grown = rec;
            else await sleep(1000);
        }
        stopLoad = true;
        await load;
        await traffic.stop();
        assert.ok(grown, `no scale-out in 45 s:\n${log.join("\n")}`);
        assert.deepEqual([grown.from, grown.to, grown.outcome], [3, 4, "done"], log.join("\n"));
        assert.match(grown.reason, /master memory [\d.]+ % above the 20 % target for 2 sample\(s\)/);
        assert.equal(new Set(topology().nodes.map((x) => x.shard)).size, 4);
        assert.deepEqual(traffic.errors, [], "no client error reached the application");
        assert.deepEqual(await missingKeys(data, traffic.acked), [], "every acknowledged write is readable after the scale-out");
        const grownAt = Date.now();
        t.diagnostic(`scale-out decided ${((grownAt - t0 - (grown.ms ?? 0)) / 1000).toFixed(1)} s after the load started, applied in ${((grown.ms ?? 0) / 1000).toFixed(1)} s; ${traffic.ops()} client ops, 0 errors`);

        // The load stops; its keys expire; the cluster shrinks back after the cool-down and the window.
        // Writes go on (a scale-in must not fail a client) over a bounded key set, so they do
        // not themselves hold memory above the scale-in threshold while the load's keys expire.
        const traffic2 = startTraffic(data, "t2", 500);
        let shrunk: DecisionRecord | undefined;
        const held = new Set<string>();
        while (!shrunk && Date.now() - grownAt < 45_000) {
            const rec = await round();
            if (rec.heldBy) held.add(rec.heldBy);
            if (rec.action === "remove-shards") shrunk = rec;
            else await sleep(1000);
        }
        await traffic2.stop();
        assert.ok(shrunk, `no scale-in within 45 s:\n${log.slice(-15).join("\n")}`);
        assert.deepEqual([shrunk.from, shrunk.to, shrunk.outcome], [4, 3, "done"], log.join("\n"));
        assert.ok(Date.now() - grownAt >= 3000, "waited out the scale-in cool-down");
        t.diagnostic(`scale-in ${((Date.now() - grownAt) / 1000).toFixed(1)} s after the scale-out (load stopped, 8 s TTL, 3 s cool-down, 3 s window), applied in ${((shrunk.ms ?? 0) / 1000).toFixed(1)} s; held by: ${[...held].join(", ")}`);
        assert.ok(held.has("cooldown") || held.has("window"), `held back first by the cool-down or the window: ${[...held].join(", ")}`);
        assert.equal(new Set(topology().nodes.map((x) => x.shard)).size, 3);
        assert.deepEqual(traffic2.errors, [], "no client error during the scale-in");
        assert.deepEqual(await missingKeys(data, new Map([...traffic.acked, ...traffic2.acked])), [], "no key lost across both changes");
        // Every decision was logged, one line each.
        assert.equal(log.filter((l) => /autoscale local stack as: /.test(l)).length, records.length + 2, "one log line per decision plus one per finished action");
    } finally {
        data?.disconnect();
        await down({ ...opts }, quiet).catch(() => undefined);
        killRedisUnder(tmp);
        rmSync(tmp, { recursive: true, force: true });
    }
});
