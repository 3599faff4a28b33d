import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { awsName32, childName, tags } from "./naming";

export interface LoadBalancerArgs {
    clusterName: string;
    vpcId: pulumi.Input<string>;
    subnetIds: pulumi.Input<string>[];
    securityGroupId: pulumi.Input<string>;
    port: number;
    /**
     * Refuse deletion of the load balancer in AWS (AWS Security Hub control ELB.6), with the data
     * it fronts (`protectData`). `pulumi destroy` then fails on it until this is set to false and
     * applied. @default false
     */
    deletionProtection?: boolean;
    /** Every node: its resource name (for the attachment's name) and fixed private IP. */
    targets: { resourceName: string; privateIp: string }[];
}

/**
 * An internal network load balancer over the private subnets: the cluster's
 * discovery (seed) endpoint, like ElastiCache's configuration endpoint. A
 * cluster client connects to it once, reads CLUSTER SLOTS/SHARDS, then talks
 * to the nodes directly at their private IPs.
 *
 * Targets are the nodes' fixed IPs (target type `ip`), so replacing an
 * instance never re-registers anything; client IP preservation is on so nodes
 * see who connects (CLIENT LIST, ACL LOG). Health checks are TCP connects to
 * the Redis port. A node must not reach itself through this load balancer
 * (NLB hairpinning drops such connections with client IP preservation on);
 * nodes never need to.
 */
export class LoadBalancer extends pulumi.ComponentResource {
    readonly loadBalancer: aws.lb.LoadBalancer;
    readonly targetGroup: aws.lb.TargetGroup;
    readonly dnsName: pulumi.Output<string>;

    constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:LoadBalancer", name, {}, opts);
        const parent = { parent: this };

        // Explicit names (AWS caps them at 32 characters), hence delete-before-replace.
        this.loadBalancer = new aws.lb.LoadBalancer(childName(name, "nlb"), {
            name: awsName32(args.clusterName, "nlb"),
            loadBalancerType: "network",
            internal: true,
            subnets: args.subnetIds,
            // An NLB gets security groups only at creation; they let the node group admit "the load balancer".
            securityGroups: [args.securityGroupId],
            enableCrossZoneLoadBalancing: true,
            enableDeletionProtection: args.deletionProtection ?? false,
            tags: tags(args.clusterName, childName(args.clusterName, "nlb")),
        }, { parent: this, deleteBeforeReplace: true });

        this.targetGroup = new aws.lb.TargetGroup(childName(name, "tg"), {
            name: awsName32(args.clusterName, "tg"),
            vpcId: args.vpcId,
            port: args.port,
            protocol: "TCP",
            targetType: "ip",
            preserveClientIp: "true",
            deregistrationDelay: 30,
            healthCheck: {
                enabled: true,
                protocol: "TCP",
                port: "traffic-port",
                interval: 10,
                healthyThreshold: 3,
                unhealthyThreshold: 3,
            },
            tags: tags(args.clusterName, childName(args.clusterName, "tg")),
        }, { parent: this, deleteBeforeReplace: true });

        for (const t of args.targets) {
            new aws.lb.TargetGroupAttachment(`${t.resourceName}-target`, {
                targetGroupArn: this.targetGroup.arn,
                targetId: t.privateIp,
                port: args.port,
            }, parent);
        }

        new aws.lb.Listener(childName(name, "listener"), {
            loadBalancerArn: this.loadBalancer.arn,
            port: args.port,
            protocol: "TCP",
            defaultActions: [{ type: "forward", targetGroupArn: this.targetGroup.arn }],
            tags: tags(args.clusterName, childName(args.clusterName, "listener")),
        }, parent);

        this.dnsName = this.loadBalancer.dnsName;
        this.registerOutputs({ dnsName: this.dnsName });
    }
}
