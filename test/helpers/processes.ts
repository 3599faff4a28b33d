import { readFileSync } from "node:fs";

/** Whether `pid` is a live redis-server (or redis6/valkey) process. */
export function redisAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("redis");
    } catch {
        return false;
    }
}
