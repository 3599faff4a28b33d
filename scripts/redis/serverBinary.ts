/**
 * Which Redis-compatible server this machine has, and its version: redis-server,
 * AL2023's redis6-server, or valkey-server, in that order. Local mode and the
 * test harness both start servers with it.
 */
import { spawnSync } from "node:child_process";

export interface ServerBinary {
    server: string;
    cli?: string;
    /** "7.0.15"; "0.0.0" when the binary did not say. */
    version: string;
}

/** Path of a command on PATH, or undefined. */
export function which(cmd: string): string | undefined {
    const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
    return r.status === 0 ? r.stdout.trim().split("\n")[0] || undefined : undefined;
}

/** The server at `path` and its version; undefined when it does not run as `<path> --version`. */
export function serverAt(path: string): ServerBinary | undefined {
    const r = spawnSync(path, ["--version"], { encoding: "utf8" });
    if (r.status !== 0) return undefined;
    return { server: path, version: /v=(\d+\.\d+\.\d+)/.exec(r.stdout)?.[1] ?? "0.0.0" };
}

export function findServer(): ServerBinary | undefined {
    for (const [server, cli] of [["redis-server", "redis-cli"], ["redis6-server", "redis6-cli"], ["valkey-server", "valkey-cli"]]) {
        const path = which(server);
        if (!path) continue;
        const out = spawnSync(path, ["--version"], { encoding: "utf8" }).stdout;
        const version = /v=(\d+\.\d+\.\d+)/.exec(out)?.[1] ?? "0.0.0";
        return { server: path, cli: which(cli), version };
    }
    return undefined;
}
