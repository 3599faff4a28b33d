/**
 * Test fixture: a real Redis Cluster on loopback, formed directly (ADDSLOTS, MEET,
 * REPLICATE) so that tests of scale/failover/forget do not depend on `create`.
 *
 * The fixture writes a topology file in the stack-output shape that the cluster
 * tool reads (`--topology`), with `${clusterName}-s<shard>-r<replica>` names,
 * and optionally spare servers (started, not joined) for scale-out tests.
 * With `acl: true` the servers run like production: default user off, an `admin`
 * user, replicas authenticating as that user; the password goes to a
 * `credentials.json` (0600) beside the topology, as local mode writes it.
 */
import { spawn, ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import Redis, { Cluster } from "ioredis";
import { Topology, TopologyNode, nodeName } from "../../components/topology";
import { parseClusterNodes, SLOT_COUNT } from "../../scripts/plan/clusterNodes";
import { startServers, stopAll, TestServer } from "./redisServers";

export interface ClusterFixtureOptions {
    masters: number;
    /** @default 0 */
    replicasPerMaster?: number;
    /** Extra servers started but not joined. @default 0 */
    spare?: number;
    /** Default user off, `admin` user with a password. @default false */
    acl?: boolean;
    /** @default "t" */
    clusterName?: string;
    /** @default 2000 */
    clusterNodeTimeoutMs?: number;
    /** Zones assigned round-robin as local-a, local-b, … by (shard + replica). @default 3 */
    zones?: number;
}

export interface ClusterFixture {
    clusterName: string;
    /** Shard i's nodes, r0 first (r0 is the master at start). */
    shards: TestServer[][];
    spare: TestServer[];
    all: TestServer[];
    dir: string;
    topologyFile: string;
    auth?: { user: string; password: string };
    /** An admin client to one node (closed by stop()). */
    client(s: TestServer): Redis;
    /** A cluster client for data (closed by stop()). */
    clusterClient(): Cluster;
    /** Topology node entry for a server (name, shard, az) as the fixture declared it. */
    nodeOf(s: TestServer, shard: number, replica: number): TopologyNode;
    /** Rewrites the topology file with these shards (each r0 first), numbered `shardIds` (default 0..n-1). */
    writeTopology(shards: TestServer[][], file?: string, shardIds?: number[]): string;
    stop(): Promise<void>;
}

export const ADMIN_PASSWORD = "test-admin-pw-0123456789";

export async function startCluster(opts: ClusterFixtureOptions): Promise<ClusterFixture> {
    const replicas = opts.replicasPerMaster ?? 0;
    const spareCount = opts.spare ?? 0;
    const clusterName = opts.clusterName ?? "t";
    const zones = opts.zones ?? 3;
    const auth = opts.acl ? { user: "admin", password: ADMIN_PASSWORD } : undefined;
    const extraArgs = opts.acl
        ? ["--user", "default", "off", "--user", "admin", "on", `>${ADMIN_PASSWORD}`, "~*", "&*", "+@all", "--masteruser", "admin", "--masterauth", ADMIN_PASSWORD]
        : [];
    const total = opts.masters * (1 + replicas) + spareCount;
    const servers = await startServers(total, { clusterNodeTimeoutMs: opts.clusterNodeTimeoutMs ?? 2000, extraArgs, auth });
    const clients: Redis[] = [];
    const clusterClients: Cluster[] = [];
    const dir = mkdtempSync(join(tmpdir(), "rct-cluster-"));
    const fx: ClusterFixture = {
        clusterName,
        shards: [],
        spare: [],
        all: servers,
        dir,
        topologyFile: join(dir, "topology.json"),
        auth,
        client(s) {
            const c = new Redis({ host: s.host, port: s.port, username: auth?.user, password: auth?.password, maxRetriesPerRequest: 1, enableReadyCheck: false });
            c.on("error", () => undefined);
            clients.push(c);
            return c;
        },
        clusterClient() {
            const seeds = fx.shards.map((sh) => ({ host: sh[0].host, port: sh[0].port }));
            const c = new Cluster(seeds, { redisOptions: { username: auth?.user, password: auth?.password }, enableReadyCheck: true });
            c.on("error", () => undefined);
            clusterClients.push(c);
            return c;
        },
        nodeOf(s, shard, replica) {
            return { name: nodeName(clusterName, shard, replica), shard, az: `local-${String.fromCharCode(97 + ((shard + replica) % zones))}`, host: s.host, port: s.port };
        },
        writeTopology(shards, file = fx.topologyFile, shardIds) {
            const topology: Topology = { clusterName, port: shards[0][0].port, tls: false, nodes: shards.flatMap((sh, i) => sh.map((s, r) => fx.nodeOf(s, shardIds?.[i] ?? i, r))) };
            writeFileSync(file, JSON.stringify(topology, null, 2));
            return file;
        },
        async stop() {
            for (const c of clusterClients) c.disconnect();
            for (const c of clients) c.disconnect();
            await stopAll(servers);
            rmSync(dir, { recursive: true, force: true });
        },
    };
    try {
        let k = 0;
        for (let i = 0; i < opts.masters; i++) fx.shards.push(servers.slice(k, (k += 1 + replicas)));
        fx.spare = servers.slice(k);
        if (auth) {
            writeFileSync(join(dir, "credentials.json"), JSON.stringify(auth));
            chmodSync(join(dir, "credentials.json"), 0o600);
        }
        fx.writeTopology(fx.shards);
        await formCluster(fx, opts.masters);
    } catch (e) {
        await fx.stop();
        throw e;
    }
    return fx;
}

async function formCluster(fx: ClusterFixture, masters: number): Promise<void> {
    const members = fx.shards.flat();
    const first = fx.client(members[0]);
    // Even split, as create does.
    let start = 0;
    for (let i = 0; i < masters; i++) {
        const end = Math.floor(((i + 1) * SLOT_COUNT) / masters) - 1;
        const slots = Array.from({ length: end - start + 1 }, (_, k) => start + k);
        await fx.client(fx.shards[i][0]).call("CLUSTER", "ADDSLOTS", ...slots);
        start = end + 1;
    }
    // A distinct epoch per master so no collision handling is needed.
    await Promise.all(fx.shards.map((sh) => fx.client(sh[0]).call("CLUSTER", "SET-CONFIG-EPOCH", String(fx.shards.indexOf(sh) + 1)).catch(() => undefined)));
    for (const s of members.slice(1)) await first.call("CLUSTER", "MEET", s.host, String(s.port));
    await waitFor(async () => {
        const ok = await Promise.all(members.map(async (s) => parseClusterNodes((await fx.client(s).call("CLUSTER", "NODES")) as string).length === members.length));
        return ok.every(Boolean);
    }, 20000, "every node knows every node");
    const ids = await Promise.all(fx.shards.map(async (sh) => (await fx.client(sh[0]).call("CLUSTER", "MYID")) as string));
    for (let i = 0; i < fx.shards.length; i++) {
        for (const r of fx.shards[i].slice(1)) await fx.client(r).call("CLUSTER", "REPLICATE", ids[i]);
    }
    await waitFor(async () => {
        const states = await Promise.all(members.map(async (s) => {
            const info = (await fx.client(s).call("CLUSTER", "INFO")) as string;
            return /cluster_state:ok/.test(info);
        }));
        return states.every(Boolean);
    }, 30000, "cluster_state:ok on every node");
    if (fx.shards[0].length > 1) {
        await waitFor(async () => {
            const up = await Promise.all(fx.shards.flatMap((sh) => sh.slice(1)).map(async (s) => /master_link_status:up/.test((await fx.client(s).call("INFO", "replication")) as string)));
            return up.every(Boolean);
        }, 30000, "replicas in sync");
    }
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        try {
            if (await check()) return;
        } catch {
            /* retry */
        }
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

/** Writes `count` keys spread over all slots through a cluster client (pipelined). Returns the keys. */
export async function loadKeys(c: Cluster, count: number, prefix = "k"): Promise<string[]> {
    const keys = Array.from({ length: count }, (_, i) => `${prefix}:${i}`);
    const chunk = 2000;
    for (let i = 0; i < keys.length; i += chunk) {
        // A cluster pipeline must stay on one node, so send individually (ioredis writes them back to back).
        await Promise.all(keys.slice(i, i + chunk).map((k) => c.set(k, `v-${k}`)));
    }
    return keys;
}

const CLI = resolve(__dirname, "..", "..", "scripts", "cli.ts");

export interface CliRun {
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
}

/** Spawns the cluster tool (`node --import tsx scripts/cli.ts …`) as a child process. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): { proc: ChildProcess; done: Promise<CliRun>; stderrSoFar(): string } {
    const proc = spawn(process.execPath, ["--import", "tsx", CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    proc.stdout!.on("data", (d) => (stdout += d));
    proc.stderr!.on("data", (d) => (stderr += d));
    const done = new Promise<CliRun>((res) => proc.on("exit", (code, signal) => res({ code, signal, stdout, stderr })));
    return { proc, done, stderrSoFar: () => stderr };
}

/** Runs the cluster tool to the end. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
    return spawnCli(args, env).done;
}

/** `redis-cli --cluster check`: the lines it flags ([ERR]/[WARNING]), empty when it finds no problem. */
export async function clusterCheck(node: TestServer, auth?: { user: string; password: string }): Promise<{ problems: string[]; output: string }> {
    const args = ["--cluster", "check", node.key, ...(auth ? ["--user", auth.user, "--pass", auth.password] : [])];
    const out = await new Promise<string>((res) => {
        const p = spawn("redis-cli", args, { stdio: ["ignore", "pipe", "pipe"] });
        let o = "";
        p.stdout.on("data", (d) => (o += d));
        p.stderr.on("data", (d) => (o += d));
        p.on("exit", () => res(o.replace(/\x1b\[[0-9;]*m/g, "")));
    });
    const problems = out.split("\n").filter((l) => /\[ERR\]|\[WARNING\]/.test(l) && !/Using a password/.test(l));
    return { problems, output: out };
}

/**
 * A client that keeps writing new keys and reading back acknowledged ones through an
 * ioredis Cluster (which follows MOVED/ASK and retries TRYAGAIN itself). Every error
 * that reaches the caller is recorded: the tests expect none. With `keys`, each lane
 * rewrites at most that many keys (round robin), so a long run holds its memory flat.
 */
export function startTraffic(c: Cluster, prefix = "w", keys = Infinity): { stop(): Promise<void>; acked: Map<string, string>; errors: string[]; ops(): number } {
    const acked = new Map<string, string>();
    const errors: string[] = [];
    let running = true;
    let ops = 0;
    const loop = async (lane: number) => {
        let i = 0;
        while (running) {
            const key = `${prefix}:${lane}:${i % keys}`;
            const val = `${lane}-${i}-${Date.now()}`;
            try {
                await c.set(key, val);
                acked.set(key, val);
                const back = await c.get(key);
                if (back !== val) errors.push(`read ${key}: got ${back}, want ${val}`);
                if (i > 10) {
                    const old = `${prefix}:${lane}:${Math.floor(Math.random() * Math.min(i, keys))}`;
                    const want = acked.get(old);
                    const got = await c.get(old);
                    if (want !== undefined && got !== want) errors.push(`read ${old}: got ${got}, want ${want}`);
                }
                ops += 3;
            } catch (e) {
                errors.push(`${key}: ${(e as Error).message}`);
            }
            i++;
        }
    };
    const lanes = [0, 1, 2, 3].map(loop);
    return {
        acked,
        errors,
        ops: () => ops,
        async stop() {
            running = false;
            await Promise.all(lanes);
        },
    };
}

/** Reads back every key (pipelined per chunk); returns the keys whose value differs from `want`. */
export async function missingKeys(c: Cluster, want: Map<string, string>): Promise<string[]> {
    const bad: string[] = [];
    const entries = [...want];
    for (let i = 0; i < entries.length; i += 2000) {
        const chunk = entries.slice(i, i + 2000);
        const got = await Promise.all(chunk.map(([k]) => c.get(k)));
        chunk.forEach(([k, v], j) => {
            if (got[j] !== v) bad.push(k);
        });
    }
    return bad;
}

/**
 * What scale left on a node it removed: the nodes its cluster config file lists
 * (1 after CLUSTER RESET: only itself), and whether a new client with `auth` is
 * refused (fenced: every ACL user off).
 */
export async function retiredState(s: TestServer, auth?: { user?: string; password?: string }): Promise<{ knownNodes: number; fenced: boolean }> {
    const lines = readFileSync(join(s.dir, "nodes.conf"), "utf8").split("\n").filter((l) => l && !l.startsWith("vars"));
    const probe = new Redis({ host: s.host, port: s.port, username: auth?.user, password: auth?.password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on("error", () => undefined);
    let fenced = false;
    try {
        await probe.connect();
        await probe.call("CLUSTER", "SLOTS");
    } catch (e) {
        fenced = /WRONGPASS|NOAUTH|disabled|closed/i.test((e as Error).message);
    } finally {
        probe.disconnect();
    }
    return { knownNodes: lines.length, fenced };
}
