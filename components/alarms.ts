import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { childName, METRICS_NAMESPACE, tags } from "./naming";
import { AlarmSettings, chunk, compositeRule, MonitoredNode, planAlarms } from "./monitoring";

export interface AlarmsArgs {
    clusterName: string;
    region: string;
    partition: string;
    /** E-mail subscribed to the topic (may be a secret). */
    alarmEmail?: pulumi.Input<string>;
    cpuThresholdPercent: number;
    nodes: { resourceName: string; name: string; instanceId: pulumi.Input<string> }[];
    loadBalancerArnSuffix: pulumi.Input<string>;
    targetGroupArnSuffix: pulumi.Input<string>;
    /** The Redis alarms of the table in monitoring.ts, on the metrics the nodes publish. */
    redis: { settings: AlarmSettings; nodes: MonitoredNode[] };
}

/**
 * An SNS topic and the alarms that publish to it:
 * - per node, the system status check with the EC2 recover action (same
 *   instance id, network interface, IP and volumes on new hardware), the
 *   instance status check, and CPU;
 * - the load balancer's unhealthy target count.
 * CPU is instance-wide: Redis runs commands on one thread, so one busy core on
 * a 2-vCPU node reads as 50%.
 * - the Redis alarms, generated from the table in monitoring.ts (ALARM_RULES) for
 *   every node, shard and the cluster, and one composite "cluster unhealthy"
 *   alarm over the critical ones.
 */
export class Alarms extends pulumi.ComponentResource {
    readonly topic: aws.sns.Topic;
    /** The Redis alarms by name (ALARM_RULES × nodes/shards/cluster). */
    readonly redisAlarms: aws.cloudwatch.MetricAlarm[];
    readonly unhealthy: aws.cloudwatch.CompositeAlarm;

    constructor(name: string, args: AlarmsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:Alarms", name, {}, opts);
        const parent = { parent: this };
        this.topic = new aws.sns.Topic(childName(name, "alarms"), {
            tags: tags(args.clusterName, childName(args.clusterName, "alarms")),
        }, parent);
        if (args.alarmEmail !== undefined) {
            new aws.sns.TopicSubscription(childName(name, "alarms-email"), {
                topic: this.topic.arn,
                protocol: "email",
                endpoint: args.alarmEmail,
            }, parent);
        }
        const notify = [this.topic.arn];
        const recover = `arn:${args.partition}:automate:${args.region}:ec2:recover`;

        for (const n of args.nodes) {
            const ec2Alarm = (role: string, a: Partial<aws.cloudwatch.MetricAlarmArgs>) => new aws.cloudwatch.MetricAlarm(`${n.resourceName}-${role}`, {
                namespace: "AWS/EC2",
                dimensions: { InstanceId: n.instanceId },
                okActions: notify,
                comparisonOperator: "GreaterThanThreshold",
                tags: tags(args.clusterName, `${n.name}-${role}`),
                ...a,
            } as aws.cloudwatch.MetricAlarmArgs, parent);
            ec2Alarm("system-check", {
                alarmDescription: `${n.name}: system status check failed; EC2 recovers the instance onto healthy hardware`,
                metricName: "StatusCheckFailed_System",
                statistic: "Maximum",
                period: 60,
                evaluationPeriods: 2,
                threshold: 0,
                alarmActions: [recover, ...notify],
            });
            ec2Alarm("instance-check", {
                alarmDescription: `${n.name}: instance status check failed (OS or boot problem); look at the console output`,
                metricName: "StatusCheckFailed_Instance",
                statistic: "Maximum",
                period: 60,
                evaluationPeriods: 3,
                threshold: 0,
                alarmActions: notify,
            });
            ec2Alarm("cpu", {
                alarmDescription: `${n.name}: CPU above ${args.cpuThresholdPercent}% for 15 minutes`,
                metricName: "CPUUtilization",
                statistic: "Average",
                period: 300,
                evaluationPeriods: 3,
                threshold: args.cpuThresholdPercent,
                alarmActions: notify,
            });
        }

        new aws.cloudwatch.MetricAlarm(childName(name, "unhealthy-targets"), {
            alarmDescription: `${args.clusterName}: a node fails the load balancer's health check`,
            namespace: "AWS/NetworkELB",
            metricName: "UnHealthyHostCount",
            dimensions: { LoadBalancer: args.loadBalancerArnSuffix, TargetGroup: args.targetGroupArnSuffix },
            statistic: "Maximum",
            period: 60,
            evaluationPeriods: 2,
            threshold: 0,
            comparisonOperator: "GreaterThanThreshold",
            alarmActions: notify,
            okActions: notify,
            tags: tags(args.clusterName, childName(args.clusterName, "unhealthy-targets")),
        }, parent);

        const planned = planAlarms(args.redis.settings, args.redis.nodes, name);
        this.redisAlarms = planned.map((a) => new aws.cloudwatch.MetricAlarm(a.resourceName, {
            name: a.name,
            alarmDescription: a.description,
            namespace: METRICS_NAMESPACE,
            metricName: a.rule.metric,
            dimensions: a.dimensions,
            statistic: a.rule.statistic,
            period: a.rule.period,
            evaluationPeriods: a.rule.datapoints,
            datapointsToAlarm: a.rule.datapoints,
            threshold: a.threshold,
            comparisonOperator: a.rule.comparison,
            treatMissingData: a.rule.missing,
            alarmActions: notify,
            okActions: notify,
            tags: tags(args.clusterName, a.name, { "redis-cluster:severity": a.rule.severity }),
        }, parent));

        // CloudWatch takes at most 100 children per composite rule: beyond that, a level of parts.
        const critical = planned.filter((a) => a.rule.severity === "critical").map((a) => a.name);
        const unhealthyName = `${args.clusterName}-unhealthy`;
        const groups = chunk(critical);
        const critAlarms = this.redisAlarms.filter((_, i) => planned[i].rule.severity === "critical");
        let children: string[] = critical;
        let dependsOn: pulumi.Resource[] = critAlarms;
        if (groups.length > 1) {
            const parts = groups.map((g, i) => new aws.cloudwatch.CompositeAlarm(childName(name, `unhealthy-part-${i}`), {
                alarmName: `${unhealthyName}-part-${i}`,
                alarmDescription: `${args.clusterName}: part ${i} of the critical alarms behind ${unhealthyName}`,
                alarmRule: compositeRule(g),
                actionsEnabled: false,
                tags: tags(args.clusterName, `${unhealthyName}-part-${i}`),
            }, { parent: this, dependsOn: critAlarms }));
            children = parts.map((_, i) => `${unhealthyName}-part-${i}`);
            dependsOn = parts;
        }
        this.unhealthy = new aws.cloudwatch.CompositeAlarm(childName(name, "unhealthy"), {
            alarmName: unhealthyName,
            alarmDescription: `${args.clusterName}: at least one critical Redis alarm is firing (cluster state, failed slots, replica link or lag, a shard without replica, memory, OOM, data volume, backups). ` +
                "The notification of the child alarm says what to do; `npm run cluster -- status --stack <stack>` shows the whole cluster.",
            alarmRule: compositeRule(children),
            alarmActions: notify,
            okActions: notify,
            tags: tags(args.clusterName, unhealthyName),
        }, { parent: this, dependsOn });

        this.registerOutputs({ topicArn: this.topic.arn, unhealthyAlarmArn: this.unhealthy.arn });
    }
}
