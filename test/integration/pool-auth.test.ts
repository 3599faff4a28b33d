/**
 * The node pool against a real server that refuses our credentials: every read says
 * so (WRONGPASS), in a long-lived process too. ioredis announces "ready" after a refused
 * AUTH once its package.json is cached (the second connection of a process onwards),
 * and every later command then failed with "Connection is closed.": `status` called
 * the nodes unreachable instead of naming the credentials (117 of 120 reads, measured).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, stopAll, TestServer } from "../helpers/redisServers";
import { NodePool } from "../../scripts/redis/pool";
import { readNodes } from "../../scripts/redis/clusterView";
import { isAuthError } from "../../scripts/plan/node";

const servers: TestServer[] = [];
after(() => stopAll(servers));

test("a refused password is reported as such on every connection of a process, not as a closed connection", async () => {
    const s = await startServer({ extraArgs: ["--requirepass", "right-password"], auth: { password: "right-password" } });
    servers.push(s);
    const errors: string[] = [];
    for (let i = 0; i < 10; i++) {
        const pool = new NodePool({ credentials: { user: "default", password: "wrong-password" }, connectTimeoutMs: 2000 });
        try {
            const [sample] = await readNodes(pool, [s.key], { info: ["default"] });
            assert.equal(sample.reachable, false);
            errors.push(sample.error ?? "");
        } finally {
            await pool.close();
        }
    }
    assert.deepEqual(errors.filter((e) => !isAuthError(e)), [], "every read names the refused credentials");
    assert.match(errors[9], /^cannot connect to 127\.0\.0\.1:\d+: WRONGPASS/);
    // The right password works with the same pool code.
    const ok = new NodePool({ credentials: { user: "default", password: "right-password" } });
    try {
        const [sample] = await readNodes(ok, [s.key]);
        assert.equal(sample.reachable, true, sample.error);
    } finally {
        await ok.close();
    }
});
