/**
 * `status` against a real cluster (formed by create): healthy → exit 0; a replica
 * killed → exit 1, its shard named; a master killed → exit 1, the node named as
 * unreachable and flagged failing.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServers, stopAll, killServer, TestServer, redisServerVersion } from "../helpers/redisServers";
import { Topology, TopologyNode, nodeName } from "../../components/topology";
import { zoneOf } from "../../components/plan/placement";
import { NodePool } from "../../scripts/redis/pool";
import { formCluster } from "../../scripts/redis/form";
import { capturedOutput } from "../helpers/output";
import { run as status } from "../../scripts/commands/status";
import { StatusReport } from "../../scripts/plan/status";
import { waitUntil } from "../../scripts/redis/clusterView";

let servers: TestServer[] = [];
const dir = mkdtempSync(join(tmpdir(), "rct-status-"));
const pool = new NodePool({ connectTimeoutMs: 1000 });
after(async () => {
    await pool.close();
    await stopAll(servers);
    rmSync(dir, { recursive: true, force: true });
});

async function statusOf(topologyFile: string): Promise<{ code: number; report: StatusReport }> {
    const { out, stdout } = capturedOutput({ json: true });
    const ac = new AbortController();
    const code = (await status({ topology: topologyFile, json: true, connectTimeout: 500 }, { out, signal: ac.signal })) as number;
    return { code, report: JSON.parse(stdout()) as StatusReport };
}

test("status: healthy exits 0; a killed replica and a killed master exit 1 and are named", async () => {
    servers = await startServers(6, { clusterNodeTimeoutMs: 1000 });
    const nodes: TopologyNode[] = servers.map((x, i) => {
        const shard = i % 3;
        const r = Math.floor(i / 3);
        return { name: nodeName("t", shard, r), shard, az: `local-${"abc"[zoneOf(shard, r, 3)]}`, host: x.host, port: x.port };
    });
    const topology: Topology = { clusterName: "t", port: 0, tls: false, nodes };
    const file = join(dir, "topology.json");
    writeFileSync(file, JSON.stringify(topology));
    await formCluster(pool, topology, { timeoutMs: 20000, out: capturedOutput().out });

    const healthy = await statusOf(file);
    assert.deepEqual(healthy.report.problems, []);
    assert.equal(healthy.code, 0);
    // Read from INFO server: this machine's redis-server, by name and release.
    assert.deepEqual(healthy.report.cluster.engines, [`redis ${redisServerVersion().join(".")}`]);
    assert.equal(healthy.report.shards.length, 3);
    assert.deepEqual(healthy.report.shards.map((g) => g.nodes.map((n) => `${n.name} ${n.role} ${n.masterLinkStatus ?? ""}`.trim())), [
        ["t-s0-r0 master", "t-s0-r1 replica up"], ["t-s1-r0 master", "t-s1-r1 replica up"], ["t-s2-r0 master", "t-s2-r1 replica up"],
    ]);

    // The CLI maps the result to the process exit status.
    const cli = spawnSync(process.execPath, ["--import", "tsx", "scripts/cli.ts", "status", "--topology", file], { encoding: "utf8", cwd: join(__dirname, "..", "..") });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /HEALTHY\n$/);

    // A missing replica: shard 1 has none left.
    await killServer(servers[4]);
    const noReplica = await statusOf(file);
    assert.equal(noReplica.code, 1);
    assert.ok(noReplica.report.problems.some((p) => p.startsWith(`t-s1-r1 (${servers[4].key}) is unreachable: cannot connect to ${servers[4].key}`)), noReplica.report.problems.join("\n"));
    assert.ok(noReplica.report.problems.some((p) => p.startsWith(`shard 1 (master t-s1-r0 (${servers[1].key})) has no working replica (1 declared)`)), noReplica.report.problems.join("\n"));

    // A killed master: named unreachable at once, and flagged fail once the others agree.
    await killServer(servers[0]);
    const r = await waitUntil(async () => {
        const s = await statusOf(file);
        return s.report.cluster.failing.some((f) => f.node === servers[0].key && f.flag === "fail") ? s : undefined;
    }, { timeoutMs: 15000, what: "the killed master to be flagged fail" });
    assert.equal(r.code, 1);
    assert.ok(r.report.problems.some((p) => p.startsWith(`t-s0-r0 (${servers[0].key}) is unreachable`)));
    assert.ok(r.report.problems.some((p) => p.startsWith(`t-s0-r0 (${servers[0].key}) is flagged fail by`)));
});
