/**
 * Formation benchmark (a script, not a test): `npm run bench:create [-- --sizes 6,60 --runs 3 --node-timeout 5000 --entry bin|tsx]`.
 *
 * The same set of empty redis-server nodes on loopback is formed alternately by
 * `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes` and by our
 * `create` (its command line, start-up included: `node scripts/bin/redis-cluster.js
 * create`, the installed entry point; `--entry tsx` for `node --import tsx scripts/cli.ts`), with CLUSTER RESET HARD between runs. From the moment the tool is
 * spawned, the same poller (every 100 ms, scripts/redis/health.ts) checks "fully
 * formed": every node knows every other, cluster_state:ok everywhere, all slots
 * assigned, slot maps and replica assignments agree, every replica's link is up.
 * Reported per run: when the tool exited, when the cluster was first seen formed,
 * and "ready" = the later of the two; medians and the ratio of the medians.
 *
 * Nodes idle for 2.5 s after start before the first run, so Redis's 2 s
 * "writable delay" after a start does not count (nodes on AWS have been up for minutes).
 */
import { spawn } from "node:child_process";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { startServers, stopAll, redisServerVersion, TestServer } from "../test/helpers/redisServers";
import { NodePool } from "../scripts/redis/pool";
import { checkFormation } from "../scripts/redis/health";
import { parseClusterNodes } from "../scripts/redis/clusterNodes";
import { zoneOf } from "../components/plan/placement";
import { nodeName, Topology } from "../components/topology";
import { opt, oursArgv } from "./args";

interface Run {
    tool: string;
    nodes: number;
    exitMs: number;
    healthyMs: number;
    readyMs: number;
}

const SIZES = opt("sizes", "6,60").split(",").map(Number);
const RUNS = Number(opt("runs", "3"));
const NODE_TIMEOUT = Number(opt("node-timeout", "5000"));
const ROOT = join(__dirname, "..");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function resetAll(pool: NodePool, servers: TestServer[]): Promise<void> {
    await Promise.all(servers.map(async (s) => {
        await pool.call(s.key, "FLUSHALL").catch(() => undefined); // a replica refuses; it holds nothing of its own
        await pool.call(s.key, "CLUSTER", "RESET", "HARD");
    }));
    // Every node alone again; a MEET still in flight could re-add a peer: reset until quiet.
    for (let i = 0; i < 50; i++) {
        const alone = await Promise.all(servers.map(async (s) => parseClusterNodes((await pool.call(s.key, "CLUSTER", "NODES")) as string).length === 1));
        if (alone.every(Boolean)) return;
        await Promise.all(servers.map((s) => pool.call(s.key, "CLUSTER", "RESET", "HARD")));
        await sleep(100);
    }
    throw new Error("nodes did not stay reset");
}

async function measure(tool: string, servers: TestServer[], cmd: string, args: string[]): Promise<Run> {
    const pool = new NodePool({ connectTimeoutMs: 2000 });
    const keys = servers.map((s) => s.key);
    const expect = { keys, replicas: servers.length / 2 };
    const t0 = performance.now();
    let exitMs = -1;
    let output = "";
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const exited = new Promise<number>((res) => child.once("exit", (code) => {
        exitMs = performance.now() - t0;
        res(code ?? -1);
    }));
    let healthyMs = -1;
    let lastProblems: string[] = [];
    while (healthyMs < 0) {
        const { problems } = await checkFormation(pool, expect);
        lastProblems = problems;
        if (problems.length === 0) healthyMs = performance.now() - t0;
        else if (performance.now() - t0 > 120000) break;
        else await sleep(100);
    }
    const code = await exited;
    await pool.close();
    if (code !== 0) throw new Error(`${tool} exited with ${code}:\n${output}`);
    if (healthyMs < 0) throw new Error(`${tool}: not formed after 120 s: ${lastProblems.slice(0, 5).join("; ")}`);
    return { tool, nodes: servers.length, exitMs, healthyMs, readyMs: Math.max(exitMs, healthyMs) };
}

const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main() {
    const [maj, min, patch] = redisServerVersion();
    process.stderr.write(`${new Date().toISOString()}: redis-server ${maj}.${min}.${patch}, ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}, cluster-node-timeout ${NODE_TIMEOUT} ms, ${RUNS} runs per tool and size, our tool: ${oursArgv(ROOT).map((a) => a.replace(ROOT + "/", "")).join(" ")}\n`);
    const results: Run[] = [];
    for (const n of SIZES) {
        const servers = await startServers(n, { clusterNodeTimeoutMs: NODE_TIMEOUT });
        const dir = mkdtempSync(join(tmpdir(), "bench-create-"));
        const pool = new NodePool({ connectTimeoutMs: 2000 });
        try {
            const shards = n / 2;
            const topology: Topology = {
                clusterName: "bench", port: 0, tls: false,
                nodes: servers.map((s, i) => {
                    const shard = i % shards;
                    const r = Math.floor(i / shards);
                    return { name: nodeName("bench", shard, r), shard, az: `local-${"abc"[zoneOf(shard, r, 3)]}`, host: s.host, port: s.port };
                }),
            };
            const topoFile = join(dir, "topology.json");
            writeFileSync(topoFile, JSON.stringify(topology));
            await sleep(2500);
            for (let r = 0; r < RUNS; r++) {
                // Alternate which tool goes first.
                const order = r % 2 === 0 ? ["redis-cli", "create"] : ["create", "redis-cli"];
                for (const tool of order) {
                    await resetAll(pool, servers);
                    await sleep(300); // let the resets settle; not measured
                    const run = tool === "redis-cli"
                        ? await measure(tool, servers, "redis-cli", ["--cluster", "create", ...servers.map((s) => s.key), "--cluster-replicas", "1", "--cluster-yes"])
                        : await measure(tool, servers, process.execPath, [...oursArgv(ROOT), "create", "--topology", topoFile, "-q"]);
                    results.push(run);
                    process.stderr.write(`${n} nodes, ${tool}: exit ${fmt(run.exitMs)}, formed ${fmt(run.healthyMs)}, ready ${fmt(run.readyMs)}\n`);
                }
            }
        } finally {
            await pool.close();
            await stopAll(servers);
            rmSync(dir, { recursive: true, force: true });
        }
    }
    const lines = ["| nodes | tool | exit (median) | formed (median) | ready (median, min–max) |", "|---|---|---|---|---|"];
    for (const n of SIZES) {
        for (const tool of ["redis-cli", "create"]) {
            const rs = results.filter((r) => r.nodes === n && r.tool === tool);
            lines.push(`| ${n} | ${tool === "create" ? "our create" : "redis-cli --cluster create"} | ${fmt(median(rs.map((r) => r.exitMs)))} | ${fmt(median(rs.map((r) => r.healthyMs)))} | ${fmt(median(rs.map((r) => r.readyMs)))} (${fmt(Math.min(...rs.map((r) => r.readyMs)))}–${fmt(Math.max(...rs.map((r) => r.readyMs)))}) |`);
        }
        const cli = median(results.filter((r) => r.nodes === n && r.tool === "redis-cli").map((r) => r.readyMs));
        const ours = median(results.filter((r) => r.nodes === n && r.tool === "create").map((r) => r.readyMs));
        lines.push(`| ${n} | ratio redis-cli / ours (ready) | | | ${(cli / ours).toFixed(2)}× |`);
    }
    process.stdout.write(lines.join("\n") + "\n");
}

main().catch((e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exitCode = 1;
});
