/**
 * What a user sees when a wait runs out or Ctrl-C stops a command: the CLI run as a
 * subprocess against real redis-server processes, its stderr and exit code (issue 10,
 * item 2: neither may read as "internal error (a bug)", exit 70).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodeName, Topology } from "../../components/topology";
import { ClusterFixture, runCli, spawnCli, startCluster } from "../helpers/cluster";
import { killServer, startServers, stopAll, TestServer } from "../helpers/redisServers";

const started: TestServer[] = [];
const fixtures: ClusterFixture[] = [];
const dirs: string[] = [];
after(async () => {
    await Promise.all([stopAll(started), ...fixtures.map((f) => f.stop())]);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test("create --timeout 1: the wait for convergence runs out with what it waited for, what is left and how to go on (exit 1); doing that works", { timeout: 60_000 }, async () => {
    const servers = await startServers(3, { clusterNodeTimeoutMs: 1000 });
    started.push(...servers);
    const dir = mkdtempSync(join(tmpdir(), "rct-errors-"));
    dirs.push(dir);
    const topology: Topology = {
        clusterName: "t", port: 0, tls: false,
        nodes: servers.map((s, i) => ({ name: nodeName("t", i, 0), shard: i, az: `local-${"abc"[i]}`, host: s.host, port: s.port })),
    };
    const file = join(dir, "topology.json");
    writeFileSync(file, JSON.stringify(topology));

    // 1 ms: gossip needs at least one cluster cron tick (100 ms) to complete a MEET, so this cannot converge in time.
    const r = await runCli(["create", "--topology", file, "--timeout", "1"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /\nerror: create: step "wait-masters" failed\n {2}cause: timed out after 1 ms waiting for the joining master\(s\) [\d.:, ]+ to serve\n {2}left behind: slots assigned, masters joining, replicas not attached\n {2}to continue: run the same create command again .*: it reads the live state and does only the missing steps/);
    assert.doesNotMatch(r.stderr, /internal error|\n {4}at /);

    const again = await runCli(["create", "--topology", file]);
    assert.equal(again.code, 0, again.stderr);
});

test("Ctrl-C during a wait stops at once with exit 130, what was under way and how to go on", { timeout: 60_000 }, async () => {
    const fx = await startCluster({ masters: 3, clusterNodeTimeoutMs: 2000 });
    fixtures.push(fx);
    // A master gone and no replica to take over: rebalance waits (4 × node timeout + 5 s) for the cluster to settle.
    await killServer(fx.shards[2][0]);
    const run = spawnCli(["rebalance", "--topology", fx.topologyFile]);
    const t0 = Date.now();
    while (!/waiting up to \d+ s for the cluster to settle/.test(run.stderrSoFar())) {
        assert.ok(Date.now() - t0 < 20_000, `rebalance did not start waiting: ${run.stderrSoFar()}`);
        await new Promise((r) => setTimeout(r, 50));
    }
    const sent = Date.now();
    run.proc.kill("SIGINT");
    const r = await run.done;
    assert.ok(Date.now() - sent < 3000, `stopped ${Date.now() - sent} ms after Ctrl-C`);
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /interrupt: stopping at the next safe point/);
    assert.match(r.stderr, /\nerror: rebalance: stopped during the wait for the cluster to settle: interrupted \(Ctrl-C\)\n {2}left behind: nothing was changed\n {2}to continue: rerun `rebalance`: it waits for the cluster to settle first\n$/);
    assert.doesNotMatch(r.stderr, /internal error|\n {4}at /);
});
