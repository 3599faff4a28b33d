/**
 * Node bootstrap renderers without a server: templates, redis.conf, ACL file,
 * user data (shellcheck on every node of every committed stack, size) and
 * `npm run render`.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { aclTemplate, passwordSha256, renderAclFile } from "../../components/bootstrap/acl";
import { ssmParameterNames } from "../../components/bootstrap/contract";
import { DEFAULT_PATHS, ENGINE_FACTS } from "../../components/bootstrap/engine";
import { userDataInputFor } from "../../components/bootstrap/nodeInput";
import { redisConfTemplate, renderRedisConf } from "../../components/bootstrap/redisConf";
import { fillTokens, quoteConfValue, resolveVersionGates, TOKENS } from "../../components/bootstrap/template";
import { gzipUserData, renderUserData, USER_DATA_LIMIT_BYTES } from "../../components/bootstrap/userData";
import { planNodes } from "../../components/plan/placement";
import { render, selectNode } from "../../scripts/render";
import { UsageError } from "../../scripts/errors";
import { committedStackNames, loadStack, testStacks } from "../helpers/bootstrapConfigs";

const stacks = testStacks();
const PW = { adminPassword: "a-pw", appPassword: "b-pw", replicationPassword: "c-pw" };

function confInput(cfg = stacks[0].config, extra: Partial<Parameters<typeof renderRedisConf>[0]> = {}) {
    return {
        config: cfg, announceIp: "10.0.0.5", bindAddresses: ["10.0.0.5", "127.0.0.1"], port: cfg.port,
        dataDir: "/data/d", aclFile: "/etc/rc/users.acl", maxmemoryBytes: 123456789, replicationPassword: "c-pw",
        tls: cfg.tls ? { certFile: "/etc/rc/tls/redis.crt", keyFile: "/etc/rc/tls/redis.key", caFile: "/etc/rc/tls/ca.crt" } : undefined,
        ...extra,
    };
}
/** The user data's variables (the NAME=... lines before the templates) as bash evaluates them. */
function shellVars(ud: string): Map<string, string> {
    const lines = ud.split("\n");
    const assigns = lines.slice(0, lines.indexOf("")).filter((l) => /^[A-Z][A-Z0-9_]*=/.test(l));
    const names = assigns.map((l) => l.slice(0, l.indexOf("=")));
    const r = spawnSync("bash", ["-c", [...assigns, ...names.map((n) => `printf '%s\\0' "$${n}"`)].join("\n")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const values = r.stdout.split("\0");
    return new Map(names.map((n, i) => [n, values[i]]));
}

/** Directive -> value ("" when none) of a redis.conf text; throws on a repeated directive. */
function directives(conf: string): Map<string, string> {
    const m = new Map<string, string>();
    for (const line of conf.split("\n")) {
        if (line === "" || line.startsWith("#")) continue;
        const [k, ...rest] = line.split(" ");
        assert.ok(!m.has(k), `directive ${k} repeated`);
        m.set(k, rest.join(" "));
    }
    return m;
}

describe("templates: version gates and tokens", () => {
    const t = "a\n@@>=7.0@@b\n@@<7.0@@c\n@@>=6.2@@d\n";
    for (const [version, want] of [["6.0.9", "a\nc\n"], ["6.2.14", "a\nc\nd\n"], ["7.0.15", "a\nb\nd\n"], ["8.1", "a\nb\nd\n"], ["7", "a\nb\nd\n"]] as const) {
        test(`engine ${version} keeps ${JSON.stringify(want)}`, () => assert.equal(resolveVersionGates(t, version), want));
    }
    test("an unreadable engine version is refused", () => assert.throws(() => resolveVersionGates(t, "latest"), /engine version must look like 6.2.14/));
    test("tokens are filled, unknown text stays", () => {
        assert.equal(fillTokens(`x ${TOKENS.maxmemoryBytes} ${TOKENS.maxmemoryBytes} @@OTHER@@`, { maxmemoryBytes: "5" }), "x 5 5 @@OTHER@@");
    });
    test("redis.conf quoting escapes backslash and double quote, refuses line breaks", () => {
        assert.equal(quoteConfValue('a"b\\c d'), '"a\\"b\\\\c d"');
        assert.throws(() => quoteConfValue("a\nb", "replicationPassword"), /replicationPassword must not contain a line break/);
    });
});

describe("renderRedisConf", () => {
    for (const s of stacks) {
        test(`stack ${s.name}: cluster, persistence, memory and replication settings from the config`, () => {
            const c = s.config;
            const d = directives(renderRedisConf(confInput(c)));
            assert.equal(d.get("cluster-enabled"), "yes");
            assert.equal(d.get("cluster-config-file"), "/data/d/nodes.conf");
            assert.equal(d.get("dir"), "/data/d");
            assert.equal(d.get("cluster-announce-ip"), "10.0.0.5");
            assert.equal(d.get("bind"), "10.0.0.5 127.0.0.1");
            assert.equal(d.get("protected-mode"), "yes");
            assert.equal(d.get("appendonly"), "yes");
            assert.equal(d.get("appendfsync"), "everysec");
            assert.equal(d.get("maxmemory"), "123456789");
            assert.equal(d.get("maxmemory-policy"), c.maxmemoryPolicy);
            assert.equal(d.get("cluster-node-timeout"), String(c.clusterNodeTimeoutMs));
            assert.equal(d.get("cluster-replica-validity-factor"), String(c.clusterReplicaValidityFactor));
            assert.equal(d.get("min-replicas-to-write"), String(c.minReplicasToWrite));
            assert.equal(d.get("min-replicas-max-lag"), String(c.minReplicasMaxLagSec));
            assert.equal(d.get("masteruser"), "replicator");
            assert.equal(d.get("masterauth"), '"c-pw"');
            assert.equal(d.get("aclfile"), "/etc/rc/users.acl");
            if (c.tls) {
                assert.equal(d.get("port"), "0");
                assert.equal(d.get("tls-port"), String(c.port));
                assert.equal(d.get("tls-cluster"), "yes");
                assert.equal(d.get("tls-replication"), "yes");
                assert.equal(d.get("tls-auth-clients"), "optional");
                assert.equal(d.get("tls-ca-cert-file"), "/etc/rc/tls/ca.crt");
            } else {
                assert.equal(d.get("port"), String(c.port));
                assert.equal(d.has("tls-port"), false);
            }
        });
    }
    test("directives Redis 6.2 lacks are only rendered for 7.0 and newer", () => {
        const v62 = directives(renderRedisConf(confInput(undefined, { engineVersion: "6.2.14" })));
        const v70 = directives(renderRedisConf(confInput(undefined, { engineVersion: "7.0.15" })));
        for (const k of ["cluster-port", "enable-debug-command", "enable-module-command", "enable-protected-configs", "cluster-allow-pubsubshard-when-down"]) {
            assert.equal(v62.has(k), false, `${k} in the 6.2 file`);
            assert.equal(v70.has(k), true, `${k} missing from the 7.0 file`);
        }
        assert.equal(v70.get("cluster-port"), String(stacks[0].config.port + 10000));
    });
    test("local-mode options: daemonize, pid file, log file", () => {
        const d = directives(renderRedisConf(confInput(undefined, { daemonize: true, pidFile: "/tmp/p.pid", logFile: "/tmp/l.log" })));
        assert.equal(d.get("daemonize"), "yes");
        assert.equal(d.get("pidfile"), "/tmp/p.pid");
        assert.equal(d.get("logfile"), "/tmp/l.log");
    });
    test("refusals name the field", () => {
        const tlsCfg = { ...stacks[0].config, tls: true };
        assert.throws(() => renderRedisConf(confInput(tlsCfg, { tls: undefined })), /config.tls is on, so tls \{ certFile, keyFile, caFile \} is required/);
        assert.throws(() => renderRedisConf(confInput(undefined, { dataDir: "/a b" })), /dataDir must be a non-empty path without spaces/);
        assert.throws(() => renderRedisConf(confInput(undefined, { maxmemoryBytes: 1.5 })), /maxmemoryBytes must be a whole number/);
        assert.throws(() => renderRedisConf(confInput(undefined, { bindAddresses: [] })), /bindAddresses must name at least one address/);
    });
});

describe("renderAclFile", () => {
    test("default user off; passwords only as SHA-256; 6.2 without CLUSTER SHARDS", () => {
        for (const v of ["6.2.14", "7.0.15"]) {
            const acl = renderAclFile({ ...PW, engineVersion: v });
            const lines = acl.trim().split("\n");
            assert.equal(lines.length, 4);
            assert.equal(lines[0], "user default off resetchannels -@all");
            assert.match(acl, new RegExp(`^user admin on #${passwordSha256("a-pw")} ~\\* &\\* \\+@all -module -debug$`, "m"));
            assert.match(acl, new RegExp(`^user replicator on #${passwordSha256("c-pw")} resetchannels -@all \\+psync \\+replconf \\+ping$`, "m"));
            const app = lines.find((l) => l.startsWith("user app "))!;
            assert.match(app, /-@dangerous -@admin -flushall -flushdb -config -cluster /);
            assert.equal(app.includes("+cluster|shards"), v.startsWith("7"));
            for (const pw of Object.values(PW)) assert.ok(!acl.includes(pw));
        }
    });
    test("an empty password is refused", () => assert.throws(() => renderAclFile({ ...PW, appPassword: "" }), /appPassword must be a non-empty string/));
    test("the template holds tokens, not hashes", () => assert.match(aclTemplate(), /#@@APP_PASSWORD_SHA256@@/));
});

describe("renderUserData", () => {
    const committed = committedStackNames();
    const all = committed.flatMap((name) => {
        const s = loadStack(name);
        return planNodes(s.config).map((plan) => {
            const input = userDataInputFor(s.config, plan, { az: "us-east-1a", dataVolumeId: "vol-0123456789abcdef0", region: s.region ?? "us-east-1", backupBucket: "b" });
            return { stack: name, plan, input, ud: renderUserData(input) };
        });
    });

    test("shellcheck passes with no warning on every node of every committed stack config", () => {
        assert.ok(all.length > 0, "no committed Pulumi.<stack>.yaml found");
        const dir = mkdtempSync(join(tmpdir(), "rct-sc-"));
        try {
            const files = all.map((n) => {
                const f = join(dir, `${n.plan.name}.sh`);
                writeFileSync(f, n.ud);
                return f;
            });
            const r = spawnSync("shellcheck", ["--severity=style", "--shell=bash", ...files], { encoding: "utf8" });
            assert.equal(r.error, undefined, "shellcheck is not installed: apt-get install -y shellcheck");
            assert.equal(r.status, 0, r.stdout + r.stderr);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    // Instances always receive the gzip form (userDataBase64), so EC2's 16 KB applies to it.
    // The bootstrap itself stays within half of it; with the hooks every node gets (backup,
    // about 6.6 KiB since the per-shard claim, and metrics) at most 14 KiB, so 2 KiB stay
    // free. Next step if more must fit: publish backup.sh to the bucket as the metrics
    // collector is (tools/), instead of embedding it. The plain bound only keeps the script
    // reviewable with `npm run render`.
    test("fits EC2's 16 KB limit with room to spare (gzip ≤ 8 KiB without hooks, ≤ 14 KiB with the backup and metrics hooks; plain ≤ 64 KiB)", () => {
        for (const n of all) {
            assert.ok(Buffer.byteLength(n.ud) <= 64 * 1024, `${n.plan.name}: ${Buffer.byteLength(n.ud)} bytes`);
            const gz = Buffer.from(gzipUserData(n.ud), "base64").length;
            assert.ok(gz <= 14 * 1024, `${n.plan.name}: ${gz} bytes gzip-compressed`);
            const bare = Buffer.from(gzipUserData(renderUserData({ ...n.input, hooks: [] })), "base64").length;
            assert.ok(bare <= 8 * 1024, `${n.plan.name} without hooks: ${bare} bytes gzip-compressed`);
        }
        assert.throws(() => gzipUserData("#!/bin/bash\n" + Array.from({ length: 20000 }, (_, i) => `echo ${i * 7919 % 100003}`).join("\n")), new RegExp(`above EC2's ${USER_DATA_LIMIT_BYTES}`));
    });

    test("holds the node's values, the SSM parameter names and no secret", () => {
        const s = stacks.find((x) => x.config.tls)!;
        const plan = planNodes(s.config)[2];
        const ud = renderUserData(userDataInputFor(s.config, plan, { az: "us-east-1c", dataVolumeId: "vol-0abc", region: "us-east-1" }));
        assert.ok(ud.startsWith("#!/bin/bash\n"));
        assert.match(ud, /^set -euo pipefail$/m);
        assert.match(ud, new RegExp(`^DATA_VOLUME_ID='vol-0abc'$`, "m"));
        assert.match(ud, new RegExp(`^cluster-announce-ip ${plan.privateIp.replace(/\./g, "\\.")}$`, "m"));
        const values = new Set(shellVars(ud).values());
        for (const name of Object.values(ssmParameterNames(s.config.clusterName))) assert.ok(values.has(name), `${name} is not a variable of the user data`);
        assert.match(ud, /^masterauth @@MASTERAUTH@@$/m);
        assert.match(ud, /^maxmemory @@MAXMEMORY_BYTES@@$/m);
        assert.match(ud, new RegExp(`^ExecStart=/usr/bin/${ENGINE_FACTS[s.config.engine].serverBin} ${DEFAULT_PATHS.confDir}/redis.conf --supervised @@SUPERVISED@@ --daemonize no$`, "m"));
        assert.match(ud, /^Type=@@SERVICE_TYPE@@$/m);
        assert.match(ud, /^Restart=on-failure$/m);
        // The drop-in says Group=redis-cluster: the user gets its own group whatever login.defs says.
        assert.match(ud, /useradd --system --user-group /);
        assert.match(ud, /^ExecStartPost=\/usr\/bin\/systemctl start --no-block /m);
        assert.match(ud, /^main "\$@"\n$/m);
    });

    test("the same inputs give the same bytes; shape changes do not reach a node", () => {
        const s = stacks[0];
        const plan = planNodes(s.config)[0];
        const d = { az: "a", dataVolumeId: "vol-1", region: "r" };
        const a = renderUserData(userDataInputFor(s.config, plan, d));
        assert.equal(renderUserData(userDataInputFor(s.config, plan, d)), a);
        const bigger = { ...s.config, shards: s.config.shards + 3, replicasPerShard: Math.min(5, s.config.replicasPerShard + 1), alarmEmail: "x@y.z" };
        assert.equal(renderUserData(userDataInputFor(bigger, plan, d)), a);
    });

    test("hooks are installed with checked names", () => {
        const s = stacks[0];
        const plan = planNodes(s.config)[0];
        const d = { az: "a", dataVolumeId: "vol-1", region: "r" };
        const ud = renderUserData(userDataInputFor(s.config, plan, { ...d, hooks: [{ name: "60-metrics", script: "#!/bin/sh\ntrue\n" }] }));
        assert.match(ud, /tpl_hook_0 \| write_file "\$HOOKS_DIR\/50-backup" 0755 root:root/);
        assert.match(ud, /tpl_hook_1 \| write_file "\$HOOKS_DIR\/60-metrics" 0755 root:root/);
        assert.throws(() => renderUserData(userDataInputFor(s.config, plan, { ...d, hooks: [{ name: "../x", script: "" }] })), /hook name must be a plain file name/);
        assert.throws(() => renderUserData(userDataInputFor(s.config, plan, { ...d, hooks: [{ name: "x", script: "a\nTPL_HOOK_1_EOF\n" }] })), /here-document delimiter/);
    });
});

describe("npm run render", () => {
    const name = committedStackNames()[0] ?? "dev";
    test("user-data is exactly what the node component renders, with placeholders for deploy-time values", () => {
        const s = loadStack(name);
        const plan = planNodes(s.config)[1];
        const out = render({ stack: name, node: "1", part: "user-data" });
        assert.equal(out, renderUserData(userDataInputFor(s.config, plan, { az: `<az of zone ${plan.zoneIndex}>`, dataVolumeId: "<data volume id>", region: s.region ?? "<region>", backupBucket: "<backup bucket>" })));
        assert.equal(render({ stack: name, node: plan.name, part: "user-data" }), out);
        assert.equal(render({ stack: name, node: plan.name.replace(/^.*-(s\d+-r\d+)$/, "$1"), part: "user-data" }), out);
    });
    test("redis.conf and acl show secrets and boot-time values as placeholders", () => {
        const s = loadStack(name);
        const ssm = ssmParameterNames(s.config.clusterName);
        const conf = render({ stack: name, node: "0", part: "redis.conf", engineVersion: "7.0" });
        assert.match(conf, new RegExp(`^masterauth <SSM ${ssm.replicationPassword}`, "m"));
        assert.match(conf, /^maxmemory <\d+% of MemTotal in bytes>$/m);
        assert.match(conf, /^cluster-port /m);
        assert.doesNotMatch(render({ stack: name, node: "0", part: "redis.conf", engineVersion: "6.2.14" }), /^cluster-port /m);
        const acl = render({ stack: name, node: "0", part: "acl" });
        assert.match(acl, new RegExp(`^user admin on #<sha256 of SSM ${ssm.adminPassword}>`, "m"));
        assert.doesNotMatch(acl, /@@/);
        assert.doesNotMatch(conf, /@@/);
    });
    test("an unknown node lists the stack's nodes; an unknown stack lists the stacks", () => {
        const nodes = planNodes(loadStack(name).config);
        assert.throws(() => selectNode(nodes, "99", name), (e: unknown) => e instanceof UsageError && e.message.includes(nodes[0].name) && e.message.includes(nodes[0].privateIp));
        assert.throws(() => render({ stack: "no-such-stack", node: "0", part: "acl" }), (e: unknown) => e instanceof UsageError && /no stack config .*Pulumi\.no-such-stack\.yaml \(stacks: /.test(e.message));
        assert.throws(() => render({ stack: name, node: "0", part: "acl", engineVersion: "latest" }), /--engine-version: engine version must look like/);
    });
    test("the template in the user data is the one the renderers resolve", () => {
        const s = loadStack(name);
        const plan = planNodes(s.config)[0];
        const ud = render({ stack: name, node: "0", part: "user-data" });
        const tpl = redisConfTemplate({ config: { ...s.config, alarmEmail: undefined }, announceIp: plan.privateIp, bindAddresses: [plan.privateIp, "127.0.0.1"], port: s.config.port, dataDir: "/var/lib/redis-cluster/data", aclFile: "/etc/redis-cluster/users.acl", tls: s.config.tls ? { certFile: "/etc/redis-cluster/tls/redis.crt", keyFile: "/etc/redis-cluster/tls/redis.key", caFile: "/etc/redis-cluster/tls/ca.crt" } : undefined, node: { name: plan.name, shard: plan.shard, replica: plan.replica } });
        assert.ok(ud.includes(`cat <<'TPL_REDIS_CONF_EOF'\n${tpl}TPL_REDIS_CONF_EOF\n`));
        assert.ok(ud.includes(`cat <<'TPL_ACL_EOF'\n${aclTemplate()}TPL_ACL_EOF\n`));
    });
});
