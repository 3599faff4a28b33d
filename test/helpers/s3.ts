/**
 * An S3-compatible server on loopback for tests: `s3rver` (npm) in this process,
 * on a random port, storing into a temporary directory removed by `stop()`.
 * Clients use path-style addressing with `endpoint` and the credentials in `env`
 * (s3rver accepts its fixed S3RVER/S3RVER key pair).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "node:http";

export interface S3Fixture {
    endpoint: string;
    bucket: string;
    /** Environment for the SDK and the aws CLI: credentials, region, no config files. */
    env: Record<string, string>;
    stop(): Promise<void>;
}

/** Debian's awscli: the first `aws` on PATH may be a pyenv shim of aws-cli v1. */
export const AWS_CLI = "/usr/bin/aws";

export async function startS3(bucket = "backups-test"): Promise<S3Fixture> {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const S3rver = require("s3rver");
    const dir = mkdtempSync(join(tmpdir(), "rct-s3-"));
    const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
    const addr = (await server.run()) as { port: number };
    const endpoint = `http://127.0.0.1:${addr.port}`;
    const env = {
        AWS_ACCESS_KEY_ID: "S3RVER",
        AWS_SECRET_ACCESS_KEY: "S3RVER",
        AWS_REGION: "us-east-1",
        AWS_DEFAULT_REGION: "us-east-1",
        AWS_CONFIG_FILE: "/dev/null",
        AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
        AWS_EC2_METADATA_DISABLED: "true",
    };
    return {
        endpoint,
        bucket,
        env,
        async stop() {
            const http = server.httpServer as Server;
            http.closeAllConnections?.();
            await server.close().catch(() => undefined);
            rmSync(dir, { recursive: true, force: true });
        },
    };
}
