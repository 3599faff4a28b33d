/**
 * Restore benchmark: `npm run cluster -- restore` against what a user has without it,
 * in the same run, into the same 4-master cluster (flushed in between).
 *
 *   npm run bench:restore -- [--keys 1000000] [--value-bytes 64] [--skip-redis-cli] [-- <restore flags>]
 *
 * BENCH_CPU_PROF=DIR writes a V8 CPU profile of our restore to DIR.
 *
 * A 3-master cluster (no replicas) gets the keys (pipelined SETs to each slot's owner) and
 * is backed up with `npm run cluster -- backup --topology … --to DIR` (timed; the size is
 * the backup's). Then:
 *   - ours: `npm run cluster -- restore --from DIR --topology <4 masters>`, whole process,
 *     peak memory (VmHWM of the tool's process);
 *   - without us: for each shard's RDB, a standalone redis-server started on it (load
 *     included), then `redis-cli --cluster import <4 masters> --cluster-from <standalone>
 *     --cluster-copy`, shard after shard.
 * Both end with every key counted on the 4 masters.
 */
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir, cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import Redis from "ioredis";
import { ClusterFixture, startCluster } from "../test/helpers/cluster";
import { startServer, stopServer } from "../test/helpers/redisServers";
import { keySlot } from "../scripts/redis/keySlot";
import { parseClusterNodes, slotOwners } from "../scripts/redis/clusterNodes";
import { args, opt } from "./args";

const ROOT = resolve(__dirname, "..");
const KEYS = Number(opt("keys", "1000000"));
const VALUE_BYTES = Number(opt("value-bytes", "64"));
const SKIP_CLI = args.includes("--skip-redis-cli");
/** Extra restore flags to try (e.g. --memory-mb 64), after `--`. */
const passThrough = args.includes("--") ? args.slice(args.indexOf("--") + 1) : [];

interface RunResult {
    code: number | null;
    ms: number;
    peakRssKiB: number;
    /** user + system CPU seconds of the process (GNU time), when measured */
    cpuSec?: number;
    out: string;
}

/** Runs a process; wall time and, sampled from /proc, its peak resident memory. */
function run(cmd: string, argv: string[]): Promise<RunResult> {
    return new Promise((res) => {
        const t0 = process.hrtime.bigint();
        const p = spawn(cmd, argv, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let peak = 0;
        p.stdout.on("data", (d) => (out += d));
        p.stderr.on("data", (d) => (out += d));
        const sample = setInterval(() => {
            try {
                const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.pid}/status`, "utf8"));
                if (m) peak = Math.max(peak, Number(m[1]));
            } catch { /* exited */ }
        }, 20);
        p.on("exit", (code) => {
            clearInterval(sample);
            res({ code, ms: Number(process.hrtime.bigint() - t0) / 1e6, peakRssKiB: peak, out });
        });
    });
}

async function load(fx: ClusterFixture): Promise<void> {
    const clients = fx.shards.map((sh) => fx.client(sh[0]));
    const nodes = parseClusterNodes(String(await clients[0].call("CLUSTER", "NODES")));
    const owners = slotOwners(nodes);
    const keyOf = (n: { host: string; port: number }) => `${n.host}:${n.port}`;
    const clientById = new Map(nodes.map((n) => [n.id, clients.find((c) => keyOf(c.options as { host: string; port: number }) === n.key)!]));
    const value = "v".repeat(VALUE_BYTES);
    const batch = 20_000;
    for (let i = 0; i < KEYS; i += batch) {
        const pipes = new Map<Redis, ReturnType<Redis["pipeline"]>>();
        for (let k = i; k < Math.min(KEYS, i + batch); k++) {
            const key = `key:${k}`;
            const c = clientById.get(owners[keySlot(Buffer.from(key))]!)!;
            if (!pipes.has(c)) pipes.set(c, c.pipeline());
            pipes.get(c)!.set(key, value);
        }
        await Promise.all([...pipes.values()].map((p) => p.exec()));
    }
}

/**
 * Runs a process under GNU time: wall time, user+system CPU seconds and peak RSS of the process
 * itself (the 20 ms /proc sampling above can miss a short peak).
 */
async function timed(cmd: string, argv: string[]): Promise<RunResult> {
    if (!existsSync("/usr/bin/time")) return run(cmd, argv);
    const f = join(tmpdir(), `bench-time-${process.pid}-${Date.now()}`);
    const r = await run("/usr/bin/time", ["-f", "%U %S %M", "-o", f, cmd, ...argv]);
    const [u, s, m] = readFileSync(f, "utf8").trim().split("\n").pop()!.split(" ").map(Number);
    rmSync(f, { force: true });
    return { ...r, cpuSec: u + s, peakRssKiB: Math.max(r.peakRssKiB, m) };
}

/** CPU seconds (user + system) the cluster's masters have used so far (INFO cpu). */
async function serverCpu(fx: ClusterFixture): Promise<number> {
    let sum = 0;
    for (const sh of fx.shards) {
        const info = String(await fx.client(sh[0]).info("cpu"));
        for (const f of ["used_cpu_sys", "used_cpu_user"]) sum += Number(new RegExp(`${f}:([\\d.]+)`).exec(info)?.[1] ?? 0);
    }
    return sum;
}

/** The 1-minute load average. */
const load1 = (): string => loadavg()[0].toFixed(1);

async function dbsize(fx: ClusterFixture): Promise<number> {
    return (await Promise.all(fx.shards.map((sh) => fx.client(sh[0]).dbsize()))).reduce((a, b) => a + b, 0);
}

async function main(): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), "bench-restore-"));
    const store = join(dir, "store");
    console.error(`bench:restore: ${KEYS} keys × ${VALUE_BYTES} B, 3 -> 4 masters, ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"})`);
    const [src, dst] = await Promise.all([startCluster({ masters: 3, clusterName: "bsrc", clusterNodeTimeoutMs: 5000 }), startCluster({ masters: 4, clusterName: "bdst", clusterNodeTimeoutMs: 5000 })]);
    try {
        let t = Date.now();
        await load(src);
        console.error(`loaded ${await dbsize(src)} keys in ${((Date.now() - t) / 1000).toFixed(1)} s`);

        const cli = join(ROOT, "scripts/cli.ts");
        const b = await run(process.execPath, ["--import", "tsx", cli, "backup", "--topology", src.topologyFile, "--to", store, "--json", "-q"]);
        if (b.code !== 0) throw new Error(`backup failed:\n${b.out}`);
        const backup = JSON.parse(b.out.trim().split("\n").filter((l) => l.startsWith("{")).pop()!);
        console.error(`backup: ${(b.ms / 1000).toFixed(2)} s, ${backup.totalBytes} bytes in ${backup.shards} RDB files`);

        const prof = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
        const loadBefore = load1();
        const cpu0 = await serverCpu(dst);
        const ours = await timed(process.execPath, [...prof, "--import", "tsx", cli, "restore", "--from", store, "--topology", dst.topologyFile, "-q", ...passThrough]);
        if (ours.code !== 0) throw new Error(`restore failed:\n${ours.out}`);
        const serversCpu = (await serverCpu(dst)) - cpu0;
        const oursKeys = await dbsize(dst);
        console.error(
            `ours: ${(ours.ms / 1000).toFixed(2)} s, ${oursKeys} keys on the target, peak RSS ${(ours.peakRssKiB / 1024).toFixed(0)} MiB, ` +
                `CPU: tool ${ours.cpuSec?.toFixed(2) ?? "?"} s, the 4 target masters ${serversCpu.toFixed(2)} s; load average ${loadBefore} before, ${load1()} after`,
        );
        if (oursKeys !== KEYS) throw new Error(`ours left ${oursKeys} keys, expected ${KEYS}`);

        let cliRow: { ms: number; keys: number } | undefined;
        if (!SKIP_CLI) {
            await Promise.all(dst.shards.map((sh) => dst.client(sh[0]).flushall()));
            const rdbDir = join(store, "bsrc", backup.backupId);
            t = Date.now();
            const cliLoad = load1();
            for (let shard = 0; shard < backup.shards; shard++) {
                // What a user does without us: a standalone server on the shard's RDB, then redis-cli's import.
                const rdb = mkdtempSync(join(dir, "standalone-"));
                copyFileSync(join(rdbDir, `shard-${shard}.rdb`), join(rdb, "dump.rdb"));
                // Later arguments win: the harness' own --dir is replaced by the one holding the RDB.
                const s = await startServer({ cluster: false, extraArgs: ["--dir", rdb, "--dbfilename", "dump.rdb"] });
                const r = await run("redis-cli", ["--cluster", "import", dst.shards[0][0].key, "--cluster-from", s.key, "--cluster-copy"]);
                await stopServer(s);
                rmSync(rdb, { recursive: true, force: true });
                if (r.code !== 0) throw new Error(`redis-cli --cluster import failed:\n${r.out.slice(-2000)}`);
            }
            const ms = Date.now() - t;
            cliRow = { ms, keys: await dbsize(dst) };
            console.error(`redis-cli --cluster import: ${(ms / 1000).toFixed(2)} s, ${cliRow.keys} keys on the target; load average ${cliLoad} before, ${load1()} after`);
        }

        const rate = (keys: number, ms: number) => Math.round(keys / (ms / 1000));
        const rows = [
            ["ours (restore)", (ours.ms / 1000).toFixed(2), String(rate(KEYS, ours.ms)), (ours.peakRssKiB / 1024).toFixed(0), ours.cpuSec?.toFixed(2) ?? "?"],
            ...(cliRow ? [["standalone + redis-cli --cluster import --cluster-copy", (cliRow.ms / 1000).toFixed(2), String(rate(cliRow.keys, cliRow.ms)), "-", "-"]] : []),
        ];
        console.log(`\n${KEYS} keys × ${VALUE_BYTES} B, 3-shard backup (${backup.totalBytes} bytes, taken in ${(b.ms / 1000).toFixed(2)} s) -> 4 masters; load average ${load1()} at the end`);
        console.log("| tool | wall s | keys/s | peak RSS MiB | tool CPU s |\n|---|---:|---:|---:|---:|");
        for (const r of rows) console.log(`| ${r.join(" | ")} |`);
        if (cliRow) console.log(`ratio: ours is ${(cliRow.ms / ours.ms).toFixed(1)}× faster end to end`);
    } finally {
        await Promise.all([src.stop(), dst.stop()]);
        rmSync(dir, { recursive: true, force: true });
    }
}

main().catch((e) => {
    console.error(e);
    process.exitCode = 1;
});
