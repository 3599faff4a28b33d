/**
 * An S3 server that honours conditional writes (`If-None-Match: *` on PutObject, 412 when
 * the key exists), which s3rver 3.7 does not: moto's server mode (`python3 -m moto.server`),
 * on loopback, with an aws CLI that can send the header (`--if-none-match`, aws-cli 1.34+ /
 * 2.17+; Debian 12's 2.9 cannot). Both come from pip in this machine's Python, not from
 * Debian (Debian's python3-moto predates conditional writes).
 */
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";

export const PIP_INSTALL = "python3 -m pip install 'moto[server]>=5.0.14' 'awscli>=1.34'";

/** The first aws CLI that knows --if-none-match: the pyenv/pip aws-cli on this machine. */
export function conditionalAwsCli(): string {
    const candidates = [process.env.RCT_CONDITIONAL_AWS, "/root/.pyenv/shims/aws", spawnSync("bash", ["-lc", "command -v aws"], { encoding: "utf8" }).stdout.trim()]
        .filter((p): p is string => !!p && existsSync(p));
    for (const c of candidates) {
        const r = spawnSync(c, ["s3api", "put-object", "--bucket", "b", "--key", "k", "--if-none-match", "*", "--generate-cli-skeleton", "input"], { encoding: "utf8", env: { ...process.env, AWS_CONFIG_FILE: "/dev/null" } });
        if (r.status === 0) return c;
    }
    throw new Error(`no aws CLI that can send If-None-Match (tried ${candidates.join(", ") || "none"}): ${PIP_INSTALL}`);
}

export interface MotoS3 {
    endpoint: string;
    bucket: string;
    env: Record<string, string>;
    stop(): Promise<void>;
}

async function freePort(): Promise<number> {
    return new Promise((res, rej) => {
        const s = createServer();
        s.once("error", rej);
        s.listen(0, "127.0.0.1", () => {
            const port = (s.address() as { port: number }).port;
            s.close(() => res(port));
        });
    });
}

/**
 * Why the conditional-write tests cannot run here, or undefined when they can. moto and a
 * recent aws CLI come from PyPI, which is not one of this project's registries (npm, Debian):
 * on a machine without them those tests are skipped with this reason, not failed.
 */
export function conditionalS3Unavailable(): string | undefined {
    const probe = spawnSync("python3", ["-c", "import moto.server, flask"], { encoding: "utf8" });
    if (probe.status !== 0) return `moto's server mode is not installed for python3 (${PIP_INSTALL})`;
    try {
        conditionalAwsCli();
    } catch (e) {
        return (e as Error).message;
    }
    return undefined;
}

export async function startMotoS3(bucket = "claims-test"): Promise<MotoS3> {
    const probe = spawnSync("python3", ["-c", "import moto.server, flask"], { encoding: "utf8" });
    if (probe.status !== 0) throw new Error(`moto's server mode is not installed for python3: ${PIP_INSTALL}`);
    const port = await freePort();
    const proc: ChildProcess = spawn("python3", ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    proc.stderr!.on("data", (d) => (log += d));
    const endpoint = `http://127.0.0.1:${port}`;
    const env = {
        AWS_ACCESS_KEY_ID: "moto", AWS_SECRET_ACCESS_KEY: "moto", AWS_REGION: "us-east-1", AWS_DEFAULT_REGION: "us-east-1",
        AWS_CONFIG_FILE: "/dev/null", AWS_SHARED_CREDENTIALS_FILE: "/dev/null", AWS_EC2_METADATA_DISABLED: "true",
    };
    const stop = async () => {
        if (proc.exitCode === null && proc.signalCode === null) {
            proc.kill("SIGTERM");
            await new Promise((r) => { const t = setTimeout(() => { proc.kill("SIGKILL"); r(undefined); }, 3000); proc.once("exit", () => { clearTimeout(t); r(undefined); }); });
        }
    };
    const deadline = Date.now() + 30_000;
    for (;;) {
        try {
            const r = await fetch(`${endpoint}/${bucket}`, { method: "PUT" });
            if (r.ok) break;
        } catch { /* not listening yet */ }
        if (proc.exitCode !== null || Date.now() > deadline) {
            await stop();
            throw new Error(`moto server did not start on ${endpoint}: ${log.slice(-500)}`);
        }
        await new Promise((r) => setTimeout(r, 200));
    }
    return { endpoint, bucket, env, stop };
}
