/**
 * A drill's cluster: redis-server processes started by the test harness on
 * loopback (random ports, killed if the drill dies), each with the redis.conf
 * and ACL file the bootstrap renders for a node (so failover, coverage and
 * replication settings are the production ones), formed with the tool's own
 * `create`. Spare servers (started, not joined) are there for `scale`.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Redis, { Cluster, ClusterOptions } from "ioredis";
import { parseStackYaml, StackConfig } from "../../components/config";
import { renderRedisConf } from "../../components/bootstrap/redisConf";
import { renderAclFile } from "../../components/bootstrap/acl";
import { ACL_USERS } from "../../components/bootstrap/contract";
import { zoneOf } from "../../components/plan/placement";
import { nodeName, Topology } from "../../components/topology";
import { redisServerVersion, startServers, stopAll, TestServer } from "../../test/helpers/redisServers";
import { runCli, CliRun } from "../../test/helpers/cluster";
import { appClient } from "./common";

export interface DrillClusterOptions {
    shards: number;
    replicas: number;
    /** Servers started but not joined. @default 0 */
    spare?: number;
    /** Stack config keys (redis-cluster:<key>) on top of the defaults, e.g. { clusterNodeTimeoutMs: 3000 }. */
    settings?: Record<string, number | string | boolean>;
    /** The ACL passwords (e.g. another drill cluster's, so the tool can reach both). @default random */
    passwords?: DrillCluster["passwords"];
}

export interface DrillCluster {
    config: StackConfig;
    /** Shard i's servers, r0 first (the master after create). */
    shards: TestServer[][];
    spare: TestServer[];
    dir: string;
    topologyFile: string;
    admin: { user: string; password: string };
    app: { user: string; password: string };
    passwords: { adminPassword: string; appPassword: string; replicationPassword: string };
    /** An admin client to one server (closed by stop()). */
    client(s: TestServer): Redis;
    /** An application client (user app) over every shard's nodes (closed by stop()). */
    appClient(extra?: Partial<ClusterOptions>): Cluster;
    /** Rewrites the topology file with these shards (r0 first). */
    writeTopology(shards: TestServer[][]): void;
    /** Runs the cluster tool on this cluster's topology. */
    cli(...args: string[]): Promise<CliRun>;
    /** Starts `n` more servers like these (for another scale-out). */
    more(n: number): Promise<TestServer[]>;
    /** Stops servers (a retired node, say) and forgets their clients. */
    stopServers(servers: TestServer[]): Promise<void>;
    stop(): Promise<void>;
}

const pw = () => randomBytes(18).toString("base64url");

export async function startDrillCluster(opts: DrillClusterOptions): Promise<DrillCluster> {
    const settings = { shards: opts.shards, replicasPerShard: opts.replicas, zones: 3, ...opts.settings };
    const config = parseStackYaml(["config:", ...Object.entries(settings).map(([k, v]) => `  redis-cluster:${k}: ${v}`), ""].join("\n"), "drill");
    const engineVersion = redisServerVersion().join(".");
    const passwords = opts.passwords ?? { adminPassword: pw(), appPassword: pw(), replicationPassword: pw() };
    const admin = { user: ACL_USERS.admin, password: passwords.adminPassword };
    const app = { user: ACL_USERS.app, password: passwords.appPassword };
    const dir = mkdtempSync(join(tmpdir(), "rc-drill-"));
    const clients: (Redis | Cluster)[] = [];
    const all: TestServer[] = [];
    const start = async (n: number) => {
        const s = await startServers(n, {
            configFile: (port, d) => {
                const aclFile = join(d, "users.acl");
                writeFileSync(aclFile, renderAclFile({ ...passwords, engineVersion }));
                return renderRedisConf({
                    config, announceIp: "127.0.0.1", bindAddresses: ["127.0.0.1"], port, dataDir: d, aclFile,
                    maxmemoryBytes: 256 * 1024 * 1024, replicationPassword: passwords.replicationPassword,
                    logFile: join(d, "redis.log"), engineVersion,
                });
            },
            auth: admin,
        });
        all.push(...s);
        return s;
    };
    const topologyFile = join(dir, "topology.json");
    writeFileSync(join(dir, "credentials.json"), JSON.stringify(admin));
    chmodSync(join(dir, "credentials.json"), 0o600);
    const perShard = 1 + opts.replicas;
    const servers = await start(opts.shards * perShard + (opts.spare ?? 0)).catch(async (e) => {
        rmSync(dir, { recursive: true, force: true });
        throw e;
    });
    const dc: DrillCluster = {
        config, dir, topologyFile, admin, app, passwords,
        shards: Array.from({ length: opts.shards }, (_, i) => servers.slice(i * perShard, (i + 1) * perShard)),
        spare: servers.slice(opts.shards * perShard),
        client(s) {
            const c = new Redis({ host: s.host, port: s.port, username: admin.user, password: admin.password, maxRetriesPerRequest: 1, enableReadyCheck: false, connectTimeout: 1000, retryStrategy: () => 200 });
            c.on("error", () => undefined);
            clients.push(c);
            return c;
        },
        appClient(extra) {
            const c = appClient(dc.shards.flat().map((s) => ({ host: s.host, port: s.port })), app, extra);
            clients.push(c);
            return c;
        },
        writeTopology(shards) {
            const t: Topology = {
                clusterName: config.clusterName, port: shards[0][0].port, tls: false,
                nodes: shards.flatMap((sh, shard) => sh.map((s, r) => ({ name: nodeName(config.clusterName, shard, r), shard, az: `local-${"abc"[zoneOf(shard, r, 3)]}`, host: s.host, port: s.port }))),
            };
            writeFileSync(topologyFile, JSON.stringify(t, null, 2));
        },
        cli: (...args) => runCli([...args.slice(0, 1), "--topology", topologyFile, ...args.slice(1)]),
        more: (n) => start(n),
        async stopServers(list) {
            await stopAll(list);
            for (const s of list) all.splice(all.indexOf(s), 1);
        },
        async stop() {
            for (const c of clients) c.disconnect();
            await stopAll(all);
            rmSync(dir, { recursive: true, force: true });
        },
    };
    try {
        dc.writeTopology(dc.shards);
        const r = await dc.cli("create", "--quiet");
        if (r.code !== 0) throw new Error(`create failed (exit ${r.code}): ${r.stderr}`);
    } catch (e) {
        await dc.stop();
        throw e;
    }
    return dc;
}
