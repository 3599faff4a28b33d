/**
 * Local mode changes shape (issue 17): `npm run local -- --shards 4` then `--shards 3`
 * on a cluster holding keys, through the cluster tool's own `scale`. Every key kept,
 * topology.json lists exactly the servers that run, the removed ones are stopped and
 * the next `npm run local` prints the live slot ranges. On the way, every command's
 * `--json` output is parsed line by line (NDJSON; one line when there are no events).
 *
 * Also: a state folder local mode may not write is a usage error (exit 2), not a bug.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Redis, { Cluster } from "ioredis";
import { Topology } from "../../components/topology";
import { redisAlive, killRedisUnder } from "../helpers/processes";
import { loadKeys, missingKeys, runCli } from "../helpers/cluster";
import { formatRanges, parseClusterNodes } from "../../scripts/plan/clusterNodes";
import { localBasePort } from "../helpers/redisServers";

const ROOT = join(__dirname, "..", "..");

function tsx(script: string, args: string[], opts: { uid?: number; gid?: number } = {}) {
    const r = spawnSync(process.execPath, ["--import", "tsx", script, ...args], { cwd: ROOT, encoding: "utf8", timeout: 120_000, ...opts });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every stdout line is one JSON object (NDJSON); returns them. */
function ndjson(what: string, stdout: string): Record<string, unknown>[] {
    const lines = stdout.split("\n").filter((l) => l !== "");
    assert.ok(lines.length > 0, `${what}: no JSON on stdout`);
    return lines.map((l, i) => {
        try {
            return JSON.parse(l) as Record<string, unknown>;
        } catch {
            assert.fail(`${what}: stdout line ${i + 1} is not JSON: ${l.slice(0, 120)}`);
        }
    });
}

test("local mode: --shards 4 then --shards 3 keeps every key, runs exactly the topology's servers; every command's --json parses", { timeout: 240_000 }, async () => {
    const tmp = mkdtempSync(join(tmpdir(), "rct-local-scale-"));
    const config = join(tmp, "Pulumi.ls.yaml");
    writeFileSync(config, "config:\n  redis-cluster:shards: 3\n  redis-cluster:replicasPerShard: 1\n  redis-cluster:clusterNodeTimeoutMs: 1000\n");
    const state = join(tmp, "state");
    const dir = join(state, "ls");
    const common = ["--stack", "ls", "--config", config, "--state-dir", state];
    const local = (...args: string[]) => tsx("scripts/cli.ts", ["local", ...common, ...args]);
    const topologyFile = join(dir, "topology.json");
    const cli = (...args: string[]) => tsx("scripts/cli.ts", [...args, "--topology", topologyFile, "--json"]);
    const seen = new Map<string, number>(); // node name -> pid, every server this test saw started
    const readTopology = () => JSON.parse(readFileSync(topologyFile, "utf8")) as Topology;
    const pidsNow = (t: Topology) => t.nodes.map((n) => {
        const pid = Number(readFileSync(join(dir, n.name, "redis.pid"), "utf8"));
        seen.set(n.name, pid);
        return pid;
    });
    let data: Cluster | undefined;
    try {
        const up = local("--base-port", String(localBasePort()), "--json");
        assert.equal(up.code, 0, up.stderr);
        assert.deepEqual(ndjson("local up", up.stdout).at(-1)!.shape, { shards: 3, replicas: 1 });
        const creds = JSON.parse(readFileSync(join(dir, "credentials.json"), "utf8")) as { user: string; password: string };
        const t3 = readTopology();
        pidsNow(t3);
        data = new Cluster([{ host: "127.0.0.1", port: t3.nodes[0].port }], { redisOptions: { username: creds.user, password: creds.password } });
        const keys = await loadKeys(data, 3000);
        const want = new Map(keys.map((k) => [k, `v-${k}`]));

        // 3 -> 4 shards.
        const out = local("--shards", "4", "--json");
        assert.equal(out.code, 0, out.stderr);
        const outEvents = ndjson("local --shards 4", out.stdout);
        const scaled = outEvents.find((e) => e.event === "scale")!;
        assert.deepEqual(scaled.joined, ["redis-cluster-ls-s3-r0", "redis-cluster-ls-s3-r1"]);
        assert.ok((scaled.keysMoved as number) > 0);
        const last = outEvents.at(-1)!;
        assert.deepEqual([last.shape, last.healthy], [{ shards: 4, replicas: 1 }, true]);
        const t4 = readTopology();
        assert.equal(t4.nodes.length, 8);
        assert.deepEqual(t4.nodes.slice(0, 6), t3.nodes, "existing nodes keep name, zone and port");
        assert.ok(pidsNow(t4).every(redisAlive));
        assert.deepEqual(await missingKeys(data, want), []);

        // Every command's --json on the 4-shard cluster: one line, or NDJSON events then the result.
        // The ones that take no lease run side by side; create, replicate and forget take the
        // cluster lease (docs/lease.md) and would refuse each other's, so they run one at a time.
        const json = (...args: string[]) => runCli([...args, "--topology", topologyFile, "--json"]);
        const [status, scaleDry, rebalanceDry, reconfigureDry, [create, rep, forget]] = await Promise.all([
            json("status"), json("scale", "--dry-run"), json("rebalance", "--dry-run"), json("reconfigure", "--dry-run"),
            (async () => [await json("create"), await json("replicate", "redis-cluster-ls-s0-r1", "0"), await json("forget", "no-such-node")])(),
        ]);
        const lines = (name: string, r: { code: number | null; stdout: string; stderr: string }, code = 0) => {
            assert.equal(r.code, code, `${name}: ${r.stderr}`);
            return ndjson(name, r.stdout);
        };
        assert.deepEqual(lines("status", status).map((d) => d.healthy), [true]);
        assert.equal(lines("create", create).at(-1)!.alreadyFormed, true);
        assert.deepEqual(lines("scale --dry-run", scaleDry).at(-1)!.slots, 0);
        assert.equal(lines("rebalance --dry-run", rebalanceDry).at(-1)!.dryRun, true);
        assert.equal(lines("reconfigure --dry-run", reconfigureDry).at(-1)!.dryRun, true);
        assert.equal(lines("replicate", rep).at(-1)!.changed, false);
        assert.equal(lines("forget (usage error)", forget, 2).at(-1)!.event, "error");
        const fo = cli("failover", "--shard", "3");
        assert.equal(fo.code, 0, fo.stderr);
        assert.equal(ndjson("failover", fo.stdout).at(-1)!.to, `127.0.0.1:${t4.nodes[7].port}`);
        const rc = cli("reconfigure");
        assert.equal(rc.code, 0, rc.stderr);
        assert.equal(ndjson("reconfigure", rc.stdout).at(-1)!.event, "result");

        // The master of shard 3 is now its r1 (the failover above): scale-in drains it all the same.
        const back = local("--shards", "3", "--json");
        assert.equal(back.code, 0, back.stderr);
        const backEvents = ndjson("local --shards 3", back.stdout);
        assert.deepEqual((backEvents.find((e) => e.event === "scale")!.removed as string[]).sort(), t4.nodes.slice(6).map((n) => `127.0.0.1:${n.port}`).sort());
        assert.deepEqual(backEvents.find((e) => e.event === "stopped")!.nodes, ["redis-cluster-ls-s3-r0", "redis-cluster-ls-s3-r1"]);
        assert.deepEqual(backEvents.at(-1)!.shape, { shards: 3, replicas: 1 });
        const t3b = readTopology();
        assert.deepEqual(t3b.nodes, t3.nodes, "topology.json lists the 6 servers that run");
        assert.ok(pidsNow(t3b).every(redisAlive));
        assert.deepEqual([seen.get("redis-cluster-ls-s3-r0"), seen.get("redis-cluster-ls-s3-r1")].filter((p) => p !== undefined && redisAlive(p)), [], "removed servers stopped");
        assert.ok(!existsSync(join(dir, "redis-cluster-ls-s3-r0")), "removed node's directory deleted");
        assert.deepEqual(await missingKeys(data, want), []);

        // A plain rerun keeps the shape and prints the ranges the masters own now (not contiguous after 3 -> 4 -> 3).
        const again = local();
        assert.equal(again.code, 0, again.stderr);
        const admin = new Redis({ host: "127.0.0.1", port: t3b.nodes[0].port, username: creds.user, password: creds.password });
        try {
            const nodes = parseClusterNodes((await admin.call("CLUSTER", "NODES")) as string);
            for (const m of nodes.filter((n) => n.role === "master")) assert.ok(again.stdout.includes(`(${formatRanges(m.slots)})`), `live ranges of ${m.key} printed: ${formatRanges(m.slots)}`);
        } finally {
            admin.disconnect();
        }
        assert.match(again.stdout, /local cluster already running \(6 nodes\)/);

        const fl = cli("flushall", "--confirm", t3b.clusterName);
        assert.equal(fl.code, 0, fl.stderr);
        ndjson("flushall", fl.stdout);
    } finally {
        data?.disconnect();
        if (existsSync(dir)) local("down");
        for (const pid of seen.values()) if (redisAlive(pid)) process.kill(pid, "SIGKILL");
        killRedisUnder(tmp);
        rmSync(tmp, { recursive: true, force: true });
    }
    assert.deepEqual([...seen.values()].filter(redisAlive), [], "no stray servers");
});

test("local mode: a state folder it may not write is a usage error (exit 2) with the fix, not a bug", () => {
    const tmp = mkdtempSync(join(tmpdir(), "rct-local-ro-"));
    try {
        chmodSync(tmp, 0o755);
        const state = join(tmp, "state");
        mkdirSync(state, { mode: 0o500 });
        chmodSync(state, 0o500);
        // root ignores the mode: run as nobody then, as a user whose .local was created by sudo would be.
        const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
        const r = tsx("scripts/cli.ts", ["local", "--state-dir", state, "--base-port", "47990"], asUser);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, new RegExp(`cannot write its state folder: EACCES on ${state}/dev .*sudo chown -R "\\$\\(id -un\\)" ${state}.*--state-dir DIR`));
        assert.doesNotMatch(r.stderr, /internal error/);
    } finally {
        killRedisUnder(tmp);
        rmSync(tmp, { recursive: true, force: true });
    }
});
