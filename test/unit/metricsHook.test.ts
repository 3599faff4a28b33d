/**
 * The node side of monitoring, as rendered: the metrics hook passes shellcheck, the
 * agent gets its EMF listener only, the collector unit carries what the publisher
 * reads; `metrics --serve` addresses parse.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { agentConfig, metricsHook, metricsUnits, COLLECTOR_KEY } from "../../components/bootstrap/metricsHook";
import { parseListen } from "../../scripts/commands/metrics";

const input = { config: { clusterName: "c", tls: true }, node: { name: "c-s1-r2" }, privateIp: "10.42.1.20" };

test("the metrics hook passes shellcheck and installs bundle, agent and timer", () => {
    if (spawnSync("sh", ["-c", "command -v shellcheck"]).status !== 0) throw new Error("shellcheck is missing: apt-get install shellcheck");
    const { name, script } = metricsHook(input);
    assert.equal(name, "60-metrics");
    const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: script, encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout);
    assert.ok(script.includes(`s3://$BACKUP_BUCKET/${COLLECTOR_KEY}`));
    assert.ok(script.includes("--name '/redis-cluster/c/acl/admin-password'"));
    assert.ok(script.includes("systemctl enable -q --now redis-cluster-metrics.timer"));
    assert.ok(!/password=|REDISCLI_AUTH=[^%]/.test(script), "no secret in the user data");
});

test("the agent only listens for EMF; the unit runs the bundle every 60 s with this node's address", () => {
    assert.deepEqual(JSON.parse(agentConfig()), { agent: { run_as_user: "cwagent" }, logs: { metrics_collected: { emf: {} } } });
    const { service, timer } = metricsUnits(input);
    assert.match(service, /^Environment=REDIS_HOST=10\.42\.1\.20$/m);
    assert.match(service, /^Environment=REDIS_TLS=1$/m);
    assert.match(service, /^Environment=METRICS_LOG_GROUP=\/redis-cluster\/c\/nodes$/m);
    assert.match(service, /^StateDirectory=redis-cluster-metrics$/m);
    assert.match(timer, /^OnUnitActiveSec=60$/m);
    // systemd itself accepts both units (syntax, directives, the ExecStart binary).
    if (spawnSync("sh", ["-c", "command -v systemd-analyze"]).status !== 0) throw new Error("systemd-analyze is missing: apt-get install systemd");
    const dir = mkdtempSync(join(tmpdir(), "rct-units-"));
    try {
        writeFileSync(join(dir, "redis-cluster-metrics.service"), service);
        writeFileSync(join(dir, "redis-cluster-metrics.timer"), timer);
        const v = spawnSync("systemd-analyze", ["verify", join(dir, "redis-cluster-metrics.timer"), join(dir, "redis-cluster-metrics.service")], { encoding: "utf8" });
        assert.equal(v.status, 0, v.stderr);
        assert.equal(v.stderr.trim(), "", v.stderr);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test("--serve addresses", () => {
    assert.deepEqual(parseListen("9121"), { host: "127.0.0.1", port: 9121 });
    assert.deepEqual(parseListen(":9121"), { host: "127.0.0.1", port: 9121 });
    assert.deepEqual(parseListen("0.0.0.0:9121"), { host: "0.0.0.0", port: 9121 });
    assert.deepEqual(parseListen("[::1]:9121"), { host: "::1", port: 9121 });
    assert.throws(() => parseListen("host:port"), /--serve must be \[host:\]port/);
    assert.throws(() => parseListen("70000"), /--serve must be/);
});
