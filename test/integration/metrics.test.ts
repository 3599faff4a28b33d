/**
 * The collector against one real 3×1 cluster on loopback, taken through the states
 * an on-call engineer cares about, in order: healthy (every state metric 1, lag ~0;
 * Prometheus text checked by promtool and scraped by a real Prometheus server);
 * memory near maxmemory (usage % and OOM errors); a node that accepts connections
 * but does not answer (SIGSTOP); a killed replica (link gone, shard without
 * replica, failure flags); a killed master after failover.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCluster, ClusterFixture, runCli, spawnCli } from "../helpers/cluster";
import { freePortPair, killServer } from "../helpers/redisServers";
import { capturedOutput } from "../helpers/output";
import { Topology } from "../../components/topology";
import { NodePool } from "../../scripts/redis/pool";
import { collectMetrics, CollectedMetrics } from "../../scripts/redis/collector";
import { evaluateStatus } from "../../scripts/plan/status";
import { waitUntil } from "../../scripts/redis/clusterView";
import { CollectorState, MetricsSnapshot } from "../../scripts/plan/metrics";
import { renderPrometheus } from "../../scripts/plan/metricsFormat";
import { run as metricsCommand } from "../../scripts/commands/metrics";
import { run as statusCommand } from "../../scripts/commands/status";
import { EmfDocument } from "../../scripts/plan/metricsFormat";
import { bundleCollector, COLLECTOR_KEY, metricsHook } from "../../components/bootstrap/metricsHook";
import { pathsUnder } from "../helpers/bootstrapNode";
import { emfRuleViolations, validateEmf } from "../helpers/emf";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { startS3, S3Fixture } from "../helpers/s3";
import { writeBackup } from "../helpers/backupLayout";
import { BackupStore, openStore } from "../../scripts/backup/store";
import { cachedBackupFacts } from "../../scripts/metrics/backupFacts";

let fx: ClusterFixture;
let topology: Topology;
let pool: NodePool;
const dir = mkdtempSync(join(tmpdir(), "rct-metrics-"));

before(async () => {
    for (const bin of ["promtool", "prometheus"]) {
        if (spawnSync("sh", ["-c", `command -v ${bin}`]).status !== 0) throw new Error(`${bin} is missing: apt-get install prometheus`);
    }
    // ACLs on, as on a node: default user off, the collector authenticates as admin.
    fx = await startCluster({ masters: 3, replicasPerMaster: 1, clusterNodeTimeoutMs: 1000, clusterName: "m", acl: true });
    topology = JSON.parse(readFileSync(fx.topologyFile, "utf8")) as Topology;
    pool = new NodePool({ connectTimeoutMs: 500, commandTimeoutMs: 1000, credentials: fx.auth });
});
let s3: S3Fixture | undefined;
after(async () => {
    await s3?.stop();
    await pool?.close();
    await fx?.stop();
    rmSync(dir, { recursive: true, force: true });
});

/** Sample value by node name and metric. */
function v(snap: MetricsSnapshot, node: string, metric: string): number | undefined {
    return snap.nodes.find((n) => n.name === node)?.samples.find((s) => s.name === metric)?.value;
}
function all(snap: MetricsSnapshot, metric: string): Record<string, number | undefined> {
    return Object.fromEntries(snap.nodes.map((n) => [n.name, n.samples.find((s) => s.name === metric)?.value]));
}

let state: CollectorState | undefined;
async function collect(): Promise<CollectedMetrics> {
    const r = await collectMetrics(pool, topology, { previous: state });
    state = r.state;
    return r;
}

test("healthy: every state metric 1, replicas in sync, counters become deltas on the second read", async () => {
    await fx.client(fx.shards[0][0]).set("{b}k", "v"); // {b}: slot 3300, shard 0
    await collect();
    await new Promise((r) => setTimeout(r, 300));
    const { snapshot } = await collect();
    const names = topology.nodes.map((n) => n.name);
    for (const n of names) {
        assert.equal(v(snapshot, n, "ClusterStateOk"), 1, n);
        assert.equal(v(snapshot, n, "ClusterSlotsFail"), 0, n);
        assert.equal(v(snapshot, n, "ClusterSlotsPfail"), 0, n);
        assert.equal(v(snapshot, n, "ClusterKnownNodes"), 6, n);
        assert.equal(v(snapshot, n, "AofLastWriteOk"), 1, n);
        assert.equal(v(snapshot, n, "RdbLastBgsaveOk"), 1, n);
        const cpu = v(snapshot, n, "EngineCPUUtilization");
        assert.ok(cpu !== undefined && cpu >= 0 && cpu < 200, `${n} cpu ${cpu}`);
        assert.ok(v(snapshot, n, "CommandsProcessed")! >= 1, `${n}: our INFO calls count as commands`);
        assert.equal(v(snapshot, n, "ErrorOOM"), 0, n);
        assert.equal(v(snapshot, n, "DatabaseMemoryUsagePercentage"), undefined, "no maxmemory: no percentage");
    }
    for (let s = 0; s < 3; s++) {
        const [m, r] = [`m-s${s}-r0`, `m-s${s}-r1`];
        assert.equal(v(snapshot, m, "IsMaster"), 1);
        assert.equal(v(snapshot, m, "ConnectedReplicas"), 1);
        assert.equal(v(snapshot, r, "IsMaster"), 0);
        assert.equal(v(snapshot, r, "MasterLinkHealthStatus"), 1);
        assert.ok(v(snapshot, r, "ReplicationLag")! <= 1, `${r} lag ${v(snapshot, r, "ReplicationLag")}`);
        assert.ok(v(snapshot, r, "ReplicationBytes")! < 1024, `${r} behind by ${v(snapshot, r, "ReplicationBytes")} B`);
        assert.equal(v(snapshot, m, "MasterLinkHealthStatus"), undefined, "a master has no link to a master");
    }
    assert.equal(v(snapshot, "m-s0-r0", "CurrItems"), 1);
});

/** Runs the bundled node publisher once, as the node's timer does, with a TCP listener standing in for the agent's EMF socket. */
async function runNodePublisher(bundle: string, env: Record<string, string | undefined>): Promise<{ code: number | null; stderr: string; lines: string[] }> {
    const received: string[] = [];
    const agent = createServer((sock) => {
        let buf = "";
        sock.on("data", (d) => (buf += d));
        sock.on("end", () => received.push(...buf.split("\n").filter(Boolean)));
    });
    await new Promise<void>((r) => agent.listen(0, "127.0.0.1", r));
    const port = (agent.address() as AddressInfo).port;
    try {
        const child = spawn(process.execPath, [bundle], { env: { PATH: process.env.PATH ?? "", ...env, METRICS_AGENT: `tcp:127.0.0.1:${port}` }, stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        child.stderr!.on("data", (d) => (stderr += d));
        const code = await new Promise<number | null>((r) => child.once("exit", r));
        await new Promise((r) => setTimeout(r, 50)); // the listener's "end" after the child's exit
        return { code, stderr, lines: received };
    } finally {
        agent.close();
    }
}

/**
 * Runs the metrics hook as the bootstrap would, under a temporary root: `aws` on PATH
 * answers `s3 cp` of the bundle and `ssm get-parameter` from files (as the bootstrap
 * test's fake does), `systemctl` and the agent's ctl record their calls; `node` is the
 * real one, so nothing is installed. Returns where things went.
 */
function runHook(root: string, bundle: string, privateIp: string, port: number): { hook: string; units: string; calls: string[]; metricsDir: string } {
    const bin = join(root, "bin");
    const units = join(root, "etc/systemd/system");
    const metricsDir = join(root, "opt/redis-cluster-metrics");
    const calls = join(root, "calls.log");
    for (const d of [bin, units]) mkdirSync(d, { recursive: true });
    const fake = (name: string, body: string) => {
        writeFileSync(join(bin, name), `#!/bin/bash\necho "${name} $*" >> ${calls}\n${body}\n`);
        chmodSync(join(bin, name), 0o755);
    };
    fake("aws", [
        // s3 cp … s3://<bucket>/<key> <dest>: only the bundle's key exists.
        `if [[ $1 == s3 && $2 == cp && \${*: -2:1} == s3://bkt/${COLLECTOR_KEY} ]]; then exec cp ${bundle} "\${*: -1}"; fi`,
        `if [[ $1 == ssm && $2 == get-parameter ]]; then echo ${fx.auth!.password}; exit 0; fi`,
        "exit 1",
    ].join("\n"));
    fake("systemctl", "exit 0");
    fake("dnf", "exit 1");
    fake("agent-ctl", "exit 0");
    const { script } = metricsHook({ config: { clusterName: "m", tls: false }, node: { name: "m-s0-r1" }, privateIp, paths: pathsUnder(root), metricsDir, agentCtl: join(bin, "agent-ctl") });
    const hook = join(root, "60-metrics");
    writeFileSync(hook, script);
    chmodSync(hook, 0o755);
    const r = spawnSync(hook, [], {
        encoding: "utf8",
        env: { PATH: `${bin}:${process.env.PATH}`, REDIS_SHARD: "0", REDIS_PORT: String(port), BACKUP_BUCKET: "bkt", AWS_REGION: "us-east-1" },
    });
    assert.equal(r.status, 0, r.stderr);
    return { hook, units, calls: readFileSync(calls, "utf8").trim().split("\n"), metricsDir };
}

/** The environment the collector unit gives its ExecStart: Environment= lines, then the EnvironmentFile. */
function unitEnvironment(service: string): Record<string, string> {
    const env: Record<string, string> = {};
    for (const m of service.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)) env[m[1]] = m[2];
    const file = /^EnvironmentFile=(.+)$/m.exec(service)![1];
    for (const line of readFileSync(file, "utf8").trim().split("\n")) {
        const i = line.indexOf("=");
        env[line.slice(0, i)] = line.slice(i + 1);
    }
    return env;
}

test("the node side for real: the hook installs the stack's esbuild bundle and its timer; the unit's command sends valid EMF; deltas from its state file", async () => {
    const root = mkdtempSync(join(dir, "node-"));
    const bundle = join(dir, "bundle.cjs");
    writeFileSync(bundle, bundleCollector());
    const replica = fx.shards[0][1];
    const h = runHook(root, bundle, replica.host, replica.port);
    assert.deepEqual(h.calls.filter((c) => !c.startsWith("aws ")), [
        `agent-ctl -a fetch-config -m ec2 -s -c file:${h.metricsDir}/agent.json`,
        "systemctl daemon-reload",
        "systemctl enable -q --now redis-cluster-metrics.timer",
    ]);
    assert.equal(statSync(join(h.metricsDir, "env")).mode & 0o777, 0o600, "the password file is root-only");
    const service = readFileSync(join(h.units, "redis-cluster-metrics.service"), "utf8");
    assert.ok(existsSync(join(h.units, "redis-cluster-metrics.timer")));
    const exec = /^ExecStart=\/usr\/bin\/node (.+)$/m.exec(service)![1];
    assert.equal(readFileSync(exec, "utf8"), readFileSync(bundle, "utf8"));

    // The unit's command with the unit's environment; only the agent's address and the state dir
    // (systemd's StateDirectory=) are moved to the test's.
    const env: Record<string, string> = { ...unitEnvironment(service), METRICS_STATE_FILE: join(root, "state", "state.json") };
    // The hook hands the unit the cluster's bucket; the bucket here is s3rver's (same layout, below backups/).
    assert.equal(env.BACKUP_BUCKET, "bkt");
    assert.equal(env.AWS_REGION, "us-east-1");
    const nodeS3 = await startS3("bkt");
    Object.assign(process.env, nodeS3.env); // this process seeds the bucket
    const now = Math.floor(Date.now() / 1000) * 1000;
    try {
        await seedBackups(openStore("s3://bkt/backups", { s3Endpoint: nodeS3.endpoint }), now);
    } catch (e) {
        await nodeS3.stop();
        throw e;
    }
    Object.assign(env, nodeS3.env, { METRICS_S3_ENDPOINT: nodeS3.endpoint });
    assert.equal(env.REDIS_DATA_DIR, join(root, "var/lib/redis-cluster"));
    mkdirSync(env.REDIS_DATA_DIR, { recursive: true });
    let first;
    try {
        first = await runNodePublisher(exec, env);
    } finally {
        // The second run must not need S3: the facts are cached in the state file for 15 minutes.
        await nodeS3.stop();
    }
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.lines.length, 2, "the node's document and the cluster's");
    const facts = first.lines.map((l) => JSON.parse(l) as EmfDocument).find((d) => d.NodeName === undefined)!;
    assert.deepEqual([...validateEmf(facts), ...emfRuleViolations(facts)], []);
    assert.deepEqual(facts._aws.CloudWatchMetrics[0].Dimensions, [["ClusterName"]]);
    assertAges(facts.LastBackupAgeSeconds as number, facts.LastVerifiedRestoreAgeSeconds as number, now);
    const cached = JSON.parse(readFileSync(env.METRICS_STATE_FILE, "utf8")) as { backup: { readAt: number; facts: { lastCompletedAt: string } } };
    assert.equal(cached.backup.facts.lastCompletedAt, new Date(now - DAY + 300_000).toISOString());
    await new Promise((r) => setTimeout(r, 200));
    const second = await runNodePublisher(exec, env);
    assert.equal(second.lines.length, 2);
    assert.equal(second.stderr, "", "no S3 read, hence no warning, with s3rver stopped");
    const facts2 = second.lines.map((l) => JSON.parse(l) as EmfDocument).find((d) => d.NodeName === undefined)!;
    assertAges(facts2.LastBackupAgeSeconds as number, facts2.LastVerifiedRestoreAgeSeconds as number, now);
    // 16 minutes later the node reads again; the store is gone: the previous facts stay (ages against now), with a warning.
    const st = JSON.parse(readFileSync(env.METRICS_STATE_FILE, "utf8")) as { backup: { readAt: number } };
    st.backup.readAt -= 16 * 60_000;
    writeFileSync(env.METRICS_STATE_FILE, JSON.stringify(st));
    const third = await runNodePublisher(exec, env);
    assert.equal(third.code, 0, third.stderr);
    assert.match(third.stderr, /cannot read the backups in s3:\/\/bkt\/backups\/m: .*; publishing the ages from the read of \d{4}-/);
    const facts3 = third.lines.map((l) => JSON.parse(l) as EmfDocument).find((d) => d.NodeName === undefined)!;
    assertAges(facts3.LastBackupAgeSeconds as number, facts3.LastVerifiedRestoreAgeSeconds as number, now);
    assert.equal(second.code, 0, second.stderr);
    const doc = second.lines.map((l) => JSON.parse(l) as EmfDocument).find((d) => d.NodeName !== undefined)!;
    assert.deepEqual(validateEmf(doc), []);
    assert.deepEqual(emfRuleViolations(doc), []);
    assert.equal(doc.NodeName, "m-s0-r1");
    assert.equal(doc._aws.LogGroupName, "/redis-cluster/m/nodes");
    assert.equal(doc.MasterLinkHealthStatus, 1);
    assert.equal(typeof doc.ReplicationBytes, "number", "the master's offset was read through the replica's master_host");
    assert.equal(typeof doc.EngineCPUUtilization, "number", "second run: a delta from the state file");
    assert.equal(first.lines.map((l) => JSON.parse(l) as EmfDocument).find((d) => d.NodeName !== undefined)!.EngineCPUUtilization, undefined, "first run: no previous reading");
    assert.ok((doc.DataVolumeUsedPercent as number) > 0 && (doc.DataVolumeUsedPercent as number) <= 100);
});

test("prometheus: promtool accepts the text; a real Prometheus server scrapes `metrics --serve` and sees ClusterStateOk", async () => {
    const text = renderPrometheus((await collect()).snapshot);
    const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
    assert.match(text, /^redis_cluster_state_ok\{cluster_name="m",shard="0",node_name="m-s0-r0"\} 1$/m);

    const ac = new AbortController();
    const { out, stdout } = capturedOutput({ json: true });
    const serving = metricsCommand({ topology: fx.topologyFile, serve: "127.0.0.1:0", json: true, connectTimeout: 500 }, { out, signal: ac.signal });
    let prom: ChildProcess | undefined;
    const promDir = mkdtempSync(join(dir, "prom-"));
    try {
        const url = await waitUntil(async () => {
            const line = stdout().split("\n").find((l) => l.includes('"listening"'));
            return line ? (JSON.parse(line) as { url: string }).url : undefined;
        }, { timeoutMs: 5000, what: "metrics --serve to listen" });
        const target = new URL(url).host;
        const promPort = await freePortPair();
        writeFileSync(join(promDir, "prometheus.yml"), [
            "global:", "  scrape_interval: 1s", "  scrape_timeout: 1s",
            "scrape_configs:", "  - job_name: redis-cluster", "    static_configs:", `      - targets: ["${target}"]`, "",
        ].join("\n"));
        prom = spawn("prometheus", [`--config.file=${join(promDir, "prometheus.yml")}`, `--storage.tsdb.path=${join(promDir, "data")}`,
            `--web.listen-address=127.0.0.1:${promPort}`, "--log.level=warn"], { stdio: ["ignore", "ignore", "pipe"] });
        let promErr = "";
        prom.stderr!.on("data", (d) => (promErr += d));
        const result = await waitUntil(async () => {
            try {
                const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent("redis_cluster_state_ok")}`);
                const body = (await res.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
                return body.data.result.length === 6 ? body.data.result : undefined;
            } catch {
                return undefined; // not up yet
            }
        }, { timeoutMs: 20000, intervalMs: 200, maxIntervalMs: 500, what: "Prometheus to scrape the 6 nodes" }, () => promErr.slice(-500));
        assert.deepEqual(result.map((r) => r.metric.node_name).sort(), topology.nodes.map((n) => n.name).sort());
        assert.ok(result.every((r) => r.value[1] === "1" && r.metric.job === "redis-cluster" && r.metric.cluster_name === "m"));
    } finally {
        if (prom && prom.exitCode === null) {
            const exited = new Promise((r) => prom!.once("exit", r));
            prom.kill("SIGTERM");
            const t = setTimeout(() => prom!.kill("SIGKILL"), 3000);
            await exited;
            clearTimeout(t);
        }
        ac.abort();
        assert.equal(await serving, 0);
    }
});

test("status --watch: refreshes a per-shard table and stops cleanly on Ctrl-C", async () => {
    const ac = new AbortController();
    const { out, stdout } = capturedOutput();
    const bdir = mkdtempSync(join(dir, "watch-backups-"));
    await seedBackups(openStore(bdir), Math.floor(Date.now() / 1000) * 1000);
    const watching = statusCommand({ topology: fx.topologyFile, watch: 1, connectTimeout: 500, backupsFrom: bdir }, { out, signal: ac.signal });
    await waitUntil(async () => (stdout().match(/^m  \d{4}-/gm) ?? []).length >= 2, { timeoutMs: 8000, what: "two frames" });
    ac.abort(); // what the CLI's SIGINT handler does
    assert.equal(await watching, 0);
    const frame = stdout().split("\n\n\n")[0];
    assert.match(frame, /6\/6 reachable, state ok on 6, 16384\/16384 slots, HEALTHY/);
    assert.match(frame, /^backups: last complete 23h 55m ago, last verified restore 2d 0h ago$/m);
    assert.match(frame, /^SHARD\s+ROLE\s+NAME\s+ADDRESS\s+OPS\/S\s+MEM%\s+LAG\s+LINK\s+FAIL-REPORTS$/m);
    for (let sh = 0; sh < 3; sh++) {
        assert.match(frame, new RegExp(`^${sh}\\s+master\\s+m-s${sh}-r0\\s+\\S+\\s+\\d+\\s+-\\s+-\\s+1 repl\\s+0$`, "m"));
        assert.match(frame, new RegExp(`^${sh}\\s+replica\\s+m-s${sh}-r1\\s+\\S+\\s+\\d+\\s+-\\s+\\d+s/\\d+ B\\s+up\\s+0$`, "m"));
    }
});

test("the CLI: metrics --format prometheus prints the snapshot; status --watch exits 0 on Ctrl-C", async () => {
    const snap = await runCli(["metrics", "--topology", fx.topologyFile, "--format", "prometheus"]);
    assert.equal(snap.code, 0, snap.stderr);
    assert.equal((snap.stdout.match(/^redis_cluster_state_ok\{.*\} 1$/gm) ?? []).length, 6);
    const [json, emf] = await Promise.all([
        runCli(["metrics", "--topology", fx.topologyFile, "--format", "json"]),
        runCli(["metrics", "--topology", fx.topologyFile, "--format", "emf"]),
    ]);
    const doc = JSON.parse(json.stdout) as MetricsSnapshot;
    assert.deepEqual(doc.nodes.map((n) => n.name).sort(), topology.nodes.map((n) => n.name).sort());
    const docs = emf.stdout.trim().split("\n").map((l) => JSON.parse(l) as EmfDocument);
    assert.equal(docs.length, 6);
    for (const d of docs) assert.deepEqual([...validateEmf(d), ...emfRuleViolations(d)], []);
    const w = spawnCli(["status", "--topology", fx.topologyFile, "--watch", "1"]);
    let out = "";
    w.proc.stdout!.on("data", (d) => (out += d));
    await waitUntil(async () => /HEALTHY/.test(out), { timeoutMs: 15000, what: "the first frame" }, () => w.stderrSoFar());
    w.proc.kill("SIGINT");
    const done = await w.done;
    assert.equal(done.code, 0, done.stderr);
});

const DAY = 86400_000;
/**
 * Cluster m: an old complete backup verified 2 days ago; a complete one of a day ago
 * (completed 5 min after its slot) whose verify failed; an unfinished one of an hour
 * ago. Another cluster's newer backup beside it must not count.
 */
async function seedBackups(store: BackupStore, now: number): Promise<void> {
    await writeBackup(store, "m", { at: new Date(now - 3 * DAY), completedAt: new Date(now - 3 * DAY + 600_000), verified: { at: new Date(now - 2 * DAY), ok: true } });
    await writeBackup(store, "m", { at: new Date(now - DAY), completedAt: new Date(now - DAY + 300_000), verified: { at: new Date(now - 20 * 3600_000), ok: false } });
    await writeBackup(store, "m", { at: new Date(now - 3600_000) });
    await writeBackup(store, "other", { at: new Date(now - 600_000), completedAt: new Date(now - 500_000), verified: { at: new Date(now - 100_000), ok: true } });
}
/** The ages seedBackups implies, read up to `slackS` seconds after `now`. */
function assertAges(backupAge: number | undefined, verifyAge: number | undefined, now: number, slackS = 20): void {
    const late = Math.round((Date.now() - now) / 1000) + slackS;
    assert.ok(backupAge !== undefined && backupAge >= 86400 - 300 && backupAge <= 86400 - 300 + late, `LastBackupAgeSeconds ${backupAge}`);
    assert.ok(verifyAge !== undefined && verifyAge >= 2 * 86400 && verifyAge <= 2 * 86400 + late, `LastVerifiedRestoreAgeSeconds ${verifyAge}`);
}
function clusterFact(snap: MetricsSnapshot, name: string): number | undefined {
    return snap.cluster.find((s) => s.name === name)?.value;
}

test("backup ages from a directory store (manifests from the manifest module): json and prometheus; an empty or missing store warns and publishes nothing", async () => {
    const bdir = mkdtempSync(join(dir, "backups-"));
    const now = Math.floor(Date.now() / 1000) * 1000;
    await seedBackups(openStore(bdir), now);
    const json = capturedOutput();
    assert.equal(await metricsCommand({ topology: fx.topologyFile, format: "json", backupsFrom: bdir, connectTimeout: 500 }, { out: json.out, signal: new AbortController().signal }), 0, json.stderr());
    const snap = JSON.parse(json.stdout()) as MetricsSnapshot;
    assertAges(clusterFact(snap, "LastBackupAgeSeconds"), clusterFact(snap, "LastVerifiedRestoreAgeSeconds"), now);
    assert.deepEqual(snap.cluster.map((s) => s.dimensions), [{ ClusterName: "m" }, { ClusterName: "m" }]);
    assert.equal(json.stderr(), "");

    const prom = capturedOutput();
    assert.equal(await metricsCommand({ topology: fx.topologyFile, format: "prometheus", backupsFrom: bdir, connectTimeout: 500 }, { out: prom.out, signal: new AbortController().signal }), 0);
    const m = /^redis_cluster_last_backup_age_seconds\{cluster_name="m"\} (\d+)$/m.exec(prom.stdout());
    assert.ok(m, prom.stdout());
    assertAges(Number(m[1]), Number(/^redis_cluster_last_verified_restore_age_seconds\{cluster_name="m"\} (\d+)$/m.exec(prom.stdout())![1]), now);
    const check = spawnSync("promtool", ["check", "metrics"], { input: prom.stdout(), encoding: "utf8" });
    assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);

    for (const [what, from] of [["empty", mkdtempSync(join(dir, "empty-"))], ["missing", join(dir, "no-such-dir")]]) {
        const c = capturedOutput();
        assert.equal(await metricsCommand({ topology: fx.topologyFile, format: "json", backupsFrom: from, connectTimeout: 500 }, { out: c.out, signal: new AbortController().signal }), 0, what);
        assert.deepEqual((JSON.parse(c.stdout()) as MetricsSnapshot).cluster, [], what);
        assert.match(c.stderr(), /no complete backup \(0 incomplete\): LastBackupAgeSeconds not published/, what);
    }
    // Backups, none verified: the backup age, and a warning for the other.
    const unverified = mkdtempSync(join(dir, "unverified-"));
    await writeBackup(openStore(unverified), "m", { at: new Date(now - 3600_000), completedAt: new Date(now - 3000_000) });
    const u = capturedOutput();
    assert.equal(await metricsCommand({ topology: fx.topologyFile, format: "json", backupsFrom: unverified, connectTimeout: 500 }, { out: u.out, signal: new AbortController().signal }), 0);
    const us = JSON.parse(u.stdout()) as MetricsSnapshot;
    assert.deepEqual(us.cluster.map((s) => s.name), ["LastBackupAgeSeconds"]);
    assert.match(u.stderr(), /no successful `backup verify`/);
});

test("backup ages from S3 (s3rver, --s3-endpoint); a store that cannot be listed is a warning and no sample, not a crash", async () => {
    s3 = await startS3("metrics-backups");
    Object.assign(process.env, s3.env);
    const now = Math.floor(Date.now() / 1000) * 1000;
    await seedBackups(openStore(`s3://${s3.bucket}/backups`, { s3Endpoint: s3.endpoint }), now);
    const opts = { topology: fx.topologyFile, format: "json", backupsFrom: `s3://${s3.bucket}/backups`, s3Endpoint: s3.endpoint, connectTimeout: 500 };
    const c = capturedOutput();
    assert.equal(await metricsCommand(opts, { out: c.out, signal: new AbortController().signal }), 0, c.stderr());
    const snap = JSON.parse(c.stdout()) as MetricsSnapshot;
    assertAges(clusterFact(snap, "LastBackupAgeSeconds"), clusterFact(snap, "LastVerifiedRestoreAgeSeconds"), now);

    const nobucket = capturedOutput();
    assert.equal(await metricsCommand({ ...opts, backupsFrom: "s3://no-such-bucket/backups" }, { out: nobucket.out, signal: new AbortController().signal }), 0);
    assert.deepEqual((JSON.parse(nobucket.stdout()) as MetricsSnapshot).cluster, []);
    assert.match(nobucket.stderr(), /cannot read the backups in s3:\/\/no-such-bucket\/backups\/m: .*; the backup age metrics are not published/);

    await s3.stop();
    s3 = undefined;
    const down = capturedOutput();
    const t0 = Date.now();
    assert.equal(await metricsCommand(opts, { out: down.out, signal: new AbortController().signal }), 0);
    assert.deepEqual((JSON.parse(down.stdout()) as MetricsSnapshot).cluster, []);
    assert.match(down.stderr(), /cannot read the backups in s3:\/\/metrics-backups\/backups\/m/);
    assert.ok(Date.now() - t0 < 10_000, `an unreachable store held the command ${Date.now() - t0} ms`);
});

test("--serve reads the backup store at most once per interval; concurrent scrapes share a read", async () => {
    let reads = 0;
    let clock = 0;
    const read = async () => {
        reads++;
        await new Promise((r) => setTimeout(r, 20));
        return { facts: { lastCompletedAt: new Date(0).toISOString() }, warnings: reads === 1 ? ["w"] : [] };
    };
    const get = cachedBackupFacts(read, 15 * 60_000, () => clock);
    const [a, b] = await Promise.all([get(), get()]);
    assert.equal(reads, 1);
    assert.deepEqual([a.facts, b.facts], [{ lastCompletedAt: "1970-01-01T00:00:00.000Z" }, { lastCompletedAt: "1970-01-01T00:00:00.000Z" }]);
    clock = 15 * 60_000 - 1;
    const c = await get();
    assert.equal(reads, 1);
    assert.deepEqual(c.warnings, [], "a cached answer repeats no warning");
    clock = 15 * 60_000;
    await get();
    assert.equal(reads, 2);
});

test("memory near maxmemory: usage percent and OOM errors on that master", async () => {
    const master = fx.client(fx.shards[0][0]);
    const used = Number(/used_memory:(\d+)/.exec((await master.call("INFO", "memory")) as string)![1]);
    await master.call("CONFIG", "SET", "maxmemory-policy", "noeviction");
    await master.call("CONFIG", "SET", "maxmemory", String(used + 512 * 1024));
    try {
        await collect();
        let oom = 0;
        for (let i = 0; i < 200 && oom < 3; i++) {
            try {
                await master.set(`{b}fill${i}`, "x".repeat(16 * 1024));
            } catch (e) {
                if (/OOM/.test((e as Error).message)) oom++;
                else throw e;
            }
        }
        assert.equal(oom, 3, "writes end in OOM errors");
        const { snapshot } = await collect();
        const pct = v(snapshot, "m-s0-r0", "DatabaseMemoryUsagePercentage")!;
        assert.ok(pct > 90 && pct < 110, `memory ${pct}%`);
        assert.equal(v(snapshot, "m-s0-r0", "ErrorOOM"), 3, "OOM errors in this interval");
        assert.equal(v(snapshot, "m-s1-r0", "ErrorOOM"), 0);
    } finally {
        await master.call("CONFIG", "SET", "maxmemory", "0");
        await master.call("FLUSHALL");
    }
});

test("a node that accepts but does not answer is reported as such; the others are still measured", async () => {
    const frozen = fx.shards[2][1];
    frozen.proc.kill("SIGSTOP");
    try {
        const t0 = Date.now();
        const { snapshot } = await collect();
        const n = snapshot.nodes.find((x) => x.name === "m-s2-r1")!;
        assert.equal(n.reachable, false);
        assert.match(n.error ?? "", /timed out/i);
        assert.deepEqual(n.samples.map((s) => [s.name, s.value]), [["ClusterStateOk", 0]]);
        assert.ok(Date.now() - t0 < 5000, "bounded by the command timeout");
        for (const other of snapshot.nodes.filter((x) => x.name !== "m-s2-r1")) assert.equal(v(snapshot, other.name, "IsMaster") !== undefined, true, other.name);
    } finally {
        frozen.proc.kill("SIGCONT");
    }
    await waitUntil(async () => {
        const { snapshot } = await collect();
        return Object.values(all(snapshot, "ClusterStateOk")).every((x) => x === 1) && v(snapshot, "m-s2-r1", "MasterLinkHealthStatus") === 1;
    }, { timeoutMs: 15000, what: "the frozen replica to be back" });
});

test("a killed replica: unreachable, its master has no connected replica, the others flag it failing", async () => {
    await killServer(fx.shards[1][1]);
    const r = await waitUntil(async () => {
        const c = await collect();
        const report = evaluateStatus(c.status);
        const failing = report.cluster.failing.find((f) => f.node === fx.shards[1][1].key);
        return failing?.flag === "fail" ? { ...c, report } : undefined;
    }, { timeoutMs: 15000, what: "the killed replica to be flagged fail" });
    assert.equal(v(r.snapshot, "m-s1-r0", "ConnectedReplicas"), 0);
    assert.equal(v(r.snapshot, "m-s1-r1", "ClusterStateOk"), 0);
    assert.deepEqual(r.report.cluster.shardsWithoutReplica, ["shard 1"]);
    // A replica does not own slots: the cluster stays ok everywhere else.
    for (const n of r.snapshot.nodes.filter((x) => x.reachable)) assert.equal(v(r.snapshot, n.name, "ClusterStateOk"), 1, n.name);
});

test("a killed master after failover: its replica is master without replicas, slots no longer fail", async () => {
    await killServer(fx.shards[2][0]);
    const failing = await waitUntil(async () => {
        const { snapshot } = await collect();
        return Object.values(all(snapshot, "ClusterSlotsFail")).some((x) => (x ?? 0) > 0) || v(snapshot, "m-s2-r1", "IsMaster") === 1 ? snapshot : undefined;
    }, { timeoutMs: 15000, what: "the killed master to be noticed" });
    void failing;
    const { snapshot } = await waitUntil(async () => {
        const c = await collect();
        const s = c.snapshot;
        return v(s, "m-s2-r1", "IsMaster") === 1 && s.nodes.filter((n) => n.reachable).every((n) => v(s, n.name, "ClusterStateOk") === 1 && v(s, n.name, "ClusterSlotsFail") === 0) ? c : undefined;
    }, { timeoutMs: 20000, what: "the replica promoted and the cluster ok again" });
    assert.equal(v(snapshot, "m-s2-r1", "ConnectedReplicas"), 0);
    assert.equal(v(snapshot, "m-s2-r1", "MasterLinkHealthStatus"), undefined, "now a master");
    assert.equal(v(snapshot, "m-s2-r0", "ClusterStateOk"), 0, "the dead master is reported down");
    assert.ok(existsSync(fx.topologyFile));
});

test("a backup store that never answers (an endpoint that accepts and stays silent) costs the read its timeout, not the run", async () => {
    const { readBackupFacts } = await import("../../scripts/metrics/backupFacts");
    const socks: import("node:net").Socket[] = [];
    const silent = createServer((sock) => void socks.push(sock));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    try {
        const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
        // Credentials, so that the client gets as far as the request.
        Object.assign(process.env, { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1", AWS_CONFIG_FILE: "/dev/null", AWS_SHARED_CREDENTIALS_FILE: "/dev/null", AWS_EC2_METADATA_DISABLED: "true" });
        const t0 = Date.now();
        const r = await readBackupFacts(openStore("s3://hung/backups", { s3Endpoint: endpoint }), "m", { timeoutMs: 500 });
        assert.ok(Date.now() - t0 < 3000, `${Date.now() - t0} ms`);
        assert.ok(socks.length >= 1, "the S3 client did connect");
        assert.equal(r.failed, true);
        assert.deepEqual(r.facts, {});
        assert.match(r.warnings[0], /cannot read the backups in s3:\/\/hung\/backups\/m: no answer within 500 ms/);
    } finally {
        for (const s of socks) s.destroy();
        silent.close();
    }
});
