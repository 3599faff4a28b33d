import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { childName, tags } from "./naming";

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
}

/**
 * An SNS topic and the alarms that publish to it:
 * - per node, the system status check with the EC2 recover action (same
 *   instance id, network interface, IP and volumes on new hardware), the
 *   instance status check, and CPU;
 * - the load balancer's unhealthy target count.
 * CPU is instance-wide: Redis runs commands on one thread, so one busy core on
 * a 2-vCPU node reads as 50%.
 */
export class Alarms extends pulumi.ComponentResource {
    readonly topic: aws.sns.Topic;

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

        this.registerOutputs({ topicArn: this.topic.arn });
    }
}
