/**
 * Processes of local servers, by pid: the helpers local mode and the test harness
 * (test/helpers) share, so both judge "is it running" and "is the port free" alike.
 */
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { waitUntil } from "../redis/clusterView";

/** Whether nothing listens on `host:port` (we can bind it ourselves). */
export function portFree(port: number, host = "127.0.0.1"): Promise<boolean> {
    return new Promise((res) => {
        const s = createServer();
        s.once("error", () => res(false));
        s.listen(port, host, () => s.close(() => res(true)));
    });
}

/** The pid in a pid file, or undefined when there is none (or it is not a pid). */
export function readPid(path: string): number | undefined {
    try {
        const n = Number(readFileSync(path, "utf8").trim());
        return Number.isInteger(n) && n > 0 ? n : undefined;
    } catch {
        return undefined;
    }
}

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (e) {
        return (e as NodeJS.ErrnoException).code === "EPERM";
    }
}

/**
 * Whether the pid is a live redis/valkey server (where /proc exists; elsewhere we trust
 * the pid file). A zombie (daemonized, parent not reaping) counts as gone: its cmdline is empty.
 */
export function isServerProcess(pid: number): boolean {
    if (!existsSync("/proc/self/cmdline")) return alive(pid);
    try {
        return /redis|valkey/.test(readFileSync(`/proc/${pid}/cmdline`, "utf8"));
    } catch {
        return false;
    }
}

/**
 * Stops a server by pid: `shutdown` first (SHUTDOWN NOSAVE as admin), SIGKILL when it
 * is still running after `graceMs`. Returns once the process is gone.
 */
export async function stopServerProcess(pid: number, name: string, shutdown: () => Promise<void>, graceMs: number): Promise<void> {
    await shutdown();
    const gone = await waitUntil(async () => !isServerProcess(pid), { timeoutMs: graceMs, what: `${name} (pid ${pid}) to exit` }).catch(() => false);
    if (!gone) {
        process.kill(pid, "SIGKILL");
        await waitUntil(async () => !isServerProcess(pid), { timeoutMs: 3000, what: `${name} (pid ${pid}) to exit after SIGKILL` });
    }
}
