/**
 * The rendered redis.conf + ACL file of a node of each stack config, started
 * with the real redis-server on loopback: cluster mode, ACL users, replication
 * through the replicator user, TLS.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, rmSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { connect as tlsConnect, ConnectionOptions } from "node:tls";
import { join } from "node:path";
import Redis from "ioredis";
import { renderAclFile } from "../../components/bootstrap/acl";
import { renderRedisConf } from "../../components/bootstrap/redisConf";
import { ACL_USERS } from "../../components/bootstrap/contract";
import { redisServerVersion, startServer, stopAll, TestServer } from "../helpers/redisServers";
import { makeTestPki, maxmemoryForThisMachine, TestPki, testStacks } from "../helpers/bootstrapConfigs";

const PASSWORDS = {
    adminPassword: "admin-pw-Zq3",
    appPassword: "app pw with spaces & symbols !#$",
    // Quotes and backslashes must survive redis.conf quoting (masterauth).
    replicationPassword: 'repl"pw\\x41-1',
};
const engineVersion = redisServerVersion().join(".");
/** The name in the test certificate; clients verify the server against it (`servername`), as with the stack's certificate. */
const CERT_NAME = "redis-cluster-test";

let pki: TestPki;
const servers: TestServer[] = [];

before(() => {
    pki = makeTestPki(CERT_NAME);
});
after(async () => {
    await stopAll(servers);
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

/** A client for a node; `user` undefined connects without AUTH. */
function client(s: TestServer, tlsOn: boolean, user?: keyof typeof ACL_USERS): Redis {
    const password = user === "admin" ? PASSWORDS.adminPassword : user === "app" ? PASSWORDS.appPassword : user === "replication" ? PASSWORDS.replicationPassword : undefined;
    const c = new Redis({
        host: s.host, port: s.port, username: user ? ACL_USERS[user] : undefined, password,
        tls: tlsOn ? { ca: pki.ca, servername: CERT_NAME } : undefined,
        lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false,
    });
    c.on("error", () => undefined);
    return c;
}

async function withClient<T>(c: Redis, fn: (c: Redis) => Promise<T>): Promise<T> {
    try {
        await c.connect();
        return await fn(c);
    } finally {
        c.disconnect();
    }
}

/** Sends a plain-text PING and returns whatever comes back before the server closes or 1.5 s pass. */
function plainPing(host: string, port: number): Promise<string> {
    return new Promise((resolve) => {
        const sock = netConnect({ host, port });
        let data = "";
        const done = () => { sock.destroy(); resolve(data); };
        sock.on("connect", () => sock.write("*1\r\n$4\r\nPING\r\n"));
        sock.on("data", (d) => { data += d.toString("latin1"); });
        sock.on("close", done);
        sock.on("error", done);
        setTimeout(done, 1500);
    });
}

/** Whether a TLS handshake (and a first read) with these options succeeds within 2 s. */
function tlsHandshake(opts: ConnectionOptions): Promise<"ok" | string> {
    return new Promise((resolve) => {
        const sock = tlsConnect({ host: "127.0.0.1", servername: CERT_NAME, ...opts });
        const done = (r: string) => { sock.destroy(); resolve(r); };
        // TLS 1.3 reports a refused client certificate only after the handshake, on the first read.
        sock.on("secureConnect", () => setTimeout(() => done("ok"), 300));
        sock.on("error", (e) => done(e.message));
        sock.on("close", () => done("closed"));
        setTimeout(() => done("timeout"), 2000);
    });
}

for (const stack of testStacks()) {
    const cfg = stack.config;
    describe(`rendered redis.conf + ACL of stack ${stack.name} (tls ${cfg.tls ? "on" : "off"}) on redis-server ${engineVersion}`, () => {
        const pair: TestServer[] = [];
        const tlsAuth = () => (cfg.tls ? { ca: pki.ca, servername: CERT_NAME } : undefined);

        before(async () => {
            for (let i = 0; i < 2; i++) {
                const s = await startServer({
                    configFile: (port, dir) => {
                        const aclFile = join(dir, "users.acl");
                        writeFileSync(aclFile, renderAclFile({ ...PASSWORDS, engineVersion }));
                        return renderRedisConf({
                            config: cfg, announceIp: "127.0.0.1", bindAddresses: ["127.0.0.1"], port, dataDir: dir, aclFile,
                            maxmemoryBytes: maxmemoryForThisMachine(cfg.maxmemoryPercent), replicationPassword: PASSWORDS.replicationPassword,
                            tls: cfg.tls ? { certFile: pki.certFile, keyFile: pki.keyFile, caFile: pki.caFile } : undefined,
                            logFile: join(dir, "redis.log"), engineVersion,
                        });
                    },
                    auth: { user: ACL_USERS.admin, password: PASSWORDS.adminPassword, tls: tlsAuth() },
                });
                servers.push(s);
                pair.push(s);
            }
        });

        test("runs in cluster mode with the configured settings", async () => {
            await withClient(client(pair[0], cfg.tls, "admin"), async (c) => {
                const info = (await c.info("cluster")) as string;
                assert.match(info, /cluster_enabled:1/);
                const get = async (k: string) => ((await c.call("CONFIG", "GET", k)) as string[])[1];
                assert.equal(await get("appendonly"), "yes");
                assert.equal(await get("appendfsync"), "everysec");
                assert.equal(await get("maxmemory-policy"), cfg.maxmemoryPolicy);
                assert.equal(await get("maxmemory"), String(maxmemoryForThisMachine(cfg.maxmemoryPercent)));
                assert.equal(await get("cluster-node-timeout"), String(cfg.clusterNodeTimeoutMs));
                assert.equal(await get("cluster-replica-validity-factor"), String(cfg.clusterReplicaValidityFactor));
                assert.equal(await get("min-replicas-to-write"), String(cfg.minReplicasToWrite));
                assert.equal(await get("masteruser"), ACL_USERS.replication);
                assert.equal(await get("cluster-config-file"), join(pair[0].dir, "nodes.conf"));
                assert.equal(await get("cluster-announce-ip"), "127.0.0.1");
                assert.equal(await get(cfg.tls ? "tls-port" : "port"), String(pair[0].port));
            });
        });

        test("admin may not load modules or run DEBUG, whatever redis.conf allows", async () => {
            await withClient(client(pair[0], cfg.tls, "admin"), async (c) => {
                // ACL DRYRUN (7.0+) asks the ACL alone, apart from enable-module-command/enable-debug-command.
                for (const cmd of [["MODULE", "LIST"], ["DEBUG", "SLEEP", "0"]]) {
                    const verdict = String(await c.call("ACL", "DRYRUN", ACL_USERS.admin, ...cmd));
                    assert.match(verdict, /no permissions to run/, `${cmd.join(" ")}: ${verdict}`);
                }
                assert.equal(String(await c.call("ACL", "DRYRUN", ACL_USERS.admin, "CONFIG", "SET", "maxmemory-policy", "noeviction")), "OK");
                await assert.rejects(c.call("MODULE", "LIST"), /NOPERM|not allowed/);
            });
        });

        test("the default user is refused", async () => {
            await withClient(client(pair[0], cfg.tls), async (c) => {
                await assert.rejects(c.get("k"), /NOAUTH/);
                await assert.rejects(c.call("AUTH", "default", ""), /WRONGPASS|invalid username-password/);
            });
        });

        test("the application user reads and writes, discovers the cluster, and is refused admin commands", async () => {
            await withClient(client(pair[0], cfg.tls, "app"), async (c) => {
                assert.ok(Array.isArray(await c.call("CLUSTER", "SLOTS")));
                assert.match((await c.call("CLUSTER", "INFO")) as string, /cluster_state/);
                assert.match((await c.info("server")) as string, /redis_version/);
                await c.call("CLIENT", "SETNAME", "app-test");
                await assert.rejects(c.call("FLUSHALL"), /NOPERM/);
                await assert.rejects(c.call("FLUSHDB"), /NOPERM/);
                await assert.rejects(c.call("CONFIG", "GET", "maxmemory"), /NOPERM/);
                await assert.rejects(c.call("CONFIG", "SET", "maxmemory", "1"), /NOPERM/);
                await assert.rejects(c.call("CLUSTER", "RESET"), /NOPERM/);
                await assert.rejects(c.call("CLUSTER", "FORGET", "0000000000000000000000000000000000000000"), /NOPERM/);
                await assert.rejects(c.call("CLUSTER", "ADDSLOTS", "1"), /NOPERM/);
                await assert.rejects(c.call("SHUTDOWN", "NOSAVE"), /NOPERM/);
                await assert.rejects(c.call("ACL", "LIST"), /NOPERM/);
                // 7.0 refuses DEBUG before the ACL check (enable-debug-command no); 6.2 through the ACL.
                await assert.rejects(c.call("DEBUG", "SLEEP", "0"), /NOPERM|DEBUG command not allowed/);
            });
        });

        test("the replication user can only replicate", async () => {
            await withClient(client(pair[0], cfg.tls, "replication"), async (c) => {
                assert.equal(await c.ping(), "PONG");
                await assert.rejects(c.get("k"), /NOPERM/);
                await assert.rejects(c.call("CLUSTER", "INFO"), /NOPERM/);
            });
        });

        test("a replica set up with CLUSTER REPLICATE syncs through masteruser/masterauth (replicator user)", async () => {
            const [m, r] = pair;
            await withClient(client(m, cfg.tls, "admin"), async (mc) => {
                await withClient(client(r, cfg.tls, "admin"), async (rc) => {
                    const masterId = (await mc.call("CLUSTER", "MYID")) as string;
                    // Test timing only: don't wait the default 5 s for more replicas before a diskless full sync.
                    await mc.call("CONFIG", "SET", "repl-diskless-sync-delay", "0");
                    await rc.call("CLUSTER", "MEET", "127.0.0.1", String(m.port));
                    // The replica must learn the master through the (TLS, if on) cluster bus before REPLICATE.
                    const deadline = Date.now() + 10_000;
                    for (;;) {
                        const nodes = (await rc.call("CLUSTER", "NODES")) as string;
                        if (nodes.split("\n").some((l) => l.startsWith(masterId) && !/handshake|noaddr/.test(l))) break;
                        if (Date.now() > deadline) assert.fail(`replica never learned master ${masterId}:\n${nodes}`);
                        await new Promise((res) => setTimeout(res, 50));
                    }
                    await rc.call("CLUSTER", "REPLICATE", masterId);
                    let repl = "";
                    const until = Date.now() + 10_000;
                    while (!/master_link_status:up/.test(repl)) {
                        if (Date.now() > until) assert.fail(`replication link never came up:\n${repl}`);
                        await new Promise((res) => setTimeout(res, 50));
                        repl = (await rc.info("replication")) as string;
                    }
                    assert.match((await mc.info("replication")) as string, /connected_slaves:1/);
                });
            });
        });

        if (cfg.tls) {
            test("the cluster bus only accepts peers presenting a certificate of the cluster's CA", async () => {
                const bus = pair[0].port + 10000;
                assert.notEqual(await tlsHandshake({ port: bus, ca: pki.ca }), "ok", "bus accepted a TLS peer without a client certificate");
                assert.equal(await tlsHandshake({ port: bus, ca: pki.ca, cert: pki.cert, key: pki.key }), "ok");
                // Client port: tls-auth-clients optional, the ACL password authenticates.
                assert.equal(await tlsHandshake({ port: pair[0].port, ca: pki.ca }), "ok");
            });
        }

        test("the application user's password works over the client port only as configured (TLS on: TLS only)", async () => {
            const reply = await plainPing("127.0.0.1", pair[0].port);
            if (cfg.tls) {
                // A plain-text client gets no RESP reply at all, not even NOAUTH.
                assert.ok(!/^[+-]/.test(reply), `plain-text PING got a RESP reply: ${JSON.stringify(reply)}`);
                await withClient(client(pair[0], true, "app"), async (c) => assert.equal(await c.ping(), "PONG"));
            } else {
                assert.match(reply, /^-NOAUTH/);
            }
        });
    });
}
