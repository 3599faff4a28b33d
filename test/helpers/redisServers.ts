/**
 * Test harness: real `redis-server` processes on loopback.
 *
 * Each server gets a temp dir and a free port whose bus port (port + 10000) is free too.
 * Servers run in the foreground as children of the test process; `stopAll()` sends
 * SHUTDOWN NOSAVE, SIGKILLs after a timeout and deletes the dirs, and an `exit` hook
 * kills anything a crashed test left behind.
 */
import { spawn, ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Redis from "ioredis";
import { findServer, ServerBinary } from "../../scripts/redis/serverBinary";
import { portFree } from "../../scripts/local/processes";

export interface TestServer {
    host: string;
    port: number;
    dir: string;
    key: string; // host:port
    proc: ChildProcess;
    /** Args the server was started with (for restarts). */
    args: string[];
    /** Credentials used to shut it down (when ACLs are on). */
    auth?: { user?: string; password?: string; tls?: Redis["options"]["tls"] };
}

export interface StartOptions {
    /** @default "127.0.0.1" */
    host?: string;
    /** @default 2000 (short, so failure detection in tests is quick) */
    clusterNodeTimeoutMs?: number;
    /** Cluster mode. @default true */
    cluster?: boolean;
    /** Extra `--name value` args appended to the command line. */
    extraArgs?: string[];
    /**
     * A full redis.conf to start with instead of the harness' defaults, given the
     * chosen port and dir (e.g. from the bootstrap renderer). The harness adds nothing to it.
     */
    configFile?: (port: number, dir: string) => string;
    /** Credentials for PING/SHUTDOWN when the config turns the default user off. */
    auth?: TestServer["auth"];
    /** Skip the PING wait (for configs that refuse plain connections, e.g. TLS-only). */
    noWait?: boolean;
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
    for (const p of live) {
        try {
            p.kill("SIGKILL");
        } catch {
            /* gone */
        }
    }
});

let found: ServerBinary | undefined;
/** Path of redis-server (the same lookup local mode uses); fails with the install command when it is missing (never skips). */
export function redisServerBinary(): string {
    found ??= findServer();
    if (!found) {
        throw new Error(
            "redis-server is not installed, and the integration tests need it.\n" +
                "  Debian/Ubuntu: sudo apt-get install -y redis-server redis-tools\n" +
                "  Fedora/AL2023: sudo dnf install -y redis6\n" +
                "  macOS:         brew install redis",
        );
    }
    return found.server;
}

/** Server version as [major, minor, patch]. */
export function redisServerVersion(): [number, number, number] {
    redisServerBinary();
    const [maj, min, patch] = found!.version.split(".").map(Number);
    return [maj, min, patch];
}

const handedOut = new Set<number>();
/**
 * Ports handed out by any process of this machine's test runs, one file per port holding
 * the owner's pid. Test files run side by side, each choosing at random: without this, a
 * port one file freed (a killed node) could be taken by the other file's next server, and
 * a client still routing there reads the wrong server's answers (nil, not an error).
 * A claim lasts as long as its process; a dead process' claims are taken over.
 */
const CLAIMS_DIR = join(tmpdir(), "redis-cluster-test-ports");
let claimsCleanup = false;

function claimPort(port: number): boolean {
    mkdirSync(CLAIMS_DIR, { recursive: true });
    const file = join(CLAIMS_DIR, String(port));
    for (let attempt = 0; attempt < 2; attempt++) {
        try {
            writeFileSync(file, String(process.pid), { flag: "wx" });
            if (!claimsCleanup) {
                claimsCleanup = true;
                process.on("exit", () => {
                    for (const p of handedOut) releaseClaim(p);
                });
            }
            return true;
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
            const owner = Number(readFileSync(file, "utf8"));
            if (pidAlive(owner)) return false;
            rmSync(file, { force: true });
        }
    }
    return false;
}

/** Gives a port back, to this process and to the others (its server stopped for good). */
function releaseClaim(port: number): void {
    handedOut.delete(port);
    rmSync(join(CLAIMS_DIR, String(port)), { force: true });
}

function pidAlive(pid: number): boolean {
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
        process.kill(pid, 0);
        return true;
    } catch (e) {
        return (e as NodeJS.ErrnoException).code === "EPERM";
    }
}

/**
 * A port in 20000–29999 whose bus port (port + 10000, so 30000–39999: the two ranges never
 * meet) is also free on `host`, handed out once per machine while this process lives.
 */
export async function freePortPair(host = "127.0.0.1"): Promise<number> {
    for (let i = 0; i < 200; i++) {
        const port = 20000 + Math.floor(Math.random() * 10000);
        if (handedOut.has(port)) continue;
        if (!claimPort(port)) continue;
        handedOut.add(port);
        if ((await portFree(port, host)) && (await portFree(port + 10000, host))) return port;
    }
    throw new Error(`no free port pair found on ${host}`);
}

/**
 * A `--base-port` for local mode: `count` consecutive ports in 40000–44999 (bus ports
 * 50000–54999: no test server and no other block uses either range), claimed machine-wide
 * like freePortPair's, so two test files running local mode side by side never pick
 * each other's ports (one's bus port was once another's client port).
 */
export function localBasePort(count = 20): number {
    for (let i = 0; i < 200; i++) {
        const base = 40000 + count * Math.floor(Math.random() * Math.floor(5000 / count));
        const ports = Array.from({ length: count }, (_, k) => base + k);
        if (ports.some((p) => handedOut.has(p))) continue;
        const got: number[] = [];
        for (const p of ports) {
            if (!claimPort(p)) break;
            got.push(p);
            handedOut.add(p);
        }
        if (got.length === count) return base;
        for (const p of got) releaseClaim(p);
    }
    throw new Error("no free block of local-mode ports");
}

/** Waits until PING answers (with the given auth), or the process exits, or the timeout passes. */
export async function waitForPing(host: string, port: number, auth: TestServer["auth"] = {}, timeoutMs = 10000, proc?: ChildProcess, logFile?: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastErr: unknown;
    while (Date.now() < deadline) {
        if (proc && proc.exitCode !== null) {
            const log = logFile && existsSync(logFile) ? readFileSync(logFile, "utf8").split("\n").slice(-15).join("\n") : "";
            throw new Error(`redis-server on ${host}:${port} exited with code ${proc.exitCode}\n${log}`);
        }
        const c = new Redis({ host, port, username: auth.user, password: auth.password, tls: auth.tls, lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false });
        c.on("error", () => undefined);
        try {
            await c.connect();
            await c.ping();
            c.disconnect();
            return;
        } catch (e) {
            lastErr = e;
            c.disconnect();
        }
        await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`redis-server on ${host}:${port} did not answer PING within ${timeoutMs} ms: ${(lastErr as Error)?.message}`);
}

async function launch(args: string[], host: string, port: number, dir: string, opts: StartOptions): Promise<ChildProcess> {
    const proc = spawn(redisServerBinary(), args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
    live.add(proc);
    proc.once("exit", () => live.delete(proc));
    proc.stderr?.resume();
    if (!opts.noWait) await waitForPing(host, port, opts.auth, 10000, proc, join(dir, "redis.log"));
    return proc;
}

/** Starts one server. */
export async function startServer(opts: StartOptions = {}): Promise<TestServer> {
    const host = opts.host ?? "127.0.0.1";
    const dir = mkdtempSync(join(tmpdir(), "rct-redis-"));
    for (let attempt = 0; ; attempt++) {
        const port = await freePortPair(host);
        let args: string[];
        if (opts.configFile) {
            const confPath = join(dir, "redis.conf");
            writeFileSync(confPath, opts.configFile(port, dir));
            args = [confPath];
        } else {
            args = [
                "--port", String(port), "--bind", host, "--dir", dir,
                "--logfile", join(dir, "redis.log"), "--daemonize", "no",
                "--save", "", "--appendonly", "no", "--protected-mode", "no",
                ...(opts.cluster === false ? [] : [
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", join(dir, "nodes.conf"),
                    "--cluster-node-timeout", String(opts.clusterNodeTimeoutMs ?? 2000),
                ]),
                ...(opts.extraArgs ?? []),
            ];
        }
        try {
            const proc = await launch(args, host, port, dir, opts);
            return { host, port, dir, key: `${host}:${port}`, proc, args, auth: opts.auth };
        } catch (e) {
            if (attempt >= 3) {
                rmSync(dir, { recursive: true, force: true });
                throw e;
            }
            // Most likely a port raced with another test file: try another.
        }
    }
}

/** Starts `count` servers in parallel. */
export async function startServers(count: number, opts: StartOptions = {}): Promise<TestServer[]> {
    const started: TestServer[] = [];
    try {
        await Promise.all(Array.from({ length: count }, async () => {
            started.push(await startServer(opts));
        }));
    } catch (e) {
        await stopAll(started);
        throw e;
    }
    // Stable order (by port) so tests can index them.
    return started.sort((a, b) => a.port - b.port);
}

/** SIGKILLs a server (a crash, for failure tests). Its dir is kept for a restart. */
export async function killServer(s: TestServer): Promise<void> {
    if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
    const exited = new Promise((r) => s.proc.once("exit", r));
    s.proc.kill("SIGKILL");
    await exited;
}

/** Restarts a killed server with the same args and dir (nodes.conf keeps its identity). */
export async function restartServer(s: TestServer, opts: StartOptions = {}): Promise<void> {
    s.proc = await launch(s.args, s.host, s.port, s.dir, { auth: s.auth, ...opts });
}

/** Stops a server: SHUTDOWN NOSAVE, SIGKILL after 2 s, then deletes its dir. */
export async function stopServer(s: TestServer): Promise<void> {
    const p = s.proc;
    if (p.exitCode === null && p.signalCode === null) {
        const exited = new Promise((r) => p.once("exit", r));
        const c = new Redis({ host: s.host, port: s.port, username: s.auth?.user, password: s.auth?.password, tls: s.auth?.tls, lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false });
        c.on("error", () => undefined);
        try {
            await c.connect();
            await c.call("SHUTDOWN", "NOSAVE").catch(() => undefined);
        } catch {
            /* fall through to SIGKILL */
        }
        c.disconnect();
        // Not reachable or refused (a fenced node has every ACL user off): SIGTERM is a clean shutdown too.
        const term = setTimeout(() => p.kill("SIGTERM"), 200);
        const t = setTimeout(() => p.kill("SIGKILL"), 2000);
        await exited;
        clearTimeout(term);
        clearTimeout(t);
    }
    rmSync(s.dir, { recursive: true, force: true });
    releaseClaim(s.port);
}

export async function stopAll(servers: TestServer[]): Promise<void> {
    await Promise.all(servers.map((s) => stopServer(s)));
}
