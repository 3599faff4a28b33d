/**
 * Every node starts with its own redis.conf naming its shard and the role it was created
 * with: checked in the user data the prod stack registers (the template the boot script
 * renders) and in the renderer's output for local mode, and that it warns roles change.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStackYaml } from "../../components/config";
import { renderRedisConf } from "../../components/bootstrap/redisConf";
import { byType, readStack, runStack, T, userDataOf } from "./harness";

test("prod user data: each node's redis.conf header names its shard and creation role", async () => {
    const r = await runStack("prod");
    const instances = byType(r, T.instance);
    assert.equal(instances.length, 9);
    for (const i of instances) {
        const [, shard, replica] = /-s(\d+)-r(\d+)-instance$/.exec(i.name)!.map(Number);
        const ud = userDataOf(i);
        const c = "redis-cluster-prod";
        const role = replica === 0 ? "master" : `replica of ${c}-s${shard}-r0`;
        assert.ok(ud.includes(`# ${c}-s${shard}-r${replica}: shard ${shard} of ${c}, created as ${role}.\n`), `${i.name}: header missing or wrong`);
        assert.ok(ud.includes("# Roles change on failover"), `${i.name}: no failover note`);
    }
});

test("rendered redis.conf (local mode's renderer) starts with the node, shard and role", () => {
    const config = parseStackYaml(readStack("dev"), "dev");
    const conf = (replica: number) => renderRedisConf({
        config, announceIp: "127.0.0.1", bindAddresses: ["127.0.0.1"], port: 7000, dataDir: "/tmp/x", aclFile: "/tmp/x/users.acl",
        maxmemoryBytes: 1 << 28, replicationPassword: "p", node: { name: `${config.clusterName}-s2-r${replica}`, shard: 2, replica },
    });
    assert.match(conf(0), /^# redis-cluster-dev-s2-r0: shard 2 of redis-cluster-dev, created as master\.\n# Roles change on failover/);
    assert.match(conf(1), /^# redis-cluster-dev-s2-r1: shard 2 of redis-cluster-dev, created as replica of redis-cluster-dev-s2-r0\.\n/);
    assert.match(conf(1), /npm run cluster -- status shows it/);
});
