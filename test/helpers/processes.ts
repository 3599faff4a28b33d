import { readdirSync, readlinkSync } from "node:fs";
import { isServerProcess } from "../../scripts/local/processes";

/** Whether `pid` is a live redis-server (or redis6/valkey) process: local mode's own check. */
export const redisAlive = isServerProcess;

/**
 * Last line of defence for tests that run local mode (daemonized servers): SIGKILLs every
 * redis process whose working directory is under `dir`, after `down` had its chance, so a
 * failed or interrupted `down` never leaves servers running past the test. Returns the pids.
 */
export function killRedisUnder(dir: string): number[] {
    const killed: number[] = [];
    let entries: string[] = [];
    try {
        entries = readdirSync("/proc");
    } catch {
        return killed;
    }
    for (const e of entries) {
        const pid = Number(e);
        if (!Number.isInteger(pid) || pid <= 1 || !redisAlive(pid)) continue;
        let cwd = "";
        try {
            cwd = readlinkSync(`/proc/${pid}/cwd`);
        } catch {
            continue;
        }
        if (cwd !== dir && !cwd.startsWith(dir.endsWith("/") ? dir : dir + "/")) continue;
        try {
            process.kill(pid, "SIGKILL");
            killed.push(pid);
        } catch {
            /* gone meanwhile */
        }
    }
    return killed;
}
