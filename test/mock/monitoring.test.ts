/**
 * Monitoring as registered for every committed stack: every alarm of the table for
 * every node, shard and the cluster, with the right dimensions and thresholds, to the
 * SNS topic; the composite "unhealthy" alarm over the critical ones; the dashboard
 * (a line per node in each shard row); the collector bundle in the bucket and the
 * metrics hook in every node's user data; the node role's CloudWatch rights.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStackYaml, StackConfig } from "../../components/config";
import { ALARM_RULES } from "../../components/monitoring";
import { COLLECTOR_KEY, METRICS_HOOK_NAME } from "../../components/bootstrap/metricsHook";
import { nodeLogGroupName } from "../../components/naming";
import { byType, readStack, Registered, RunResult, runStack, T, userDataOf } from "./harness";

const STACKS = ["dev", "staging", "prod"] as const;
const runs = new Map<string, { cfg: StackConfig; r: RunResult }>();
async function get(stack: string) {
    if (!runs.has(stack)) runs.set(stack, { cfg: parseStackYaml(readStack(stack), stack), r: await runStack(stack) });
    return runs.get(stack)!;
}
const redisAlarms = (r: RunResult) => byType(r, T.alarm).filter((a) => a.inputs.namespace === "RedisCluster");

for (const stack of STACKS) {
    test(`${stack}: every Redis alarm exists for every node, shard and the cluster, with its dimensions, to the SNS topic`, async () => {
        const { cfg, r } = await get(stack);
        const topicArn = byType(r, "aws:sns/topic:Topic")[0].state.arn as string;
        const nodes = r.outputs.topology.nodes as { name: string; shard: number }[];
        const shards = [...new Set(nodes.map((n) => n.shard))];
        const alarms = redisAlarms(r);
        const byName = new Map(alarms.map((a) => [a.inputs.name as string, a]));
        let expected = 0;
        for (const rule of ALARM_RULES) {
            const subjects: [string, Record<string, string>][] = rule.scope === "node"
                ? nodes.map((n) => [`${n.name}-${rule.id}`, { ClusterName: cfg.clusterName, Shard: String(n.shard), NodeName: n.name }])
                : rule.scope === "shard"
                    ? shards.map((s) => [`${cfg.clusterName}-s${s}-${rule.id}`, { ClusterName: cfg.clusterName, Shard: String(s) }])
                    : [[`${cfg.clusterName}-${rule.id}`, { ClusterName: cfg.clusterName }]];
            const wanted = rule.id !== "no-replica" || cfg.replicasPerShard > 0;
            for (const [name, dims] of subjects) {
                const a = byName.get(name);
                assert.equal(!!a, wanted, `${stack}: alarm ${name}`);
                if (!a) continue;
                expected++;
                assert.deepEqual(a.inputs.dimensions, dims, name);
                assert.equal(a.inputs.metricName, rule.metric);
                assert.deepEqual(a.inputs.alarmActions, [topicArn], `${name} pages through the topic`);
                assert.deepEqual(a.inputs.okActions, [topicArn]);
                assert.equal(a.inputs.period, rule.period);
                assert.equal(a.inputs.treatMissingData, rule.missing);
                assert.ok(String(a.inputs.alarmDescription).length > 60, `${name} says what to do`);
            }
        }
        assert.equal(alarms.length, expected, "no alarm outside the table");
        const t = (id: string) => byName.get(`${nodes[0].name}-${id}`)!.inputs.threshold;
        assert.equal(t("memory-warning"), cfg.alarmMemoryWarningPercent);
        assert.equal(t("memory-critical"), cfg.alarmMemoryCriticalPercent);
        assert.equal(t("engine-cpu"), cfg.alarmEngineCpuPercent);
        assert.equal(t("replication-lag"), cfg.alarmReplicationLagSeconds);
        const state = byName.get(`${nodes[0].name}-cluster-state`)!.inputs;
        assert.deepEqual([state.evaluationPeriods, state.datapointsToAlarm, state.treatMissingData], [2, 2, "breaching"], "2 of 2 minutes, silence breaches");
        assert.equal(byName.get(`${cfg.clusterName}-backup-age`)!.inputs.threshold, cfg.alarmBackupMaxAgeHours * 3600);
        assert.equal(byName.get(`${cfg.clusterName}-restore-verify-age`)!.inputs.threshold, cfg.backupVerifyMaxAgeDays * 86400);

        const composite = byType(r, "aws:cloudwatch/compositeAlarm:CompositeAlarm");
        assert.equal(composite.length, 1, "one composite below 100 children");
        const rule = String(composite[0].inputs.alarmRule);
        const critical = alarms.filter((a) => a.inputs.tags["redis-cluster:severity"] === "critical").map((a) => a.inputs.name as string);
        assert.deepEqual(rule.split(" OR ").sort(), critical.map((n) => `ALARM("${n}")`).sort());
        assert.deepEqual(composite[0].inputs.alarmActions, [topicArn]);
    });

    test(`${stack}: the dashboard has the cluster row and a row per shard with a line per node`, async () => {
        const { cfg, r } = await get(stack);
        const dashboards = byType(r, "aws:cloudwatch/dashboard:Dashboard");
        assert.equal(dashboards.length, 1);
        assert.equal(dashboards[0].inputs.dashboardName, cfg.clusterName);
        assert.equal(r.outputs.dashboardName, cfg.clusterName);
        const body = JSON.parse(dashboards[0].inputs.dashboardBody) as { widgets: { type: string; properties: any }[] };
        const graphs = body.widgets.filter((w) => w.type === "metric");
        const nodes = r.outputs.topology.nodes as { name: string; shard: number }[];
        for (let s = 0; s < cfg.shards; s++) {
            const row = graphs.filter((g) => String(g.properties.title).startsWith(`shard ${s}:`));
            assert.deepEqual(row.map((g) => g.properties.metrics[0][1]), ["DatabaseMemoryUsagePercentage", "CommandsProcessed", "EngineCPUUtilization", "ReplicationLag", "CurrConnections"]);
            for (const g of row) {
                const lines = g.properties.metrics as unknown[][];
                assert.deepEqual(lines.map((l) => l.slice(0, 8)), nodes.filter((n) => n.shard === s).map((n) => ["RedisCluster", l0(g), "ClusterName", cfg.clusterName, "Shard", String(s), "NodeName", n.name]));
            }
        }
        const clusterRow = graphs.filter((g) => !String(g.properties.title).startsWith("shard "));
        assert.deepEqual(clusterRow.map((g) => g.properties.metrics[0][1]), ["ClusterStateOk", "ClusterSlotsFail", "ClusterSlotsPfail", "ClusterKnownNodes", "LastBackupAgeSeconds"]);
        const alarmWidget = body.widgets.find((w) => w.type === "alarm")!;
        assert.equal(alarmWidget.properties.alarms[0], byType(r, "aws:cloudwatch/compositeAlarm:CompositeAlarm")[0].state.arn);
    });

    test(`${stack}: collector bundle in the bucket, metrics hook in every node, node role limited to its log group`, async () => {
        const { cfg, r } = await get(stack);
        const objects = byType(r, "aws:s3/bucketObjectv2:BucketObjectv2");
        assert.equal(objects.length, 1);
        assert.equal(objects[0].inputs.key, COLLECTOR_KEY);
        assert.equal(objects[0].inputs.serverSideEncryption, "aws:kms");
        assert.match(String(objects[0].inputs.content), /EngineCPUUtilization/, "the bundle carries the tool's mapping");
        const lifecycle = byType(r, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")[0].inputs.rules as { filter: { prefix: string } }[];
        for (const rule of lifecycle) assert.ok(rule.filter.prefix.length > 0 && !COLLECTOR_KEY.startsWith(rule.filter.prefix), "the bundle never expires");
        for (const i of byType(r, T.instance)) {
            const ud = userDataOf(i);
            assert.ok(ud.includes(`"$HOOKS_DIR/${METRICS_HOOK_NAME}"`), `${i.name}: metrics hook installed`);
            assert.ok(ud.includes("redis-cluster-metrics.timer"));
        }
        const policy = JSON.parse(byType(r, T.rolePolicy).find((p) => p.name.endsWith("node-policy"))!.inputs.policy) as { Statement: { Sid: string; Action: string | string[]; Resource: string | string[] }[] };
        const actions = (s: { Action: string | string[] }) => ([] as string[]).concat(s.Action);
        const resources = (s: { Resource: string | string[] }) => ([] as string[]).concat(s.Resource);
        assert.ok(!policy.Statement.some((s) => actions(s).some((a) => a.startsWith("cloudwatch:"))), "no PutMetricData: metrics arrive as EMF in the log group");
        const logGroupArn = `arn:aws:logs:us-east-1:123456789012:log-group:${nodeLogGroupName(cfg.clusterName)}`;
        for (const s of policy.Statement.filter((x) => actions(x).some((a) => a.startsWith("logs:")))) {
            assert.deepEqual(resources(s).sort(), [logGroupArn, `${logGroupArn}:*`].sort(), `${s.Sid}: only the node log group`);
        }
        const read = policy.Statement.find((s) => s.Sid === "ReadMetricsCollector")!;
        assert.deepEqual(actions(read), ["s3:GetObject"]);
        assert.match(resources(read)[0], new RegExp(`/${COLLECTOR_KEY.replace(/\./g, "\\.")}$`));
    });
}

/** The metric name of a graph's first line. */
function l0(g: Registered["inputs"]): string {
    return g.properties.metrics[0][1];
}
