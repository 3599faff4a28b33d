/**
 * Local mode end to end, through its command line: up (rendered configs, ACLs on,
 * healthy cluster, credentials picked up by the tool), up again (no restart),
 * down (processes gone, state removed). `down` always runs in `finally`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { redisAlive, killRedisUnder } from "../helpers/processes";
import { join } from "node:path";
import Redis from "ioredis";
import { Topology } from "../../components/topology";
import { localBasePort } from "../helpers/redisServers";

const ROOT = join(__dirname, "..", "..");

function local(...args: string[]) {
    return spawnSync(process.execPath, ["--import", "tsx", "scripts/cli.ts", "local", ...args], { cwd: ROOT, encoding: "utf8", timeout: 90000 });
}

const alive = redisAlive;

test("local mode: up renders and forms an ACL-protected cluster, a second up changes nothing, down removes it", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "rct-local-"));
    const config = join(tmp, "Pulumi.t.yaml");
    writeFileSync(config, [
        "config:",
        "  redis-cluster:shards: 3",
        "  redis-cluster:replicasPerShard: 1",
        "  redis-cluster:zones: 3",
        "  redis-cluster:clusterNodeTimeoutMs: 1000",
        "",
    ].join("\n"));
    const state = join(tmp, "state");
    const dir = join(state, "t");
    const basePort = localBasePort();
    const common = ["--stack", "t", "--config", config, "--state-dir", state];
    let pids: number[] = [];
    let stopped: number | undefined;
    const readPids = (t: Topology) => t.nodes.map((n) => Number(readFileSync(join(dir, n.name, "redis.pid"), "utf8")));
    try {
        const first = local("up", ...common, "--base-port", String(basePort));
        assert.equal(first.status, 0, first.stderr + first.stdout);
        const topology = JSON.parse(readFileSync(join(dir, "topology.json"), "utf8")) as Topology;
        const creds = JSON.parse(readFileSync(join(dir, "credentials.json"), "utf8")) as { user: string; password: string; app: { user: string; password: string } };
        assert.equal(statSync(join(dir, "credentials.json")).mode & 0o777, 0o600);
        assert.equal(topology.nodes.length, 6);
        assert.deepEqual(topology.nodes.map((n) => `${n.name} ${n.az}`), [
            "redis-cluster-t-s0-r0 local-a", "redis-cluster-t-s0-r1 local-b", "redis-cluster-t-s1-r0 local-b",
            "redis-cluster-t-s1-r1 local-c", "redis-cluster-t-s2-r0 local-c", "redis-cluster-t-s2-r1 local-a",
        ]);
        assert.ok(topology.nodes.every((n) => n.host === "127.0.0.1" && n.port >= basePort));
        // The node files come from the bootstrap renderers: ACL file, daemonized, announce 127.0.0.1.
        const conf = readFileSync(join(dir, topology.nodes[0].name, "redis.conf"), "utf8");
        assert.match(conf, /^aclfile .*users\.acl$/m);
        assert.match(conf, /^cluster-announce-ip 127\.0\.0\.1$/m);
        assert.match(conf, /^daemonize yes$/m);
        assert.match(readFileSync(join(dir, topology.nodes[0].name, "users.acl"), "utf8"), /^user default off/m);
        // Healthy, connect line printed, the password never.
        assert.match(first.stdout, /HEALTHY/);
        assert.match(first.stdout, new RegExp(`redis-cli -c -p ${topology.nodes[0].port} --user admin --askpass`));
        assert.ok(!(first.stdout + first.stderr).includes(creds.password), "admin password printed");
        assert.ok(!(first.stdout + first.stderr).includes(creds.app.password), "app password printed");

        // ACLs: the default user is refused; admin and app work as their rules say.
        const anon = new Redis({ host: "127.0.0.1", port: topology.nodes[0].port, lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
        anon.on("error", () => undefined);
        await anon.connect();
        await assert.rejects(anon.ping(), /NOAUTH/);
        anon.disconnect();
        const app = new Redis.Cluster([{ host: "127.0.0.1", port: topology.nodes[0].port }], { redisOptions: { username: creds.app.user, password: creds.app.password } });
        try {
            await app.set("local-test-key", "v");
            assert.equal(await app.get("local-test-key"), "v");
            await assert.rejects(app.call("FLUSHALL"), /NOPERM/);
        } finally {
            app.disconnect();
        }

        // The cluster tool finds the credentials beside the topology by itself.
        const st = spawnSync(process.execPath, ["--import", "tsx", "scripts/cli.ts", "status", "--topology", join(dir, "topology.json")], { cwd: ROOT, encoding: "utf8" });
        assert.equal(st.status, 0, st.stderr + st.stdout);

        // Up again: reported, nothing restarted.
        pids = readPids(topology);
        assert.ok(pids.every(alive));
        const second = local("up", ...common, "--base-port", String(basePort));
        assert.equal(second.status, 0, second.stderr + second.stdout);
        assert.match(second.stdout, /local cluster already running \(6 nodes\); nothing changed/);
        assert.match(second.stderr, /cluster already formed/);
        assert.deepEqual(readPids(topology), pids);

        // A node that accepts connections but does not answer (stopped): up waits for it, and the
        // first Ctrl-C stops that wait at once (exit 130), saying where it stopped and how to go on.
        process.kill(pids[3], "SIGSTOP");
        stopped = pids[3];
        const third = spawn(process.execPath, ["--import", "tsx", "scripts/cli.ts", "local", "up", ...common], { cwd: ROOT });
        let err = "";
        third.stderr!.on("data", (d) => (err += d));
        const exited = new Promise<number | null>((r) => third.on("exit", (code) => r(code)));
        await new Promise((r) => setTimeout(r, 3000));
        const sent = Date.now();
        third.kill("SIGINT");
        const code = await exited;
        assert.equal(code, 130, err);
        // Measured 4.7 s: the poll under way (≤ 1 s per PING), then ioredis' 2 s disconnect timer for the
        // socket the stopped node cannot close. Before, the wait ignored Ctrl-C and a PING held it 30 s.
        assert.ok(Date.now() - sent < 8000, `exited ${Date.now() - sent} ms after Ctrl-C`);
        assert.match(err, /stopped during the wait for the local servers to answer PING as admin/);
        assert.match(err, /run npm run local again/);
        process.kill(pids[3], "SIGCONT");
        stopped = undefined;

        const d = local("down", ...common);
        assert.equal(d.status, 0, d.stderr);
        assert.match(d.stderr, /stopped 6 node\(s\)/);
        assert.ok(!existsSync(dir), "state dir removed");
        assert.deepEqual(pids.filter(alive), []);
    } finally {
        if (stopped && alive(stopped)) process.kill(stopped, "SIGCONT");
        if (existsSync(dir)) local("down", ...common);
        for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
        killRedisUnder(tmp);
        rmSync(tmp, { recursive: true, force: true });
    }
});
