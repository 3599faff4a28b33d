import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { childName, METRICS_NAMESPACE } from "./naming";
import { MonitoredNode, planDashboard } from "./monitoring";

export interface DashboardArgs {
    clusterName: string;
    region: string;
    nodes: MonitoredNode[];
    /** Shown in the alarm status widget (the composite first). */
    alarmArns: pulumi.Input<string>[];
}

/**
 * The cluster's CloudWatch dashboard, planned from the same catalog as the alarms
 * (monitoring.ts): the cluster row (state, failing slots, known nodes, backup age)
 * and a row per shard (memory, commands, engine CPU, replication lag, connections)
 * with one line per node.
 */
export class Dashboard extends pulumi.ComponentResource {
    readonly dashboard: aws.cloudwatch.Dashboard;

    constructor(name: string, args: DashboardArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:Dashboard", name, {}, opts);
        this.dashboard = new aws.cloudwatch.Dashboard(childName(name, "dashboard"), {
            // Dashboard names allow letters, digits, - and _: cluster names are lowercase letters, digits and -.
            dashboardName: args.clusterName,
            dashboardBody: pulumi.all(args.alarmArns).apply((arns) => JSON.stringify(planDashboard({
                clusterName: args.clusterName, region: args.region, namespace: METRICS_NAMESPACE, nodes: args.nodes, alarmArns: arns,
            }))),
        }, { parent: this });
        this.registerOutputs({ dashboardName: this.dashboard.dashboardName });
    }
}
