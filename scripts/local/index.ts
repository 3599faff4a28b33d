/**
 * Local mode, the project's embedded default: `npm run local` (or `npm start`; the
 * cluster tool's `local` command, scripts/commands/local.ts) runs the stack's cluster
 * as real redis-server processes on 127.0.0.1.
 *
 *   npm run local [-- up] [--stack dev] [--config FILE] [--state-dir DIR] [--base-port 7000] [--shards N] [--replicas R]
 *   npm run local -- down [--stack dev] [--state-dir DIR]
 *
 * `up` reads Pulumi.<stack>.yaml (parseStackYaml, the same rules as `pulumi up`),
 * renders each node's redis.conf and ACL file with the SAME renderers as the EC2
 * bootstrap (components/bootstrap), zones simulated as labels local-a, local-b, …
 * by the stack's own placement rule, starts shards × (1 + replicas) daemonized
 * servers, forms the cluster with `create`'s executor, prints `status` and how to
 * connect, and returns. State lives in <state-dir>/<stack>/: one directory per
 * node, topology.json (stack-output shape), credentials.json (mode 0600) and
 * settings.json, which the cluster tool picks up by itself for that topology.
 * `up` on a running local cluster reports it and restarts nothing; stopped nodes
 * (after a reboot) are started again with their own files, keeping their identity.
 * Every `up` renders the node files again from the stack config and writes
 * settings.json (the desired cluster-wide settings): after a settings change the
 * files are what a node starts with next, and `npm run cluster -- reconfigure
 * --topology <state>/topology.json` applies them to the running servers (no
 * CONFIG REWRITE: the rendered files stay the source, as on AWS).
 * The shape: a fresh cluster gets the stack config's shards × (1 + replicasPerShard);
 * a running one keeps what it has (topology.json) until --shards/--replicas ask for
 * another shape. Then `up` starts the added nodes (same renderer, same files), runs
 * the cluster tool's `scale` (scripts/commands/scale.ts, in process: the same code
 * as `npm run cluster -- scale`), and only after the scale drained and forgot the
 * removed nodes stops them; topology.json always lists the nodes that run.
 * `down` stops every node (SHUTDOWN NOSAVE as admin, then SIGKILL by pid file) and
 * removes the state directory.
 * `roll [--engine-binary PATH]` re-renders the node files and restarts every node
 * one at a time the way `npm run cluster -- roll` updates EC2 nodes (replicas
 * first, a failover before each master): scripts/commands/roll.ts.
 */
import Redis from "ioredis";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { StackConfig } from "../../components/config";
import { parseNodeName, Topology, TopologyNode, validateTopology } from "../../components/topology";
import { zoneOf } from "../../components/plan/placement";
import { renderRedisConf } from "../../components/bootstrap/redisConf";
import { renderAclFile } from "../../components/bootstrap/acl";
import { ACL_USERS } from "../../components/bootstrap/contract";
import { DesiredNodeSettings, maxmemoryBytesFor, nodeSettingsOf } from "../../components/bootstrap/nodeSettings";
import { readStackConfigFile, SETTINGS_FILE } from "../commands/reconfigure";
import { RefusedError, UsageError, StepError } from "../errors";
import { run as runScale } from "../commands/scale";
import { readView } from "../redis/clusterView";
import { fmtDuration, Output } from "../output";
import { NodePool, TlsSettings } from "../redis/pool";
import { formCluster } from "../redis/form";
import { waitUntil } from "../redis/clusterView";
import { collectStatus } from "../redis/healthReport";
import { evaluateStatus } from "../plan/status";
import { renderStatus } from "../commands/status";
import { findServer, serverAt, ServerBinary } from "../redis/serverBinary";
import { clusterTlsFiles, ensureLocalTls, nodeTlsFiles } from "./tls";
import { isServerProcess, portFree, readPid, stopServerProcess } from "./processes";
import { ensurePrerequisites, realSystem } from "../prereqs";
import { rollLocal, RollOptions } from "../commands/roll";
import { nodeKey } from "../plan/node";

export const REPO_ROOT = resolve(__dirname, "../..");
/**
 * The memory each local node behaves as if it had: `maxmemoryPercent` of it is
 * the node's maxmemory (70 % gives about 269 MiB), as on AWS it is the share of
 * the instance's MemTotal. Every local node shares one machine, so it cannot be
 * that machine's memory.
 */
export const LOCAL_NODE_MEMORY_BYTES = 384 * 1024 * 1024;

export interface LocalOptions {
    stack: string;
    /** Stack config file. @default Pulumi.<stack>.yaml in the repository */
    config?: string;
    /** @default <repo>/.local */
    stateDir?: string;
    /** First client port tried; busy ports (or busy bus ports, +10000) are skipped. @default 7000 */
    basePort: number;
    json?: boolean;
    quiet?: boolean;
    /** Convergence timeout for create, ms. @default 60000 */
    timeout?: number;
    /** Shards to run: a fresh cluster starts with them, a running one is scaled to them. @default the stack config's, or what runs */
    shards?: number;
    /** Replicas per shard, likewise. @default the stack config's, or what runs */
    replicas?: number;
}

/** shards × (1 + replicas) of a local cluster. */
export interface LocalShape {
    shards: number;
    replicas: number;
}

/** The shape a local topology has: its shard count and the replicas of its largest shard. */
export function shapeOf(t: Topology): LocalShape {
    const perShard = new Map<number, number>();
    for (const n of t.nodes) perShard.set(n.shard, (perShard.get(n.shard) ?? 0) + 1);
    return { shards: perShard.size, replicas: Math.max(0, ...[...perShard.values()].map((c) => c - 1)) };
}

/** --shards/--replicas checked by the stack config's rules (components/config.ts). */
function checkShape(opts: Pick<LocalOptions, "shards" | "replicas">, config: StackConfig): void {
    const problems: string[] = [];
    if (opts.shards !== undefined && !(Number.isInteger(opts.shards) && opts.shards >= 3 && opts.shards <= 500)) {
        problems.push(`--shards must be an integer from 3 to 500 (Redis Cluster needs at least 3 masters to keep a majority through one failure) (got ${opts.shards})`);
    }
    if (opts.replicas !== undefined && !(Number.isInteger(opts.replicas) && opts.replicas >= 0 && opts.replicas <= 5)) {
        problems.push(`--replicas must be an integer from 0 to 5 (got ${opts.replicas})`);
    } else if (opts.replicas !== undefined && opts.replicas < config.minReplicasToWrite) {
        problems.push(`--replicas ${opts.replicas} is below minReplicasToWrite (${config.minReplicasToWrite}) of the stack config: every write would be refused`);
    }
    if (problems.length) throw new UsageError(problems.join("\n"));
}

interface LocalCredentials {
    user: string;
    password: string;
    app: { user: string; password: string };
    replication: { user: string; password: string };
}

/** Where a stack's local state lives. */
export function stackDir(opts: Pick<LocalOptions, "stack" | "stateDir">): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(opts.stack)) throw new UsageError(`--stack must be a stack name such as dev (letters, digits, . _ -), got ${JSON.stringify(opts.stack)}`);
    return resolve(opts.stateDir ?? join(REPO_ROOT, ".local"), opts.stack);
}

/** How the tool reaches a local cluster's nodes: over TLS, verified with the local CA, when the topology says tls. */
function localPoolTls(dir: string, topology: Topology): TlsSettings | undefined {
    return topology.tls ? { caFile: clusterTlsFiles(dir).caCert } : undefined;
}

/** The node's files inside the stack dir. */
function nodePaths(dir: string, name: string) {
    const nodeDir = join(dir, name);
    return { nodeDir, conf: join(nodeDir, "redis.conf"), acl: join(nodeDir, "users.acl"), pid: join(nodeDir, "redis.pid"), log: join(nodeDir, "redis.log") };
}

// ---------------------------------------------------------------- redis-server

/**
 * redis-server, installed through the project's one prerequisites list
 * (scripts/prereqs.ts: apt-get or dnf when root, otherwise the exact command).
 * Needs 6.2 or newer (ACL rules, the renderers' version gates).
 */
export function ensureRedisServer(out: Output): ServerBinary {
    ensurePrerequisites("local", { ...realSystem, info: (line) => out.info(line) });
    const found = findServer();
    if (!found) throw new UsageError("redis-server is still not on PATH after installing it; open a new shell or add its directory to PATH");
    const [maj, min] = found.version.split(".").map(Number);
    if (maj < 6 || (maj === 6 && min < 2)) {
        throw new UsageError(`${found.server} is version ${found.version}; local mode needs Redis 6.2 or newer (or Valkey). Upgrade it (e.g. from the Redis APT repository or brew upgrade redis)`);
    }
    return found;
}

// ---------------------------------------------------------------- ports

/** `count` client ports from `base` up whose bus ports (+10000) are free too. */
export async function choosePorts(base: number, count: number): Promise<number[]> {
    const out: number[] = [];
    for (let p = base; out.length < count; p++) {
        if (p + 10000 > 65535) throw new UsageError(`not enough free port pairs from ${base} (port and port+10000 both free); pick another --base-port`);
        if ((await portFree(p)) && (await portFree(p + 10000))) out.push(p);
    }
    return out;
}

// ---------------------------------------------------------------- config and files

export function loadLocalConfig(opts: Pick<LocalOptions, "stack" | "config">): { config: StackConfig; file: string; notes: string[] } {
    const file = resolve(opts.config ?? join(REPO_ROOT, `Pulumi.${opts.stack}.yaml`));
    if (!existsSync(file)) {
        throw new UsageError(`no stack config ${file}: local mode reads the stack's Pulumi.<stack>.yaml (the committed ones: Pulumi.dev.yaml, ...); pass --stack NAME or --config FILE`);
    }
    const config = readStackConfigFile(file, opts.stack);
    return { config, file, notes: [] };
}

/** Topology of the local cluster: names and zones exactly as the stack plans them, loopback addresses. */
export function localTopology(config: StackConfig, ports: number[], opts: { placeholderPorts?: boolean } = {}): Topology {
    const nodes: TopologyNode[] = [];
    let i = 0;
    for (let shard = 0; shard < config.shards; shard++) {
        for (let r = 0; r <= config.replicasPerShard; r++) {
            const zone = zoneOf(shard, r, config.zones);
            nodes.push({ name: `${config.clusterName}-s${shard}-r${r}`, shard, az: `local-${String.fromCharCode(97 + zone)}`, host: "127.0.0.1", port: opts.placeholderPorts ? 0 : ports[i++] });
        }
    }
    return { clusterName: config.clusterName, port: nodes[0].port, tls: config.tls, nodes };
}

/**
 * The local topology of `shape`, keeping the port of every node `current` already has
 * and giving new nodes free port pairs above the highest port in use.
 */
async function reshapedTopology(config: StackConfig, shape: LocalShape, current: Topology): Promise<Topology> {
    const names = localTopology({ ...config, shards: shape.shards, replicasPerShard: shape.replicas }, [], { placeholderPorts: true });
    const portOf = new Map(current.nodes.map((n) => [n.name, n.port]));
    const fresh = await choosePorts(Math.max(...current.nodes.map((n) => n.port)) + 1, names.nodes.filter((n) => !portOf.has(n.name)).length);
    const nodes = names.nodes.map((n) => ({ ...n, port: portOf.get(n.name) ?? fresh.shift()! }));
    return { ...names, port: nodes[0].port, nodes };
}

const password = () => randomBytes(24).toString("base64url");

/** A path relative to the working directory when it is below it, else absolute. */
function rel(p: string): string {
    const r = relative(process.cwd(), p);
    return r && !r.startsWith("..") ? r : p;
}

function writeSecret(path: string, text: string): void {
    writeFileSync(path, text, { mode: 0o600 });
    chmodSync(path, 0o600); // an existing file keeps its mode on write
}

// ---------------------------------------------------------------- processes

function startNode(bin: ServerBinary, paths: ReturnType<typeof nodePaths>, key: string): void {
    const r = spawnSync(bin.server, [paths.conf], { cwd: paths.nodeDir, encoding: "utf8", timeout: 15000 });
    if (r.status !== 0) {
        const log = existsSync(paths.log) ? readFileSync(paths.log, "utf8").trim().split("\n").slice(-8).join("\n    ") : "";
        throw new StepError({
            op: "local", step: "start-server", node: key,
            cause: `${bin.server} ${paths.conf} exited with ${r.status}: ${(r.stderr || r.stdout || "").trim()}${log ? `\n    ${log}` : ""}`,
            state: "the nodes started so far keep running", resume: "npm run local -- down, then npm run local again (a busy port is skipped on a fresh start)",
        });
    }
}

async function waitForNodes(pool: NodePool, keys: string[], timeoutMs: number, signal?: AbortSignal): Promise<void> {
    let last = "";
    await waitUntil(async () => {
        const res = await Promise.all(keys.map(async (k) => {
            try {
                // A server that accepts but does not answer (stopped, hung) must not hold the wait
                // for the pool's 30 s command timeout: the deadline and Ctrl-C are checked between polls.
                let timer: NodeJS.Timeout | undefined;
                await Promise.race([
                    pool.call(k, "PING"),
                    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${k} accepts connections but does not answer PING within 1 s`)), 1000))),
                ]).finally(() => clearTimeout(timer));
                return true;
            } catch (e) {
                pool.drop(k);
                last = (e as Error).message;
                return false;
            }
        }));
        return res.every(Boolean);
    }, { timeoutMs, signal, what: "the local servers to answer PING as admin", op: "local up", state: "the servers are started, the cluster is not formed", resume: "run npm run local again: it starts what is stopped and finishes forming (or npm run local -- down)" }, () => last);
}

// ---------------------------------------------------------------- up / down

export interface UpResult {
    /** The cluster was running and formed already; nothing was changed. */
    alreadyRunning: boolean;
    started: string[];
    healthy: boolean;
    topologyFile: string;
    /** Running nodes whose redis.conf this run re-rendered (a settings change): `reconfigure` applies it to them. */
    settingsPending: string[];
}

/**
 * `signal`: the command's Ctrl-C (the CLI wrapper's); without one (a program calling `up`),
 * `up` listens for SIGINT itself while it forms and scales.
 */
export async function up(opts: LocalOptions, out: Output, signal?: AbortSignal): Promise<UpResult> {
    const t0 = Date.now();
    const dir = stackDir(opts);
    const topologyFile = join(dir, "topology.json");
    const credentialsFile = join(dir, "credentials.json");
    const loaded = loadLocalConfig(opts);
    const { file, notes } = loaded;
    for (const n of notes) out.warn(n);
    checkShape(opts, loaded.config);
    const bin = ensureRedisServer(out);

    let topology: Topology;
    let creds: LocalCredentials;
    const fresh = !existsSync(topologyFile);
    // A fresh cluster gets the options' shape, else the stack config's; a running one keeps its own unless asked.
    let config: StackConfig = { ...loaded.config, shards: opts.shards ?? loaded.config.shards, replicasPerShard: opts.replicas ?? loaded.config.replicasPerShard };
    if (fresh) {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const count = config.shards * (1 + config.replicasPerShard);
        topology = localTopology(config, await choosePorts(opts.basePort, count));
        creds = {
            user: ACL_USERS.admin, password: password(),
            app: { user: ACL_USERS.app, password: password() },
            replication: { user: ACL_USERS.replication, password: password() },
        };
        // Written first, so `down` finds everything even if this run stops half-way.
        writeSecret(credentialsFile, JSON.stringify(creds, null, 2) + "\n");
        writeFileSync(topologyFile, JSON.stringify(topology, null, 2) + "\n");
        out.info(`local cluster "${config.clusterName}" from ${rel(file)}: ${config.shards} shards × (1 + ${config.replicasPerShard}) = ${count} nodes, ${bin.server} ${bin.version}, state in ${rel(dir)}`);
    } else {
        try {
            topology = validateTopology(JSON.parse(readFileSync(topologyFile, "utf8")), topologyFile);
            creds = JSON.parse(readFileSync(credentialsFile, "utf8")) as LocalCredentials;
        } catch (e) {
            throw new UsageError(`${dir} holds a local cluster whose files cannot be read (${(e as Error).message}); remove it with: npm run local -- down${opts.stack !== "dev" ? ` --stack ${opts.stack}` : ""}`);
        }
        if (topology.tls !== loaded.config.tls) {
            throw new UsageError(`the local cluster in ${dir} runs ${topology.tls ? "with" : "without"} TLS, but ${file} now has tls: ${loaded.config.tls}; TLS is fixed at creation (as on AWS, where it replaces the nodes). ` +
                `Start over: npm run local -- down${opts.stack !== "dev" ? ` --stack ${opts.stack}` : ""} && npm run local`);
        }
        const running = shapeOf(topology);
        const names = localTopology({ ...loaded.config, shards: running.shards, replicasPerShard: running.replicas }, [], { placeholderPorts: true }).nodes.map((n) => n.name).join(",");
        if (names !== topology.nodes.map((n) => n.name).join(",")) {
            throw new UsageError(`the local cluster in ${dir} runs nodes (${topology.nodes.map((n) => n.name).join(", ")}) that are not ${running.shards} shards × (1 + ${running.replicas}) of cluster "${loaded.config.clusterName}" in ${file}; ` +
                `start over: npm run local -- down${opts.stack !== "dev" ? ` --stack ${opts.stack}` : ""} && npm run local`);
        }
        if (opts.shards === undefined && opts.replicas === undefined && (running.shards !== loaded.config.shards || running.replicas !== loaded.config.replicasPerShard)) {
            out.info(`the local cluster runs ${running.shards} shards × (1 + ${running.replicas}); ${rel(file)} declares ${loaded.config.shards} × (1 + ${loaded.config.replicasPerShard}). ` +
                `It keeps its shape; to change it: npm run local -- --shards ${loaded.config.shards} --replicas ${loaded.config.replicasPerShard}`);
        }
        config = { ...loaded.config, shards: running.shards, replicasPerShard: running.replicas };
    }
    const wantShape: LocalShape = { shards: opts.shards ?? config.shards, replicas: opts.replicas ?? config.replicasPerShard };

    // Every run renders the node files from the stack config (what a node starts with next), and
    // settings.json, which `reconfigure` applies to the running servers; running servers are not restarted.
    const rerendered = renderNodeFiles(dir, topology, config, creds, bin);
    writeFileSync(join(dir, SETTINGS_FILE), JSON.stringify(localNodeSettings(config, file), null, 2) + "\n");

    const pool = new NodePool({ credentials: { user: creds.user, password: creds.password }, tls: localPoolTls(dir, topology), connectTimeoutMs: 1000 });
    try {
        // Start what is not running (all of them on a fresh start).
        const started: string[] = [];
        for (const n of topology.nodes) {
            const p = nodePaths(dir, n.name);
            const pid = readPid(p.pid);
            if (pid && isServerProcess(pid)) continue;
            startNode(bin, p, nodeKey(n));
            started.push(n.name);
        }
        const keys = topology.nodes.map(nodeKey);
        await waitForNodes(pool, keys, 20000, signal);
        if (started.length && !fresh) out.info(`started ${started.length} stopped node(s): ${started.join(", ")}`);

        const ac = new AbortController();
        const onSigint = () => ac.abort(signal?.reason);
        if (signal) signal.addEventListener("abort", onSigint, { once: true });
        else process.on("SIGINT", onSigint);
        let already = false;
        let scaled = false;
        try {
            const r = await formCluster(pool, topology, {
                timeoutMs: opts.timeout ?? 60000, out, signal: ac.signal,
                resumeHint: `run npm run local again${opts.stack !== "dev" ? ` -- --stack ${opts.stack}` : ""}: it starts what is stopped and finishes forming`,
            });
            already = r.alreadyFormed;
            // A shape asked for on the command line: scale to it (a rerun finishes an interrupted scale).
            if (!fresh && (opts.shards !== undefined || opts.replicas !== undefined)) {
                const r2 = await reshape({ opts, dir, topologyFile, topology, config, shape: wantShape, creds, bin, pool, out, signal: ac.signal });
                topology = r2.topology;
                config = { ...config, shards: wantShape.shards, replicasPerShard: wantShape.replicas };
                started.push(...r2.started);
                scaled = r2.changed;
            }
        } finally {
            if (signal) signal.removeEventListener("abort", onSigint);
            else process.off("SIGINT", onSigint);
        }
        const report = evaluateStatus(await collectStatus(pool, { ...topology }));
        const alreadyRunning = already && started.length === 0 && !scaled;
        const connect = `redis-cli -c -p ${topology.nodes[0].port}${topology.tls ? ` --tls --cacert ${rel(clusterTlsFiles(dir).caCert)}` : ""} --user ${creds.user} --askpass`;
        // Nodes running since before a settings change keep their values until reconfigure applies them.
        const pending = fresh ? [] : rerendered.filter((name) => !started.includes(name) && topology.nodes.some((n) => n.name === name));
        const reconfigureHint = `npm run cluster -- reconfigure --topology ${rel(topologyFile)}`;
        if (out.json) {
            out.result({ alreadyRunning, healthy: report.healthy, shape: shapeOf(topology), topologyFile, credentialsFile, connect, settingsPending: pending, status: report }, "");
        } else {
            out.result(null, renderStatus(report));
            const lines = [
                alreadyRunning
                    ? `local cluster already running (${topology.nodes.length} nodes); ${pending.length ? "no server restarted" : "nothing changed"}`
                    : `local cluster ${scaled ? "scaled" : "up"} in ${fmtDuration(Date.now() - t0)}: ${shapeOf(topology).shards} shards × (1 + ${shapeOf(topology).replicas}) = ${topology.nodes.length} nodes`,
                ...(pending.length ? [
                    `settings:  node settings changed in ${rel(file)}: redis.conf re-rendered for ${pending.length} running node(s), which keep the old values until`,
                    `           ${reconfigureHint}`,
                ] : []),
                `connect:   ${connect}`,
                `           (password: "password" in ${rel(credentialsFile)}, mode 0600; applications use user "${creds.app.user}", "app.password")`,
                `tool:      npm run cluster -- status --topology ${rel(topologyFile)}`,
                `stop:      npm run local -- down${opts.stack !== "dev" ? ` --stack ${opts.stack}` : ""}${opts.stateDir ? ` --state-dir ${opts.stateDir}` : ""}`,
            ];
            process.stdout.write(lines.join("\n") + "\n");
        }
        return { alreadyRunning, started, healthy: report.healthy, topologyFile, settingsPending: pending };
    } finally {
        await pool.close();
    }
}

/** The desired node settings of the local cluster, written as settings.json beside topology.json for `reconfigure`. */
export function localNodeSettings(config: StackConfig, file: string): DesiredNodeSettings {
    return {
        version: 1,
        settings: nodeSettingsOf(config),
        // Local mode runs on ports of its own choosing, with whatever redis-server is installed.
        fixed: { tls: config.tls },
        nodeMemoryBytes: LOCAL_NODE_MEMORY_BYTES,
        source: rel(file),
    };
}

/**
 * Renders every node's redis.conf and ACL file from the stack config with the
 * bootstrap's renderers; writes only what changed. Returns the nodes whose
 * redis.conf changed (on a running cluster: a settings change, applied to the
 * running servers by `reconfigure`; the file is what a node starts with next).
 */
function renderNodeFiles(dir: string, topology: Topology, config: StackConfig, creds: LocalCredentials, bin: ServerBinary): string[] {
    const acl = renderAclFile({ adminPassword: creds.password, appPassword: creds.app.password, replicationPassword: creds.replication.password, engineVersion: bin.version });
    const changed: string[] = [];
    for (const n of topology.nodes) mkdirSync(nodePaths(dir, n.name).nodeDir, { recursive: true, mode: 0o700 });
    if (config.tls) ensureLocalTls(dir, config.clusterName, topology.nodes.map((n) => nodePaths(dir, n.name).nodeDir));
    for (const n of topology.nodes) {
        const p = nodePaths(dir, n.name);
        const conf = renderRedisConf({
            config, announceIp: n.host, bindAddresses: [n.host], port: n.port, dataDir: p.nodeDir, aclFile: p.acl,
            maxmemoryBytes: maxmemoryBytesFor(LOCAL_NODE_MEMORY_BYTES, config.maxmemoryPercent), replicationPassword: creds.replication.password,
            logFile: p.log, daemonize: true, pidFile: p.pid, engineVersion: bin.version,
            tls: config.tls ? nodeTlsFiles(p.nodeDir) : undefined,
            node: { name: n.name, shard: n.shard, replica: parseNodeName(n.name)?.replica ?? 0 },
        });
        const same = (path: string, text: string) => existsSync(path) && readFileSync(path, "utf8") === text;
        if (!same(p.acl, acl)) writeSecret(p.acl, acl);
        if (!same(p.conf, conf)) {
            if (existsSync(p.conf)) changed.push(n.name);
            writeSecret(p.conf, conf);
        }
    }
    return changed;
}

/** SHUTDOWN NOSAVE as admin on its own client: no command timer outlives the dropped connection. */
async function shutdown(pool: NodePool, key: string): Promise<void> {
    const c = new Redis(pool.clientOptions(key, { commandTimeout: undefined }));
    c.on("error", () => undefined);
    try {
        await c.connect();
        await c.call("SHUTDOWN", "NOSAVE");
    } catch {
        /* the connection drops as the server exits: expected; SIGKILL follows if it did not */
    } finally {
        if (c.status !== "end") c.disconnect();
    }
}

/**
 * An Output for a command run inside local mode: its events pass through, and its
 * result becomes one more event (`name`), so `--json` stays NDJSON ending with
 * local mode's own result line.
 */
function nestedOutput(out: Output, name: string): Output {
    return {
        json: out.json,
        info: (l) => out.info(l),
        warn: (l) => out.warn(l),
        event: (n, f, h) => out.event(n, f, h),
        // The first line only: the rest speaks of AWS (the smaller `pulumi up`), which local mode does itself.
        result: (doc, text) => out.event(name, (doc ?? {}) as Record<string, unknown>, text.split("\n")[0]),
    };
}

interface ReshapeArgs {
    opts: LocalOptions;
    dir: string;
    topologyFile: string;
    topology: Topology;
    config: StackConfig;
    shape: LocalShape;
    creds: LocalCredentials;
    bin: ServerBinary;
    pool: NodePool;
    out: Output;
    signal: AbortSignal;
}

/**
 * Brings a running local cluster to `shape` with the cluster tool's `scale`, in two
 * steps when nodes are both added and removed (scale does one at a time):
 * - grow: render and start the added nodes, list them in topology.json (so `down`
 *   finds them whatever happens next), then `scale` joins them and moves slots;
 * - shrink: `scale --shards/--replicas` drains the removed masters and makes every
 *   remaining node forget the removed nodes; only then are they stopped, their
 *   directories removed and topology.json cut down.
 * With the shape already reached, `scale` still runs: it finishes what an
 * interrupted run left (open slots, nodes not joined) and moves nothing otherwise.
 */
async function reshape(a: ReshapeArgs): Promise<{ topology: Topology; started: string[]; changed: boolean }> {
    const { dir, topologyFile, config, shape, out } = a;
    const current = shapeOf(a.topology);
    const union: LocalShape = { shards: Math.max(current.shards, shape.shards), replicas: Math.max(current.replicas, shape.replicas) };
    let topology = await reshapedTopology(config, union, a.topology);
    const added = topology.nodes.filter((n) => !a.topology.nodes.some((o) => o.name === n.name));
    const scale = async (cut?: LocalShape) => {
        const code = await runScale(
            { topology: topologyFile, yes: true, json: out.json, shards: cut?.shards, replicas: cut?.replicas },
            { out: nestedOutput(out, "scale"), signal: a.signal },
        );
        if (code !== 0) throw new StepError({ op: "local", step: "scale", state: `topology.json lists the ${topology.nodes.length} running nodes`, resume: `rerun the same npm run local command` });
    };
    if (added.length) {
        out.info(`local: ${current.shards} × (1 + ${current.replicas}) -> ${shape.shards} × (1 + ${shape.replicas}): starting ${added.length} node(s): ${added.map((n) => n.name).join(", ")}`);
        renderNodeFiles(dir, topology, { ...config, shards: union.shards, replicasPerShard: union.replicas }, a.creds, a.bin);
        writeFileSync(topologyFile, JSON.stringify(topology, null, 2) + "\n");
        for (const n of added) startNode(a.bin, nodePaths(dir, n.name), nodeKey(n));
        await waitForNodes(a.pool, added.map(nodeKey), 20000);
    }
    const leaving = topology.nodes.filter((n) => n.shard >= shape.shards || (parseNodeName(n.name)?.replica ?? 0) > shape.replicas);
    if (!added.length && !leaving.length) {
        await scale();
        return { topology, started: [], changed: false };
    }
    if (added.length || !leaving.length) await scale();
    if (leaving.length) {
        // A removed replica that is its shard's master now (after a failover) would take the shard's slots
        // elsewhere and leave the kept nodes without a master: have it hand over first.
        const view = await readView(a.pool, topology.nodes.map(nodeKey));
        const stayingShards = new Set(topology.nodes.filter((n) => n.shard < shape.shards).map((n) => n.shard));
        for (const n of leaving) {
            const me = view.self(nodeKey(n));
            if (stayingShards.has(n.shard) && me?.role === "master" && me.slots.length > 0) {
                const keep = topology.nodes.find((k) => k.shard === n.shard && !leaving.includes(k));
                throw new RefusedError(`${n.name} (${nodeKey(n)}) is the master of shard ${n.shard}, which stays; nothing was changed. Hand its role to a node that stays first ` +
                    `(npm run cluster -- failover --topology ${rel(topologyFile)} --node ${keep?.name}), then rerun this command`);
            }
        }
        out.info(`local: removing ${leaving.length} node(s): ${leaving.map((n) => n.name).join(", ")}`);
        await scale(shape);
        await Promise.all(leaving.map((n) => stopNode(a.pool, dir, n.name, n)));
        for (const n of leaving) rmSync(nodePaths(dir, n.name).nodeDir, { recursive: true, force: true });
        topology = { ...topology, nodes: topology.nodes.filter((n) => !leaving.includes(n)) };
        writeFileSync(topologyFile, JSON.stringify(topology, null, 2) + "\n");
        out.event("stopped", { nodes: leaving.map((n) => n.name) }, `local: stopped ${leaving.length} removed node(s) and deleted their directories`);
    }
    return { topology, started: added.map((n) => n.name), changed: true };
}

/** Stops one node: SHUTDOWN NOSAVE as admin when it answers, SIGKILL after 3 s. Whether it was running. */
async function stopNode(pool: NodePool, dir: string, name: string, node: TopologyNode | undefined): Promise<boolean> {
    const p = nodePaths(dir, name);
    const pid = readPid(p.pid);
    if (pid === undefined || !isServerProcess(pid)) return false;
    await stopServerProcess(pid, name, async () => (node ? shutdown(pool, nodeKey(node)) : undefined), 3000);
    return true;
}

export async function down(opts: LocalOptions, out: Output): Promise<{ stopped: number }> {
    const dir = stackDir(opts);
    if (!existsSync(dir)) {
        out.info(`no local cluster in ${dir}; nothing to stop`);
        return { stopped: 0 };
    }
    let topology: Topology | undefined;
    let creds: LocalCredentials | undefined;
    try {
        topology = validateTopology(JSON.parse(readFileSync(join(dir, "topology.json"), "utf8")), "topology.json");
        creds = JSON.parse(readFileSync(join(dir, "credentials.json"), "utf8")) as LocalCredentials;
    } catch {
        /* half-written state: fall back to the pid files */
    }
    const { readdirSync } = await import("node:fs");
    const names = topology?.nodes.map((n) => n.name) ?? readdirSync(dir).filter((d) => existsSync(join(dir, d, "redis.conf")));
    const pool = new NodePool({ credentials: creds ? { user: creds.user, password: creds.password } : undefined, tls: topology ? localPoolTls(dir, topology) : undefined, connectTimeoutMs: 500 });
    let stopped = 0;
    try {
        await Promise.all(names.map(async (name) => {
            if (await stopNode(pool, dir, name, topology?.nodes.find((n) => n.name === name))) stopped++;
        }));
    } finally {
        await pool.close();
    }
    rmSync(dir, { recursive: true, force: true });
    out.info(`stopped ${stopped} node(s), removed ${dir}`);
    return { stopped };
}

// ---------------------------------------------------------------- roll

/** Stops a node's server (SHUTDOWN, SIGKILL after 10 s) and starts it again with `bin`: `roll`'s action. */
export async function restartLocalNode(dir: string, node: TopologyNode, bin: ServerBinary, pool: NodePool): Promise<void> {
    const p = nodePaths(dir, node.name);
    const pid = readPid(p.pid);
    if (pid && isServerProcess(pid)) await stopServerProcess(pid, node.name, () => shutdown(pool, nodeKey(node)), 10000);
    pool.drop(nodeKey(node));
    startNode(bin, p, nodeKey(node));
}

export type LocalRollOptions = LocalOptions & Pick<RollOptions, "dryRun" | "allowUnavailableShard" | "nodeTimeout" | "takeOverLease"> & { engineBinary?: string };

export async function roll(opts: LocalRollOptions, out: Output, signal: AbortSignal): Promise<number> {
    const dir = stackDir(opts);
    if (!existsSync(join(dir, "topology.json"))) throw new UsageError(`no local cluster in ${dir}: start one with npm run local${opts.stack !== "dev" ? ` -- --stack ${opts.stack}` : ""}`);
    const bin = opts.engineBinary ? serverAt(opts.engineBinary) : ensureRedisServer(out);
    if (!bin) throw new UsageError(`--engine-binary ${opts.engineBinary}: not a redis-server/valkey-server that answers --version`);
    const topology = validateTopology(JSON.parse(readFileSync(join(dir, "topology.json"), "utf8")), "topology.json");
    const creds = JSON.parse(readFileSync(join(dir, "credentials.json"), "utf8")) as LocalCredentials;
    const { config } = loadLocalConfig(opts);
    const pool = new NodePool({ credentials: { user: creds.user, password: creds.password }, connectTimeoutMs: 1000 });
    const running = (n: TopologyNode) => {
        const pid = readPid(nodePaths(dir, n.name).pid);
        return pid && isServerProcess(pid) ? pid : undefined;
    };
    try {
        return await rollLocal({
            dir, binary: bin, pidOf: running,
            startStopped: async () => {
                const stopped = topology.nodes.filter((n) => !running(n));
                for (const n of stopped) startNode(bin, nodePaths(dir, n.name), nodeKey(n));
                return stopped.map((n) => n.name);
            },
            restart: (node) => restartLocalNode(dir, node, bin, pool),
            // A setting that needs a restart, or another binary's version gates: the files a node restarts with.
            beforeRestarts: () => void renderNodeFiles(dir, topology, config, creds, bin),
        }, { ...opts, connectTimeout: 1000 }, { out, signal });
    } finally {
        await pool.close();
    }
}

// ---------------------------------------------------------------- CLI

/**
 * A state folder local mode may not write (EACCES: created by a run as root, e.g.
 * with sudo; EROFS; a file where a folder should be) is the user's to fix, not a bug:
 * a UsageError naming the path and the fix. Undefined for any other error.
 */
export function stateDirProblem(err: unknown, opts: Pick<LocalOptions, "stack" | "stateDir">): UsageError | undefined {
    const e = err as NodeJS.ErrnoException;
    if (!e || !["EACCES", "EPERM", "EROFS", "ENOTDIR", "EEXIST"].includes(e.code ?? "") || typeof e.path !== "string") return undefined;
    let root: string;
    try {
        root = stackDir(opts);
    } catch {
        return undefined;
    }
    const base = resolve(root, "..");
    if (!resolve(e.path).startsWith(base)) return undefined;
    const owner = e.code === "EACCES" || e.code === "EPERM"
        ? ` It is probably owned by another user (a run with sudo creates it as root): sudo chown -R "$(id -un)" ${base},`
        : "";
    return new UsageError(`local mode cannot write its state folder: ${e.code} on ${e.path} (${e.syscall ?? "write"}).${owner} or keep the state elsewhere with --state-dir DIR`);
}
