/**
 * The pure mapping (scripts/plan/metrics.ts) and the EMF documents it renders,
 * validated against the embedded metric format's published rules.
 */
import { test } from "node:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ALARM_RULES } from "../../components/monitoring";
import assert from "node:assert/strict";
import { METRICS, metricCount, MetricsNodeInput, replicaEntry, toSamples, parseCollectorState } from "../../scripts/plan/metrics";
import { renderEmf, renderPrometheus, EmfDocument } from "../../scripts/plan/metricsFormat";
import { emfRuleViolations, validateEmf } from "../helpers/emf";

const T0 = Date.parse("2026-12-01T10:00:00Z");

function node(over: Partial<MetricsNodeInput> & { info?: Record<string, string> }): MetricsNodeInput {
    return {
        name: "c-s0-r0", shard: 0, key: "10.0.0.10:6379", reachable: true, hasErrorstats: true, at: T0,
        clusterInfo: { cluster_state: "ok", cluster_slots_fail: "0", cluster_slots_pfail: "0", cluster_known_nodes: "6" },
        ...over,
        info: {
            role: "master", run_id: "a".repeat(40), used_cpu_sys: "10.5", used_cpu_user: "4.5", used_memory: "850", maxmemory: "1000",
            connected_clients: "7", total_connections_received: "100", rejected_connections: "0", total_commands_processed: "5000",
            evicted_keys: "0", expired_keys: "3", keyspace_hits: "40", keyspace_misses: "2", connected_slaves: "1",
            aof_last_write_status: "ok", rdb_last_bgsave_status: "ok", db0: "keys=12,expires=1,avg_ttl=0", errorstat_OOM: "count=2",
            ...over.info,
        },
    };
}

const value = (samples: { name: string; value?: number }[], name: string) => samples.find((s) => s.name === name)?.value;

test("toSamples: gauges as read, counters as deltas only with a previous reading of the same process", () => {
    const first = toSamples({ clusterName: "c", nodes: [node({})], now: T0 });
    const s1 = first.snapshot.nodes[0].samples;
    assert.equal(value(s1, "DatabaseMemoryUsagePercentage"), 85);
    assert.equal(value(s1, "CurrItems"), 12);
    assert.equal(value(s1, "IsMaster"), 1);
    assert.equal(value(s1, "ConnectedReplicas"), 1);
    assert.equal(value(s1, "NewConnections"), undefined, "no previous reading: no delta");
    assert.equal(s1.find((s) => s.name === "NewConnections")!.total, 100);
    assert.equal(s1.find((s) => s.name === "EngineCPUUtilization")!.total, 15);

    const later = node({ at: T0 + 60_000, info: { used_cpu_sys: "29.5", used_cpu_user: "12.5", total_connections_received: "130", errorstat_OOM: "count=5" } });
    const second = toSamples({ clusterName: "c", nodes: [later], previous: first.state, now: T0 + 60_000 }).snapshot.nodes[0].samples;
    assert.equal(value(second, "EngineCPUUtilization"), 45, "27 CPU seconds in 60 s = 45% of one core");
    assert.equal(value(second, "NewConnections"), 30);
    assert.equal(value(second, "ErrorOOM"), 3);

    const restarted = node({ at: T0 + 60_000, info: { run_id: "b".repeat(40), total_connections_received: "5" } });
    const third = toSamples({ clusterName: "c", nodes: [restarted], previous: first.state, now: T0 + 60_000 }).snapshot.nodes[0].samples;
    assert.equal(value(third, "NewConnections"), undefined, "a restart leaves no valid delta");
});

test("toSamples: a replica's lag from its master's view, link down, and an unreachable node", () => {
    const masterRepl = { master_repl_offset: "5000", slave0: "ip=10.0.0.11,port=6379,state=online,offset=4900,lag=1", slave1: "ip=10.0.0.12,port=6379,state=online,offset=5000,lag=0" };
    assert.deepEqual(replicaEntry(masterRepl, { host: "10.0.0.11", port: 6379 }), { offset: 4900, lag: 1, state: "online" });
    assert.equal(replicaEntry(masterRepl, { host: "10.0.0.99", port: 6379 }), undefined, "two replicas on port 6379: the port alone is not enough");
    const replica = node({ name: "c-s0-r1", key: "10.0.0.11:6379", masterReplication: masterRepl, info: { role: "slave", master_link_status: "up", slave_repl_offset: "4900" } });
    const down = node({ name: "c-s0-r2", key: "10.0.0.12:6379", info: { role: "slave", master_link_status: "down", master_link_down_since_seconds: "42", slave_repl_offset: "4000" } });
    const gone = node({ name: "c-s1-r0", shard: 1, key: "10.0.0.13:6379", reachable: false, error: "connect ECONNREFUSED" });
    const { snapshot } = toSamples({ clusterName: "c", nodes: [replica, down, gone], now: T0 });
    const [r, d, g] = snapshot.nodes;
    assert.equal(value(r.samples, "ReplicationLag"), 1);
    assert.equal(value(r.samples, "ReplicationBytes"), 100);
    assert.equal(value(r.samples, "MasterLinkHealthStatus"), 1);
    assert.equal(value(r.samples, "ConnectedReplicas"), undefined, "replicas do not publish it");
    assert.equal(value(d.samples, "MasterLinkHealthStatus"), 0);
    assert.equal(value(d.samples, "ReplicationLag"), 42, "down for 42 s");
    assert.deepEqual(g.samples.map((s) => [s.name, s.value]), [["ClusterStateOk", 0]]);
    assert.equal(g.error, "connect ECONNREFUSED");
});

test("EMF documents pass the published schema and rules; aggregates are extra dimension sets; backup ages per cluster", () => {
    const first = toSamples({ clusterName: "c", nodes: [node({}), node({ name: "c-s0-r1", key: "10.0.0.11:6379", info: { role: "slave", master_link_status: "up" } })], now: T0 });
    const { snapshot } = toSamples({
        clusterName: "c",
        nodes: [node({ at: T0 + 60_000 }), node({ name: "c-s0-r1", key: "10.0.0.11:6379", at: T0 + 60_000, info: { role: "slave", master_link_status: "up" } })],
        previous: first.state,
        backupFacts: { lastCompletedAt: "2026-12-01T03:00:00Z", lastVerifiedAt: new Date(T0 - 86_400_000) },
        now: T0 + 60_000,
    });
    const docs = renderEmf(snapshot, { namespace: "RedisCluster", logGroupName: "/redis-cluster/c/nodes" });
    assert.equal(docs.length, 3, "two nodes and the cluster facts");
    for (const d of docs) {
        // One line each, as the agent's socket and CloudWatch Logs take them.
        const line = JSON.stringify(d);
        assert.ok(!line.includes("\n"));
        const parsed = JSON.parse(line) as EmfDocument;
        assert.deepEqual(validateEmf(parsed), []);
        assert.deepEqual(emfRuleViolations(parsed), []);
        assert.equal(parsed._aws.LogGroupName, "/redis-cluster/c/nodes");
    }
    const master = docs[0];
    assert.equal(master.NodeName, "c-s0-r0");
    assert.equal(master._aws.LogStreamName, "c-s0-r0");
    const setsOf = (name: string) => master._aws.CloudWatchMetrics.filter((d) => d.Metrics.some((m) => m.Name === name)).flatMap((d) => d.Dimensions);
    assert.deepEqual(setsOf("ClusterSlotsFail"), [["ClusterName", "Shard", "NodeName"], ["ClusterName"]]);
    assert.deepEqual(setsOf("ConnectedReplicas"), [["ClusterName", "Shard", "NodeName"], ["ClusterName", "Shard"]]);
    assert.deepEqual(setsOf("CurrItems"), [["ClusterName", "Shard", "NodeName"]]);
    assert.equal(master.NewConnections, 0, "a counter's delta");
    const facts = docs[2];
    assert.deepEqual(facts._aws.CloudWatchMetrics[0].Dimensions, [["ClusterName"]]);
    assert.equal(facts.LastBackupAgeSeconds, 7 * 3600 + 60);
    assert.equal(facts.LastVerifiedRestoreAgeSeconds, 86_460);

    // The rules checker does catch what the schema cannot.
    assert.ok(emfRuleViolations({ ...master, NodeName: 3 } as EmfDocument).includes("dimension NodeName is not a string member of the root"));
    assert.ok(emfRuleViolations({ ...master, CurrItems: "12" } as EmfDocument).includes("metric CurrItems is not a number on the root"));
});

test("Prometheus: counters carry totals and end in _total; families are contiguous; label values are escaped", () => {
    const { snapshot } = toSamples({ clusterName: 'we"ird\\name', nodes: [node({})], now: T0 });
    const text = renderPrometheus(snapshot);
    assert.match(text, /^# TYPE redis_cluster_connections_received_total counter$/m);
    assert.match(text, /^redis_cluster_connections_received_total\{cluster_name="we\\"ird\\\\name",shard="0",node_name="c-s0-r0"\} 100$/m);
    const families = text.split("\n").filter((l) => l.startsWith("# TYPE")).map((l) => l.split(" ")[2]);
    assert.equal(new Set(families).size, families.length);
    for (const m of METRICS) if (m.kind !== "gauge") assert.match(m.prom, /_total$/, m.name);
});

test("metric count per node, per shard and per cluster (the README's cost table)", () => {
    const perNode = METRICS.filter((m) => !m.clusterOnly).length;
    assert.deepEqual(metricCount({ shards: 3, nodes: 6 }), { perNode, nodes: perNode * 6, shard: 3, cluster: 3, total: perNode * 6 + 6 });
    assert.equal(perNode, 24);
    assert.equal(parseCollectorState("{torn"), undefined);
    assert.equal(parseCollectorState(JSON.stringify({ version: 1, nodes: {} }))!.version, 1);
});

test("the README's Monitoring section lists every alarm of the table and the metric counts", () => {
    const readme = readFileSync(join(__dirname, "..", "..", "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Monitoring"), readme.indexOf("\n## ", readme.indexOf("## Monitoring") + 5));
    for (const r of ALARM_RULES) assert.ok(section.includes(`| \`${r.id}\` |`), `README lists alarm ${r.id}`);
    assert.ok(section.includes(`${metricCount({ shards: 3, nodes: 6 }).total}`) && section.includes(`${metricCount({ shards: 3, nodes: 9 }).total}`));
    for (const m of METRICS) assert.ok(section.includes(m.name), `README names ${m.name}`);
});
