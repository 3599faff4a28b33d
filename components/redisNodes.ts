import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { StackConfig } from "./config";
import type { UserDataInput } from "./bootstrap/contract";
import type { TopologyNode } from "./topology";
import type { NodePlan } from "./plan/placement";
import { renderUserData } from "./bootstrap/userData";
import { RedisNode } from "./redisNode";
import { childName, nodeLogGroupName, nodeResourceName, tags } from "./naming";

export interface RedisNodesArgs {
    config: StackConfig;
    /** Every node of the shape, from `planNodes`. */
    nodes: NodePlan[];
    /** Zone index -> availability zone name. */
    availabilityZones: string[];
    /** Zone index -> subnet id. */
    subnetIds: pulumi.Input<string>[];
    securityGroupId: pulumi.Input<string>;
    instanceProfileName: pulumi.Input<string>;
    kmsKeyArn: pulumi.Input<string>;
    amiId: string;
    amiPinned: boolean;
    region: string;
    backupBucketName: pulumi.Input<string>;
    /** Renders one node's user data. @default renderUserData from ./bootstrap/userData */
    renderUserData?: (input: UserDataInput) => string;
    /** Prefix of node resource names: nodes are `${namePrefix}-s<shard>-r<replica>`. */
    namePrefix: string;
}

/** Every node of the cluster, plus the log group they write to. */
export class RedisNodes extends pulumi.ComponentResource {
    readonly nodes: { plan: NodePlan; az: string; node: RedisNode }[];
    /** The `topology.nodes` the operations tool reads. */
    readonly topologyNodes: pulumi.Output<TopologyNode[]>;
    readonly logGroup: aws.cloudwatch.LogGroup;

    constructor(name: string, args: RedisNodesArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:RedisNodes", name, {}, opts);
        const cfg = args.config;
        this.logGroup = new aws.cloudwatch.LogGroup(childName(name, "logs"), {
            name: nodeLogGroupName(cfg.clusterName),
            retentionInDays: cfg.logRetentionDays,
            tags: tags(cfg.clusterName, nodeLogGroupName(cfg.clusterName)),
        }, { parent: this });

        this.nodes = args.nodes.map((plan) => {
            const az = args.availabilityZones[plan.zoneIndex];
            const node = new RedisNode(nodeResourceName(args.namePrefix, plan.shard, plan.replica), {
                config: cfg,
                plan,
                availabilityZone: az,
                subnetId: args.subnetIds[plan.zoneIndex],
                securityGroupId: args.securityGroupId,
                instanceProfileName: args.instanceProfileName,
                kmsKeyArn: args.kmsKeyArn,
                amiId: args.amiId,
                amiPinned: args.amiPinned,
                region: args.region,
                backupBucketName: args.backupBucketName,
                renderUserData: args.renderUserData ?? renderUserData,
            }, { parent: this });
            return { plan, az, node };
        });

        this.topologyNodes = pulumi.all(this.nodes.map(({ plan, az, node }) =>
            node.instanceId.apply((instanceId): TopologyNode => ({
                name: plan.name,
                shard: plan.shard,
                az,
                host: plan.privateIp,
                port: cfg.port,
                instanceId,
            }))));
        this.registerOutputs({ topologyNodes: this.topologyNodes, logGroupArn: this.logGroup.arn });
    }
}
