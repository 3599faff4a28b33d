/**
 * Cluster-wide node settings out of the user data: the SSM document, its
 * validation, and the boot script's own `fill_node_settings` (run in bash,
 * from the real bootstrap body) giving `renderRedisConf`'s text, so a
 * settings change touches the SSM parameter and never a node's user data.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../components/config";
import { nodeFiles, DEFAULT_PATHS } from "../../components/bootstrap/engine";
import { userDataInputFor } from "../../components/bootstrap/nodeInput";
import {
    desiredNodeSettingsOf, maxmemoryBytesFor, NODE_SETTINGS_MAX_BYTES, nodeSettingsOf, NodeSettings,
    parseNodeSettings, renderNodeSettings, validateDesiredNodeSettings, validateNodeSettings,
} from "../../components/bootstrap/nodeSettings";
import { redisConfTemplate, renderRedisConf } from "../../components/bootstrap/redisConf";
import { bootstrapBody, renderUserData } from "../../components/bootstrap/userData";
import { planNodes } from "../../components/plan/placement";
import { render } from "../../scripts/render";
import { committedStackNames, loadStack, maxmemoryForThisMachine, testStacks } from "../helpers/bootstrapConfigs";

const stacks = testStacks();
const CHANGED: NodeSettings = { maxmemoryPercent: 55, maxmemoryPolicy: "allkeys-lfu", clusterNodeTimeoutMs: 15000, clusterReplicaValidityFactor: 0, minReplicasToWrite: 1, minReplicasMaxLagSec: 30 };

function problemsOf(f: () => unknown): string[] {
    try {
        f();
    } catch (e) {
        if (e instanceof ConfigError) return e.problems;
        throw e;
    }
    return assert.fail("expected a ConfigError");
}

describe("node settings document (SSM)", () => {
    for (const s of stacks) {
        test(`stack ${s.name}: renders KEY=VALUE lines under SSM's Standard tier and reads back`, () => {
            const doc = renderNodeSettings(nodeSettingsOf(s.config));
            assert.ok(Buffer.byteLength(doc) < NODE_SETTINGS_MAX_BYTES, `${Buffer.byteLength(doc)} bytes`);
            assert.deepEqual(parseNodeSettings(doc), nodeSettingsOf(s.config));
            const c = s.config;
            assert.deepEqual(doc.split("\n").filter((l) => l && !l.startsWith("#")), [
                `MAXMEMORY_PERCENT=${c.maxmemoryPercent}`, `MAXMEMORY_POLICY=${c.maxmemoryPolicy}`, `CLUSTER_NODE_TIMEOUT=${c.clusterNodeTimeoutMs}`,
                `CLUSTER_REPLICA_VALIDITY_FACTOR=${c.clusterReplicaValidityFactor}`, `MIN_REPLICAS_TO_WRITE=${c.minReplicasToWrite}`, `MIN_REPLICAS_MAX_LAG=${c.minReplicasMaxLagSec}`,
            ]);
        });
    }

    test("values are checked with the stack config's rules, naming key and value", () => {
        const bad = problemsOf(() => validateNodeSettings({ ...CHANGED, maxmemoryPercent: 95, maxmemoryPolicy: "lru" } as never, "settings.json"));
        assert.deepEqual(bad, [
            "redis-cluster:maxmemoryPercent must be an integer from 10 to 90 (leave room for fork copy-on-write and the OS) (got 95)",
            'redis-cluster:maxmemoryPolicy must be one of noeviction, allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu, volatile-random, volatile-ttl (got "lru")',
        ]);
        const missing = { ...CHANGED } as Partial<NodeSettings>;
        delete missing.clusterNodeTimeoutMs;
        assert.deepEqual(problemsOf(() => validateNodeSettings({ ...missing, port: 7000 } as never, "x")), [
            "clusterNodeTimeoutMs is missing",
            "port is not a node setting (known: maxmemoryPercent, maxmemoryPolicy, clusterNodeTimeoutMs, clusterReplicaValidityFactor, minReplicasToWrite, minReplicasMaxLagSec)",
        ]);
        assert.throws(() => validateNodeSettings({ ...CHANGED, maxmemoryPercent: 95 } as never, "settings.json"), /^ConfigError: Invalid settings.json:/);
    });

    test("a document with an unknown, repeated or malformed line is refused", () => {
        const doc = renderNodeSettings(CHANGED);
        assert.deepEqual(problemsOf(() => parseNodeSettings(doc + "FOO=1\nMAXMEMORY_POLICY=noeviction\nmaxmemory 1\n")), [
            "line 9: unknown key FOO (known: MAXMEMORY_PERCENT, MAXMEMORY_POLICY, CLUSTER_NODE_TIMEOUT, CLUSTER_REPLICA_VALIDITY_FACTOR, MIN_REPLICAS_TO_WRITE, MIN_REPLICAS_MAX_LAG)",
            "line 10: MAXMEMORY_POLICY repeated",
            'line 11 is not KEY=VALUE with a plain value (got "maxmemory 1")',
        ]);
    });

    test("maxmemory is the boot script's kb * 1024 * percent / 100, rounded down", () => {
        assert.equal(maxmemoryBytesFor(25276502016, 70), 17693551411);
        assert.equal(maxmemoryBytesFor(1000, 33), 330);
        assert.equal(maxmemoryBytesFor(1001, 33), 330);
        assert.throws(() => maxmemoryBytesFor(0, 70), /memory must be a positive whole number of bytes/);
    });

    test("desired settings (stack output, settings.json) are validated", () => {
        const d = desiredNodeSettingsOf(stacks[0].config, { parameterName: "/p" });
        assert.deepEqual(validateDesiredNodeSettings(JSON.parse(JSON.stringify(d)), "stack output nodeSettings"), { ...d, source: "stack output nodeSettings" });
        assert.deepEqual(problemsOf(() => validateDesiredNodeSettings({ version: 2, settings: CHANGED, fixed: { tls: "yes", engine: "memcached" } }, "s")), [
            "version must be 1 (got 2); this tool reads version 1",
            'fixed.tls must be true or false (got "yes")',
            'fixed.engine must be one of valkey, redis6, redis (got "memcached")',
        ]);
    });
});

describe("settings stay out of the user data", () => {
    test("changing every node setting changes no byte of any node's user data, only the SSM document", () => {
        for (const name of committedStackNames()) {
            const s = loadStack(name);
            const changed = { ...s.config, ...CHANGED, minReplicasToWrite: Math.min(1, s.config.replicasPerShard) };
            assert.notEqual(renderNodeSettings(nodeSettingsOf(changed)), renderNodeSettings(nodeSettingsOf(s.config)));
            for (const plan of planNodes(s.config)) {
                const d = { az: "us-east-1a", dataVolumeId: "vol-0123456789abcdef0", region: "us-east-1", backupBucket: "b" };
                assert.equal(renderUserData(userDataInputFor(changed, plan, d)), renderUserData(userDataInputFor(s.config, plan, d)), `${plan.name}: user data depends on a node setting`);
            }
        }
    });

    test("npm run render -- --part node-settings prints the document the stack writes", () => {
        const name = committedStackNames()[0];
        assert.equal(render({ stack: name, node: "0", part: "node-settings" }), renderNodeSettings(nodeSettingsOf(loadStack(name).config)));
    });
});

describe("the boot script's fill_node_settings (bash)", () => {
    const dir = mkdtempSync(join(tmpdir(), "rct-fill-"));
    const files = nodeFiles(DEFAULT_PATHS);
    const REPL_PW = 'r"e\\pl pw';

    /** Runs the real body's render_template + fill_node_settings + masterauth, as run() does. */
    function bootRender(template: string, doc: string, version: string) {
        writeFileSync(join(dir, "template"), template);
        writeFileSync(join(dir, "doc"), doc);
        const script = [
            "set -euo pipefail",
            "NODE_NAME=test SSM_NODE_SETTINGS=/redis-cluster/t/config/node-settings",
            bootstrapBody(),
            `conf=$(render_template ${version} < ${join(dir, "template")})`,
            `conf=$(fill_node_settings "$conf" "$(cat ${join(dir, "doc")})")`,
            `repl_pw=${JSON.stringify(REPL_PW).replace(/\$/g, "\\$")}`,
            `conf=\${conf//"@@MASTERAUTH@@"/"$(conf_quote "$repl_pw")"}`,
            `printf '%s\\n' "$conf"`,
        ].join("\n");
        return spawnSync("bash", ["-c", script], { encoding: "utf8" });
    }
    const tplOf = (c: typeof stacks[0]["config"]) => redisConfTemplate({
        config: c, announceIp: "10.0.0.7", bindAddresses: ["10.0.0.7", "127.0.0.1"], port: c.port,
        dataDir: files.dataDir, aclFile: files.aclFile, tls: c.tls ? files.tls : undefined,
    });

    for (const s of stacks) {
        for (const version of ["6.2.14", "7.0.15"]) {
            test(`stack ${s.name}, engine ${version}: gives renderRedisConf's text byte for byte, for the stack's and for changed settings`, () => {
                for (const config of [s.config, { ...s.config, ...CHANGED }]) {
                    const r = bootRender(tplOf(s.config), renderNodeSettings(nodeSettingsOf(config)), version.slice(0, 3));
                    assert.equal(r.status, 0, r.stderr);
                    assert.equal(r.stdout, renderRedisConf({
                        config, announceIp: "10.0.0.7", bindAddresses: ["10.0.0.7", "127.0.0.1"], port: s.config.port, dataDir: files.dataDir, aclFile: files.aclFile,
                        tls: s.config.tls ? files.tls : undefined, maxmemoryBytes: maxmemoryForThisMachine(config.maxmemoryPercent), replicationPassword: REPL_PW, engineVersion: version,
                    }));
                }
            });
        }
    }

    test("comments and keys the template lacks are ignored; a missing or invalid value stops the boot, naming the key", () => {
        const tpl = tplOf(stacks[0].config);
        const doc = renderNodeSettings(CHANGED);
        const ok = bootRender(tpl, `# a comment=with words\nFUTURE_SETTING=1\n${doc}`, "7.0");
        assert.equal(ok.status, 0, ok.stderr);
        assert.match(ok.stdout, /^maxmemory-policy allkeys-lfu$/m);
        const cases: [string, RegExp][] = [
            [doc.replace(/^CLUSTER_NODE_TIMEOUT=.*\n/m, ""), /has no valid CLUSTER_NODE_TIMEOUT$/m],
            [doc.replace(/^MAXMEMORY_PERCENT=.*$/m, "MAXMEMORY_PERCENT=abc"), /has no valid MAXMEMORY_PERCENT$/m],
            [doc.replace(/^MAXMEMORY_PERCENT=.*$/m, "MAXMEMORY_PERCENT=0"), /has no valid MAXMEMORY_PERCENT$/m],
            [doc.replace(/^MAXMEMORY_POLICY=.*$/m, "MAXMEMORY_POLICY=noeviction requirepass x"), /has no valid MAXMEMORY_POLICY$/m],
            ["", /has no valid \w+$/m],
        ];
        for (const [bad, message] of cases) {
            const r = bootRender(tpl, bad, "7.0");
            assert.equal(r.status, 1, `accepted:\n${bad}`);
            assert.match(r.stderr, message);
            assert.match(r.stderr, /ERROR: \/redis-cluster\/t\/config\/node-settings has no valid/);
            assert.equal(r.stdout, "", "wrote a redis.conf");
        }
    });

    after(() => rmSync(dir, { recursive: true, force: true }));
});
