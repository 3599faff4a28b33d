/**
 * Resharding benchmark: `redis-cli --cluster rebalance --cluster-use-empty-masters`
 * against this tool's `rebalance`, on two identical clusters in the same run.
 *
 *   npm run bench:reshard -- [--keys 1000000] [--value-bytes 64] [--delay-ms 2,3]
 *                            [--only loopback|delayed] [--parallel 4] [--batch 1000]
 *                            [--ours-args "--big-key-mb 0"] [--skip-redis-cli]
 *                            [--scale-out] [--entry bin|tsx]
 *
 * BENCH_CPU_PROF=DIR writes a V8 CPU profile of our tool's run to DIR.
 *
 * Per scenario: two clusters of 3 masters (no replicas) each get the same keys
 * (pipelined SETs sent to the owner of each key's slot, so every slot holds
 * keys), one empty master joins each cluster, and once every node agrees and the
 * new master reports cluster_state:ok (a freshly met master refuses queries for
 * about cluster-node-timeout), each tool rebalances one cluster. Both are timed
 * as whole processes (wall clock, tool start-up included).
 *
 * --scale-out times the whole scale-out instead, the join included: the empty
 * master is not joined beforehand; redis-cli runs `--cluster add-node NEW EXISTING`,
 * then (what an operator must wait for, or rebalance fails: the new master refuses
 * MIGRATE with CLUSTERDOWN for about its cluster-node-timeout) this script polls
 * every 20 ms until every node serves and agrees, then `--cluster rebalance
 * --cluster-use-empty-masters`; the time is from add-node's start to rebalance's
 * exit. Ours is one `scale --topology` with the 4-node topology.
 *
 * --entry: how our tool is started. bin (default): `node scripts/bin/redis-cluster.js`,
 * the package's installed entry point (tsx's require hook); tsx: `node --import tsx
 * scripts/cli.ts` (the ESM loader as well: about 0.3 s more start-up here).
 *
 * "delayed" adds latency between the tools and the nodes only. No netem in this
 * kernel, so:
 *   - namespace N holds the nodes, bound to 10.77.0.1 (on N's lo) and 10.99.0.1
 *     (a veth to T), announcing 10.77.0.1: node-to-node traffic (cluster bus,
 *     MIGRATE) stays on N's loopback, undelayed;
 *   - namespace T runs this script, the tools and a delaying proxy (bench/proxy.ts)
 *     listening on 10.77.0.1:<port> (on T's lo) and forwarding to 10.99.0.1:<port>.
 *   In T the announced addresses lead through the proxy, so both tools, which
 *   follow the addresses in CLUSTER NODES, pay the added round trip on every
 *   command they send, while MIGRATE between nodes does not. Setup and loading
 *   use 10.99.0.1 directly. The script measures the resulting round trip (PING).
 */
import { spawn, spawnSync, ChildProcess } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir, cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import Redis from "ioredis";
import { startProxy } from "./proxy";
import { parseClusterNodes, slotOwners } from "../scripts/redis/clusterNodes";
import { freePortPair, waitForPing } from "../test/helpers/redisServers";
import { args, opt, oursArgv } from "./args";

const ROOT = resolve(__dirname, "..");
const KEYS = Number(opt("keys", "1000000"));
const VALUE_BYTES = Number(opt("value-bytes", "64"));
/** Added delay per direction, tool→node and node→tool (ms timers: 2 + 3 gives about 5 ms per round trip). */
const DELAY_MS = opt("delay-ms", "2,3").split(",").map(Number) as [number, number];
const ONLY = opt("only", "");
const PARALLEL = opt("parallel", "4");
const BATCH = opt("batch", "1000");
/** Extra arguments for our tool, space-separated (for experiments, e.g. "--big-key-mb 0"). */
const OURS_EXTRA = opt("ours-args", "").split(" ").filter(Boolean);
const NODE_TIMEOUT = opt("cluster-node-timeout", "5000");
/** For development: skip redis-cli's run (it takes minutes with added latency). */
const SKIP_CLI = args.includes("--skip-redis-cli");
const SCALE_OUT = args.includes("--scale-out");
const ENTRY = opt("entry", "bin");

interface Node {
    /** Announced (what CLUSTER NODES shows, what the tools use). */
    announced: string;
    /** Direct address for setup and loading. */
    direct: { host: string; port: number };
    proc?: ChildProcess;
    dir: string;
}

interface Scenario {
    name: "loopback" | "delayed";
    /** Prefix to run a redis-server where the nodes live. */
    serverPrefix: string[];
    nodes: Node[];
    cleanup: (() => void | Promise<void>)[];
}

/** CRC16/XMODEM mod 16384: the key's hash slot (the keys here carry no {hash tag}). */
const CRC_TABLE = (() => {
    const t = new Uint16Array(256);
    for (let i = 0; i < 256; i++) {
        let c = i << 8;
        for (let k = 0; k < 8; k++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
        t[i] = c;
    }
    return t;
})();
function calculateSlot(key: string): number {
    let crc = 0;
    for (let i = 0; i < key.length; i++) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ key.charCodeAt(i)) & 0xff];
    return crc % 16384;
}

/** Cleanups of the running scenario (servers to kill), also run on SIGTERM. */
const activeCleanups: (() => void | Promise<void>)[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

function client(n: Node): Redis {
    const c = new Redis({ host: n.direct.host, port: n.direct.port, lazyConnect: false, maxRetriesPerRequest: 2, enableReadyCheck: false });
    c.on("error", () => undefined);
    return c;
}

async function startNode(sc: Scenario, n: Node, bind: string[], announceIp?: string): Promise<void> {
    const port = Number(n.announced.split(":")[1]);
    const a = [
        "--port", String(port), "--bind", ...bind, "--dir", n.dir, "--logfile", join(n.dir, "log"), "--daemonize", "no",
        "--save", "", "--appendonly", "no", "--protected-mode", "no",
        "--cluster-enabled", "yes", "--cluster-config-file", join(n.dir, "nodes.conf"), "--cluster-node-timeout", NODE_TIMEOUT,
        ...(announceIp ? ["--cluster-announce-ip", announceIp] : []),
    ];
    const cmd = [...sc.serverPrefix, "redis-server", ...a];
    const proc = spawn(cmd[0], cmd.slice(1), { stdio: "ignore" });
    n.proc = proc;
    sc.cleanup.push(() => {
        if (proc.exitCode === null) proc.kill("SIGKILL");
    });
    await waitForPing(n.direct.host, n.direct.port, {}, 10000, proc, join(n.dir, "log"));
}

async function formCluster(masters: Node[]): Promise<void> {
    const cs = masters.map(client);
    const per = 16384 / masters.length;
    for (let i = 0; i < masters.length; i++) {
        const start = Math.floor(i * per);
        const end = Math.floor((i + 1) * per) - 1;
        await cs[i].call("CLUSTER", "ADDSLOTSRANGE", String(start), String(end));
        await cs[i].call("CLUSTER", "SET-CONFIG-EPOCH", String(i + 1));
    }
    for (const m of masters.slice(1)) {
        const [h, p] = m.announced.split(":");
        await cs[0].call("CLUSTER", "MEET", h, p);
    }
    await settle(masters, masters.length);
    cs.forEach((c) => c.disconnect());
}

/** Waits until every node knows `count` nodes, all agree on the slot map, and all say cluster_state:ok. */
async function settle(nodes: Node[], count: number): Promise<number> {
    const t0 = Date.now();
    const cs = nodes.map(client);
    try {
        for (;;) {
            const views = await Promise.all(cs.map(async (c) => {
                const [[, text], [, info]] = (await c.pipeline().call("CLUSTER", "NODES").call("CLUSTER", "INFO").exec())!;
                return { nodes: parseClusterNodes(text as string), ok: /cluster_state:ok/.test(info as string) };
            }));
            const maps = views.map((v) => slotOwners(v.nodes).join(","));
            if (views.every((v) => v.ok && v.nodes.length === count && !v.nodes.some((n) => n.flags.includes("handshake"))) && maps.every((m) => m === maps[0])) return Date.now() - t0;
            if (Date.now() - t0 > 60000) throw new Error("cluster did not settle within 60 s");
            await sleep(20);
        }
    } finally {
        cs.forEach((c) => c.disconnect());
    }
}

/** Same keys into each cluster: pipelined SETs sent straight to the owner of each key's slot. */
async function load(clusters: Node[][]): Promise<void> {
    const value = "v".repeat(VALUE_BYTES);
    await Promise.all(clusters.map(async (masters) => {
        const cs = masters.map(client);
        const per = 16384 / masters.length;
        const ownerOf = (slot: number) => Math.min(masters.length - 1, Math.floor((slot + 1) / per - 1e-9));
        const chunk = 20000;
        for (let i = 0; i < KEYS; i += chunk) {
            const ps = cs.map((c) => c.pipeline());
            for (let k = i; k < Math.min(KEYS, i + chunk); k++) {
                const key = `key:${k}`;
                ps[ownerOf(calculateSlot(key))].set(key, value);
            }
            const res = await Promise.all(ps.map((p) => p.exec()));
            for (const r of res) for (const [e] of r!) if (e) throw e;
        }
        cs.forEach((c) => c.disconnect());
    }));
}

async function dbsizes(nodes: Node[]): Promise<number[]> {
    return Promise.all(nodes.map(async (n) => {
        const c = client(n);
        try {
            return Number(await c.dbsize());
        } finally {
            c.disconnect();
        }
    }));
}

/** Mean PING round trip in ms over `n` sequential pings to `host:port` (through whatever path that is). */
async function rtt(host: string, port: number, n = 200): Promise<number> {
    const c = new Redis({ host, port, enableReadyCheck: false });
    c.on("error", () => undefined);
    await c.ping();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await c.ping();
    const ms = (performance.now() - t0) / n;
    c.disconnect();
    return ms;
}

function run(cmd: string, argv: string[], logFile: string): Promise<{ code: number; ms: number; out: string }> {
    return new Promise((resolveRun) => {
        const t0 = performance.now();
        const p = spawn(cmd, argv, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        writeFileSync(logFile, "");
        const add = (d: Buffer) => {
            out += d;
            appendFileSync(logFile, d);
        };
        p.stdout.on("data", add);
        p.stderr.on("data", add);
        p.on("exit", (code) => resolveRun({ code: code ?? 1, ms: performance.now() - t0, out }));
    });
}

/** redis-cli --cluster check, asynchronously: in the delayed scenario the proxy runs in this process. */
async function check(node: string): Promise<string> {
    const out = await new Promise<string>((res) => {
        const p = spawn("redis-cli", ["--cluster", "check", node], { stdio: ["ignore", "pipe", "pipe"] });
        let o = "";
        p.stdout.on("data", (d) => (o += d));
        p.stderr.on("data", (d) => (o += d));
        p.on("exit", () => res(o.replace(/\x1b\[[0-9;]*m/g, "")));
    });
    const bad = out.split("\n").filter((l) => /\[ERR\]|\[WARNING\]/.test(l));
    return bad.length ? `PROBLEMS: ${bad.join(" | ")}` : "check OK";
}

interface Row {
    scenario: string;
    tool: string;
    seconds: number;
    moved: number;
    keysPerSec: number;
    check: string;
    total: number;
}

/** CPU seconds (user + sys) each node has used so far. */
async function serverCpu(nodes: Node[]): Promise<number[]> {
    return Promise.all(nodes.map(async (n) => {
        const c = client(n);
        try {
            const info = await c.info("cpu");
            return Number(/used_cpu_user:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]);
        } finally {
            c.disconnect();
        }
    }));
}

/**
 * Runs one tool against one cluster: wall time of the whole sequence (each argv a
 * process, each function a wait between them), keys that reached the new master, check.
 */
async function timed(scenarioName: string, tool: "redis-cli" | "ours", cluster: Node[], dir: string, seq: (string[] | (() => Promise<void>))[]): Promise<Row> {
    const cpu0 = await serverCpu(cluster);
    const t0 = performance.now();
    const r = { code: 0, ms: 0, out: "" };
    for (const [i, step] of seq.entries()) {
        if (typeof step === "function") {
            await step();
            continue;
        }
        log(`${scenarioName}: ${tool}: ${step.map((a) => a.replace(ROOT + "/", "")).join(" ")}`);
        const one = await run("/usr/bin/time", ["-f", "tool cpu: %U s user, %S s sys, %e s wall", ...step], join(dir, `${scenarioName}-${tool}-${i}.log`));
        r.out += one.out;
        r.code = one.code;
        if (one.code !== 0) break;
    }
    r.ms = performance.now() - t0;
    const cpu1 = await serverCpu(cluster);
    const toolCpu = r.out.split("\n").filter((l) => l.startsWith("tool cpu")).join("; ");
    log(`${scenarioName}: ${tool} done in ${(r.ms / 1000).toFixed(2)} s (exit ${r.code}); ${toolCpu}; server cpu ${cpu1.map((v, i) => (v - cpu0[i]).toFixed(2)).join("/")} s`);
    if (r.code !== 0) log(`${tool} failed:\n${r.out.slice(-2000)}`);
    const sizes = await dbsizes(cluster);
    const engine = tool === "ours" ? /in ([\d.]+ (?:ms|s))/.exec(r.out.split("\n").find((l) => l.includes("moved") && !l.startsWith("scale done")) ?? "")?.[1] : undefined;
    return {
        scenario: scenarioName, tool: engine ? `ours (moving: ${engine})` : tool, seconds: r.ms / 1000, moved: sizes[3], keysPerSec: sizes[3] / (r.ms / 1000),
        check: await check(cluster[0].announced), total: sizes.reduce((a, b) => a + b, 0),
    };
}

async function scenario(name: "loopback" | "delayed", dir: string, pre: Partial<Scenario> & { nodeAddr: (i: number) => Promise<Node>; bind: (n: Node) => string[]; announceIp?: string }): Promise<Row[]> {
    const sc: Scenario = { name, serverPrefix: pre.serverPrefix ?? [], nodes: [], cleanup: activeCleanups };
    try {
        for (let i = 0; i < 8; i++) sc.nodes.push(await pre.nodeAddr(i));
        log(`${name}: starting 8 redis-server (cluster-node-timeout ${NODE_TIMEOUT} ms)`);
        await Promise.all(sc.nodes.map((n) => startNode(sc, n, pre.bind(n), pre.announceIp)));
        const A = sc.nodes.slice(0, 4);
        const B = sc.nodes.slice(4, 8);
        await Promise.all([formCluster(A.slice(0, 3)), formCluster(B.slice(0, 3))]);
        let t = Date.now();
        await load([A.slice(0, 3), B.slice(0, 3)]);
        log(`${name}: loaded ${KEYS} keys × ${VALUE_BYTES} B into each cluster in ${((Date.now() - t) / 1000).toFixed(1)} s`);
        if (!SCALE_OUT) {
            for (const cl of [A, B]) {
                const c = client(cl[0]);
                const [h, p] = cl[3].announced.split(":");
                await c.call("CLUSTER", "MEET", h, p);
                c.disconnect();
            }
            t = Date.now();
            await Promise.all([settle(A, 4), settle(B, 4)]);
            log(`${name}: the empty masters joined and are serving after ${Date.now() - t} ms`);
        } else {
            // As after `pulumi up`: the new nodes have been up for a while (Redis holds a master
            // in cluster_state:fail for 2 s after its start, whoever joins it).
            await sleep(2500);
        }
        const [h0, p0] = A[0].announced.split(":");
        const measured = await rtt(h0, Number(p0));
        const direct = await rtt(A[0].direct.host, A[0].direct.port);
        log(`${name}: PING round trip tool→node ${measured.toFixed(2)} ms (direct ${direct.toFixed(2)} ms)`);

        const rows: Row[] = [];
        // redis-cli on cluster A
        const rebalanceCli = ["redis-cli", "--cluster", "rebalance", A[0].announced, "--cluster-use-empty-masters"];
        if (!SKIP_CLI) {
            rows.push(await timed(name, "redis-cli", A, dir, SCALE_OUT
                ? [["redis-cli", "--cluster", "add-node", A[3].announced, A[0].announced], async () => {
                    const ms = await settle(A, 4);
                    log(`${name}: redis-cli: the new master serves ${ms} ms after add-node returned`);
                }, rebalanceCli]
                : [rebalanceCli]));
        }

        // ours on cluster B
        const topo = join(dir, `${name}-topology.json`);
        writeFileSync(topo, JSON.stringify({
            clusterName: `bench-${name}`, port: Number(B[0].announced.split(":")[1]), tls: false,
            nodes: B.map((n, i) => ({ name: `bench-s${i}-r0`, shard: i, az: "local-a", host: n.announced.split(":")[0], port: Number(n.announced.split(":")[1]) })),
        }));
        const ours = [process.execPath, ...(process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []), ...oursArgv(ROOT, ENTRY)];
        rows.push(await timed(name, "ours", B, dir, [[...ours, SCALE_OUT ? "scale" : "rebalance", "--topology", topo, "--parallel", PARALLEL, "--batch", BATCH, ...OURS_EXTRA]]));
        (rows as (Row & { rtt?: number })[]).forEach((r) => ((r as { rtt?: number }).rtt = measured));
        return rows;
    } finally {
        for (const f of sc.cleanup.splice(0).reverse()) await f();
    }
}

async function main(): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), "rcb-bench-"));
    const rows: Row[] = [];
    const nsN = `rcb-n-${process.pid}`;
    const nsT = `rcb-t-${process.pid}`;
    const cleanupNs = () => {
        spawnSync("ip", ["netns", "del", nsN]);
        spawnSync("ip", ["netns", "del", nsT]);
    };
    try {
        if (ONLY !== "delayed") {
            rows.push(...await scenario("loopback", dir, {
                nodeAddr: async (i) => {
                    const port = await freePortPair();
                    const d = join(dir, `lo-${i}`);
                    mkdirp(d);
                    return { announced: `127.0.0.1:${port}`, direct: { host: "127.0.0.1", port }, dir: d };
                },
                bind: () => ["127.0.0.1"],
            }));
        }
        if (ONLY !== "loopback") rows.push(...await delayed(dir, nsN, nsT));
    } finally {
        cleanupNs();
    }
    print(rows);
    rmSync(dir, { recursive: true, force: true });
}

function mkdirp(d: string): void {
    spawnSync("mkdir", ["-p", d]);
}

/** Sets up namespaces N (nodes) and T (tools + proxy), then runs the scenario from inside T. */
async function delayed(dir: string, nsN: string, nsT: string): Promise<Row[]> {
    const inside = process.env.RCB_INSIDE_NS === nsT;
    if (!inside) {
        const sh = (c: string) => {
            const r = spawnSync("sh", ["-c", c], { encoding: "utf8" });
            if (r.status !== 0) throw new Error(`${c}: ${r.stderr}`);
        };
        sh(`ip netns add ${nsN} && ip netns add ${nsT}`);
        sh(`ip link add rcbn${process.pid % 10000} netns ${nsN} type veth peer name rcbt${process.pid % 10000} netns ${nsT}`);
        sh(`ip -n ${nsN} link set lo up && ip -n ${nsT} link set lo up`);
        sh(`ip -n ${nsN} addr add 10.77.0.1/32 dev lo && ip -n ${nsT} addr add 10.77.0.1/32 dev lo`);
        sh(`ip -n ${nsN} addr add 10.99.0.1/24 dev rcbn${process.pid % 10000} && ip -n ${nsN} link set rcbn${process.pid % 10000} up`);
        sh(`ip -n ${nsT} addr add 10.99.0.2/24 dev rcbt${process.pid % 10000} && ip -n ${nsT} link set rcbt${process.pid % 10000} up`);
        // Re-run this script inside T for the delayed scenario only; it prints its rows as JSON.
        const out = join(dir, "delayed-rows.json");
        const child = spawn("ip", ["netns", "exec", nsT, process.execPath, "--import", "tsx", __filename, ...args, "--only", "delayed"], {
            stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, RCB_INSIDE_NS: nsT, RCB_NS_N: nsN, RCB_ROWS: out, RCB_DIR: dir },
        });
        const stop = () => child.kill("SIGTERM");
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
        const status = await new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        if (status !== 0) throw new Error(`delayed scenario failed (exit ${status})`);
        return JSON.parse(readFileSync(out, "utf8"));
    }
    return [];
}

async function insideDelayed(): Promise<void> {
    const nsN = process.env.RCB_NS_N!;
    const dir = process.env.RCB_DIR!;
    const base = 7100;
    const rows = await scenario("delayed", dir, {
        serverPrefix: ["ip", "netns", "exec", nsN],
        nodeAddr: async (i) => {
            const d = join(dir, `ns-${i}`);
            mkdirp(d);
            return { announced: `10.77.0.1:${base + i}`, direct: { host: "10.99.0.1", port: base + i }, dir: d };
        },
        bind: () => ["10.77.0.1", "10.99.0.1"],
        announceIp: "10.77.0.1",
    });
    writeFileSync(process.env.RCB_ROWS!, JSON.stringify(rows));
}

function print(rows: Row[]): void {
    const cpu = cpus()[0]?.model ?? "?";
    const lines = [
        "",
        `${SCALE_OUT ? "Scale-out benchmark (join + rebalance: redis-cli add-node, wait, rebalance vs our scale)" : "Resharding benchmark (rebalance onto a joined empty master)"} — ${new Date().toISOString()} — ${cpus().length} × ${cpu}; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}; ${KEYS} keys × ${VALUE_BYTES} B, 3 → 4 masters; our tool started with --entry ${ENTRY}`,
        "",
        "| scenario | tool | seconds | keys moved | keys/s | cluster check | keys after |",
        "|---|---|---:|---:|---:|---|---:|",
        ...rows.map((r) => `| ${r.scenario}${(r as { rtt?: number }).rtt ? ` (RTT ${(r as { rtt?: number }).rtt!.toFixed(2)} ms)` : ""} | ${r.tool} | ${r.seconds.toFixed(2)} | ${r.moved} | ${Math.round(r.keysPerSec)} | ${r.check} | ${r.total} |`),
        "",
    ];
    for (const sc of ["loopback", "delayed"]) {
        const cli = rows.find((r) => r.scenario === sc && r.tool === "redis-cli");
        const ours = rows.find((r) => r.scenario === sc && r.tool.startsWith("ours"));
        if (cli && ours) lines.push(`${sc}: ours is ${(cli.seconds / ours.seconds).toFixed(1)}× faster than redis-cli (${cli.seconds.toFixed(2)} s vs ${ours.seconds.toFixed(2)} s)`);
    }
    process.stdout.write(lines.join("\n") + "\n");
}

if (process.env.RCB_INSIDE_NS) {
    // Stopped from outside (Ctrl-C, timeout): the scenario's finally kills the servers.
    process.once("SIGTERM", () => {
        for (const f of activeCleanups.splice(0).reverse()) void f();
        process.exit(143);
    });
    // Inside T: the proxy routes 10.77.0.1:<port> → 10.99.0.1:<port>, delayed.
    startProxy(Array.from({ length: 8 }, (_, i) => ({ listenHost: "10.77.0.1", listenPort: 7100 + i, upstreamHost: "10.99.0.1", upstreamPort: 7100 + i })), DELAY_MS.length === 2 ? DELAY_MS : DELAY_MS[0])
        .then(async (servers) => {
            try {
                await insideDelayed();
            } finally {
                for (const s of servers) s.close();
            }
            process.exit(0);
        })
        .catch((e) => {
            process.stderr.write(`${(e as Error).stack}\n`);
            process.exit(1);
        });
} else {
    main().catch((e) => {
        process.stderr.write(`${(e as Error).stack}\n`);
        process.exitCode = 1;
    });
}
