/**
 * The tool over TLS, end to end, on servers configured exactly as TLS nodes are
 * (the bootstrap's redis.conf and ACL renderers, `tls: true`: `port 0`, so no
 * plaintext port exists, `tls-replication yes`, `tls-cluster yes`) with local
 * mode's certificates (scripts/local/tls.ts): create -> scale 3 -> 4 shards with
 * data (MIGRATE runs node to node, so over TLS) -> failover -> status. The CA is
 * found by the tool beside the topology (<state>/tls/ca.crt), as for local mode.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Redis, { Cluster } from "ioredis";
import { parseStackYaml } from "../../components/config";
import { renderRedisConf } from "../../components/bootstrap/redisConf";
import { renderAclFile } from "../../components/bootstrap/acl";
import { ACL_USERS } from "../../components/bootstrap/contract";
import { nodeName, Topology } from "../../components/topology";
import { ensureLocalTls, clusterTlsFiles } from "../../scripts/local/tls";
import { parseClusterNodes, countSlots } from "../../scripts/plan/clusterNodes";
import { redisServerVersion, startServers, stopAll, TestServer } from "../helpers/redisServers";
import { loadKeys, missingKeys, runCli, waitFor } from "../helpers/cluster";

const PW = { adminPassword: "tls-admin-pw-0123456789", appPassword: "tls-app-pw-0123456789", replicationPassword: "tls-repl-pw-0123456789" };
const servers: TestServer[] = [];
const stateDir = mkdtempSync(join(tmpdir(), "rct-tls-"));
const clients: (Redis | Cluster)[] = [];
after(async () => {
    for (const c of clients) c.disconnect();
    await stopAll(servers);
    rmSync(stateDir, { recursive: true, force: true });
});

test("over TLS only (no plaintext port): create, scale 3 -> 4 shards with data, failover, status", { timeout: 120_000 }, async (t) => {
    const config = parseStackYaml([
        "config:",
        "  redis-cluster:shards: 3",
        "  redis-cluster:replicasPerShard: 1",
        "  redis-cluster:tls: true",
        "  redis-cluster:clusterNodeTimeoutMs: 1000",
        "",
    ].join("\n"), "tls");
    const engineVersion = redisServerVersion().join(".");
    const caFile = ensureLocalTls(stateDir, config.clusterName, []);
    assert.equal(caFile, clusterTlsFiles(stateDir).caCert);
    const ca = readFileSync(caFile, "utf8");
    const tls = { ca, checkServerIdentity: () => undefined };
    const auth = { user: ACL_USERS.admin, password: PW.adminPassword, tls };
    servers.push(...await startServers(8, {
        configFile: (port, dir) => {
            const aclFile = join(dir, "users.acl");
            writeFileSync(aclFile, renderAclFile({ ...PW, engineVersion }));
            ensureLocalTls(stateDir, config.clusterName, [dir]);
            return renderRedisConf({
                config, announceIp: "127.0.0.1", bindAddresses: ["127.0.0.1"], port, dataDir: dir, aclFile,
                maxmemoryBytes: 256 * 1024 * 1024, replicationPassword: PW.replicationPassword,
                tls: { caFile: join(dir, "tls", "ca.crt"), certFile: join(dir, "tls", "redis.crt"), keyFile: join(dir, "tls", "redis.key") },
                logFile: join(dir, "redis.log"), engineVersion,
            });
        },
        auth,
    }));
    const shards = [0, 1, 2, 3].map((i) => servers.slice(2 * i, 2 * i + 2));
    const topologyFile = join(stateDir, "topology.json");
    const writeTopology = (n: number) => {
        const topology: Topology = {
            clusterName: config.clusterName, port: servers[0].port, tls: true,
            nodes: shards.slice(0, n).flatMap((sh, shard) => sh.map((s, r) => ({ name: nodeName(config.clusterName, shard, r), shard, az: `local-${"abc"[(shard + r) % 3]}`, host: s.host, port: s.port }))),
        };
        writeFileSync(topologyFile, JSON.stringify(topology, null, 2));
    };
    writeFileSync(join(stateDir, "credentials.json"), JSON.stringify({ user: ACL_USERS.admin, password: PW.adminPassword }));
    chmodSync(join(stateDir, "credentials.json"), 0o600);
    const admin = (s: TestServer) => {
        const c = new Redis({ host: s.host, port: s.port, username: auth.user, password: auth.password, tls, maxRetriesPerRequest: 1, enableReadyCheck: false });
        c.on("error", () => undefined);
        clients.push(c);
        return c;
    };
    // Nothing listens in plaintext: replication and the bus can only be TLS (tls-replication, tls-cluster).
    assert.deepEqual(await admin(servers[0]).call("CONFIG", "GET", "port"), ["port", "0"]);
    assert.deepEqual(await admin(servers[0]).call("CONFIG", "GET", "tls-cluster"), ["tls-cluster", "yes"]);

    writeTopology(3);
    const created = await runCli(["create", "--topology", topologyFile]);
    assert.equal(created.code, 0, created.stderr);

    const data = new Cluster(shards.slice(0, 3).map((sh) => ({ host: sh[0].host, port: sh[0].port })), {
        redisOptions: { username: ACL_USERS.app, password: PW.appPassword, tls },
    });
    data.on("error", () => undefined);
    clients.push(data);
    const keys = await loadKeys(data, 20000);
    const want = new Map(keys.map((k) => [k, `v-${k}`]));

    writeTopology(4);
    const t0 = Date.now();
    const scaled = await runCli(["scale", "--topology", topologyFile, "--yes"]);
    assert.equal(scaled.code, 0, scaled.stderr);
    const scaleMs = Date.now() - t0;
    const view = parseClusterNodes((await admin(shards[3][0]).call("CLUSTER", "NODES")) as string);
    const newMaster = view.find((n) => n.myself)!;
    assert.ok(countSlots(newMaster.slots) >= 4000, `the new shard holds ${countSlots(newMaster.slots)} slots`);
    const movedHere = Number(await admin(shards[3][0]).call("DBSIZE"));
    assert.ok(movedHere > 3000, `keys MIGRATEd to the new master over TLS: ${movedHere}`);
    assert.deepEqual(await missingKeys(data, want), [], "every key readable after the scale-out");

    const failover = await runCli(["failover", "--topology", topologyFile, "--shard", "0"]);
    assert.equal(failover.code, 0, failover.stderr);
    await waitFor(async () => /role:master/.test((await admin(shards[0][1]).call("INFO", "replication")) as string), 10000, "shard 0's r1 promoted");
    // The old master follows the new one over TLS replication.
    await waitFor(async () => /master_link_status:up/.test((await admin(shards[0][0]).call("INFO", "replication")) as string), 15000, "old master replicating from the new one");

    const status = await runCli(["status", "--topology", topologyFile, "--json"]);
    assert.equal(status.code, 0, status.stderr + status.stdout);
    const report = JSON.parse(status.stdout) as { healthy: boolean };
    assert.equal(report.healthy, true);
    assert.deepEqual(await missingKeys(data, want), [], "every key readable after the failover");
    t.diagnostic(`scale 3 -> 4 over TLS with 20000 keys: ${scaleMs} ms, ${movedHere} keys now on the new master`);
});
