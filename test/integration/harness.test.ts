import { test, after } from "node:test";
import assert from "node:assert/strict";
import Redis from "ioredis";
import { startServers, stopAll, TestServer } from "../helpers/redisServers";
import { parseClusterNodes } from "../../scripts/plan/clusterNodes";

let servers: TestServer[] = [];
after(async () => stopAll(servers));

test("harness starts cluster-enabled servers on loopback and stops them", async () => {
    servers = await startServers(2);
    assert.equal(servers.length, 2);
    for (const s of servers) {
        const c = new Redis({ host: s.host, port: s.port, lazyConnect: true });
        await c.connect();
        const nodes = parseClusterNodes((await c.call("CLUSTER", "NODES")) as string);
        assert.equal(nodes.length, 1);
        assert.equal(nodes[0].myself, true);
        assert.equal(nodes[0].port, s.port);
        c.disconnect();
    }
    await stopAll(servers);
    for (const s of servers) assert.notEqual(s.proc.exitCode ?? s.proc.signalCode, null);
    servers = [];
});
