/**
 * Local mode with a `tls: true` stack: certificates with the AWS names in each
 * node's tls/, TLS-only nodes, the tool reaching them with the local CA by itself,
 * and a refusal to flip tls on a running local cluster. `down` runs in `finally`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Topology } from "../../components/topology";
import { killRedisUnder } from "../helpers/processes";
import { localBasePort } from "../helpers/redisServers";

const ROOT = join(__dirname, "..", "..");
const run = (script: string, ...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", script, ...args], { cwd: ROOT, encoding: "utf8", timeout: 90000 });

test("local mode runs a tls: true stack over TLS with the nodes' AWS file names", { timeout: 120_000 }, () => {
    const tmp = mkdtempSync(join(tmpdir(), "rct-tls-local-"));
    const config = join(tmp, "Pulumi.t.yaml");
    const yaml = (tls: boolean) => ["config:", "  redis-cluster:shards: 3", "  redis-cluster:replicasPerShard: 1", `  redis-cluster:tls: ${tls}`, "  redis-cluster:clusterNodeTimeoutMs: 1000", ""].join("\n");
    writeFileSync(config, yaml(true));
    const state = join(tmp, "state");
    const dir = join(state, "t");
    const common = ["--stack", "t", "--config", config, "--state-dir", state];
    try {
        const up = run("scripts/cli.ts", "local", "up", ...common, "--base-port", String(localBasePort()));
        assert.equal(up.status, 0, up.stderr + up.stdout);
        assert.match(up.stdout, /HEALTHY/);
        assert.match(up.stdout, /--tls --cacert .*tls\/ca\.crt/);
        assert.doesNotMatch(up.stderr, /without TLS/);
        const topology = JSON.parse(readFileSync(join(dir, "topology.json"), "utf8")) as Topology;
        assert.equal(topology.tls, true);
        for (const n of topology.nodes) {
            const conf = readFileSync(join(dir, n.name, "redis.conf"), "utf8");
            assert.match(conf, /^port 0$/m);
            assert.match(conf, new RegExp(`^tls-port ${n.port}$`, "m"));
            assert.match(conf, /^tls-replication yes$/m);
            assert.match(conf, /^tls-cluster yes$/m);
            // The names components/bootstrap gives them under the conf dir (nodeFiles().tls).
            for (const f of ["ca.crt", "redis.crt", "redis.key"]) assert.ok(existsSync(join(dir, n.name, "tls", f)), `${n.name}/tls/${f}`);
            assert.match(conf, new RegExp(`^tls-key-file ${join(dir, n.name, "tls", "redis.key")}$`, "m"));
            assert.equal(statSync(join(dir, n.name, "tls", "redis.key")).mode & 0o077, 0, "key not readable by others");
        }
        // The certificate is the stack's shape: CN = cluster name, server and client auth, signed by the local CA.
        const cert = spawnSync("openssl", ["x509", "-in", join(dir, "tls", "redis.crt"), "-noout", "-subject", "-ext", "extendedKeyUsage,subjectAltName"], { encoding: "utf8" }).stdout;
        assert.match(cert, /CN ?= ?redis-cluster-t/);
        assert.match(cert, /TLS Web Server Authentication, TLS Web Client Authentication/);
        assert.match(cert, /DNS:redis-cluster-t/);
        const verify = spawnSync("openssl", ["verify", "-CAfile", join(dir, "tls", "ca.crt"), join(dir, "tls", "redis.crt")], { encoding: "utf8" });
        assert.equal(verify.status, 0, verify.stderr);

        const status = run("scripts/cli.ts", "status", "--topology", join(dir, "topology.json"));
        assert.equal(status.status, 0, status.stderr + status.stdout);
        assert.match(status.stdout, /HEALTHY/);

        writeFileSync(config, yaml(false));
        const flip = run("scripts/cli.ts", "local", "up", ...common);
        assert.equal(flip.status, 2, flip.stderr);
        assert.match(flip.stderr, /runs with TLS, but .* now has tls: false/);
    } finally {
        const down = run("scripts/cli.ts", "local", "down", ...common);
        killRedisUnder(tmp);
        rmSync(tmp, { recursive: true, force: true });
        assert.equal(down.status, 0, down.stderr);
    }
});
