import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { childName, tags } from "./naming";

export interface SecurityGroupsArgs {
    clusterName: string;
    vpcId: pulumi.Input<string>;
    vpcCidr: string;
    /** Client port; the cluster bus is port + 10000. */
    port: number;
    /** CIDRs of clients allowed to reach the Redis port (directly and through the load balancer). */
    clientCidrs: string[];
    /** Security groups of clients allowed to reach the Redis port. */
    clientSecurityGroupIds: string[];
    /** Prefix list of the S3 gateway endpoint (packages and backups). */
    s3PrefixListId: pulumi.Input<string>;
}

/**
 * Two groups: one on the nodes' network interfaces, one on the load balancer.
 *
 * - Cluster bus (port + 10000): only node to node.
 * - Client port on the nodes: from the nodes themselves (replication, the
 *   tool on a node), from the load balancer's group, and from the configured
 *   client CIDRs / groups (cluster clients follow MOVED redirects to node
 *   addresses, so they need the nodes directly, not only the load balancer).
 * - The load balancer keeps client IP preservation on, so nodes see real client
 *   addresses in CLIENT LIST and the ACL log; AWS documents that a target rule
 *   referencing the load balancer's group still admits that traffic. Clients
 *   are therefore filtered once, on the load balancer's group, and health
 *   checks need no VPC-wide rule.
 * - Egress: the client and bus ports to the nodes' own group, HTTPS to the VPC
 *   (interface endpoints) and to the S3 prefix list. Nothing reaches the internet.
 * - No rule anywhere admits 0.0.0.0/0.
 */
export class SecurityGroups extends pulumi.ComponentResource {
    readonly nodeSecurityGroup: aws.ec2.SecurityGroup;
    readonly loadBalancerSecurityGroup: aws.ec2.SecurityGroup;

    constructor(name: string, args: SecurityGroupsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:SecurityGroups", name, {}, opts);
        const parent = { parent: this };
        const bus = args.port + 10000;

        this.nodeSecurityGroup = new aws.ec2.SecurityGroup(childName(name, "nodes"), {
            vpcId: args.vpcId,
            description: `Redis nodes of ${args.clusterName}: client port ${args.port}, cluster bus ${bus}`,
            tags: tags(args.clusterName, childName(args.clusterName, "nodes")),
        }, parent);
        this.loadBalancerSecurityGroup = new aws.ec2.SecurityGroup(childName(name, "lb"), {
            vpcId: args.vpcId,
            description: `Load balancer of ${args.clusterName}: clients to port ${args.port}`,
            tags: tags(args.clusterName, childName(args.clusterName, "lb")),
        }, parent);
        const nodes = this.nodeSecurityGroup.id;
        const lb = this.loadBalancerSecurityGroup.id;

        const ingress = (role: string, sg: pulumi.Input<string>, rule: Omit<aws.vpc.SecurityGroupIngressRuleArgs, "securityGroupId">) =>
            new aws.vpc.SecurityGroupIngressRule(childName(name, role), { securityGroupId: sg, ...rule }, parent);
        const egress = (role: string, sg: pulumi.Input<string>, rule: Omit<aws.vpc.SecurityGroupEgressRuleArgs, "securityGroupId">) =>
            new aws.vpc.SecurityGroupEgressRule(childName(name, role), { securityGroupId: sg, ...rule }, parent);
        const tcp = (p: number) => ({ ipProtocol: "tcp", fromPort: p, toPort: p });

        // Node to node.
        ingress("bus-from-nodes", nodes, { ...tcp(bus), referencedSecurityGroupId: nodes, description: "Cluster bus between nodes" });
        ingress("redis-from-nodes", nodes, { ...tcp(args.port), referencedSecurityGroupId: nodes, description: "Replication and tooling between nodes" });
        egress("bus-to-nodes", nodes, { ...tcp(bus), referencedSecurityGroupId: nodes, description: "Cluster bus between nodes" });
        egress("redis-to-nodes", nodes, { ...tcp(args.port), referencedSecurityGroupId: nodes, description: "Replication between nodes" });
        // Load balancer (traffic and health checks) to nodes.
        ingress("redis-from-lb", nodes, { ...tcp(args.port), referencedSecurityGroupId: lb, description: "Clients and health checks through the load balancer" });
        egress("lb-to-nodes", lb, { ...tcp(args.port), referencedSecurityGroupId: nodes, description: "To the client port of the nodes" });
        // Clients, both to the load balancer (discovery) and to the nodes (after MOVED/ASK).
        // Rules are named after their source, not their position, so removing one client leaves the others alone.
        for (const cidr of args.clientCidrs) {
            const key = cidr.replace(/[./]/g, "-");
            ingress(`redis-from-${key}`, nodes, { ...tcp(args.port), cidrIpv4: cidr, description: `Clients in ${cidr}` });
            ingress(`lb-from-${key}`, lb, { ...tcp(args.port), cidrIpv4: cidr, description: `Clients in ${cidr}` });
        }
        for (const sg of args.clientSecurityGroupIds) {
            ingress(`redis-from-${sg}`, nodes, { ...tcp(args.port), referencedSecurityGroupId: sg, description: `Clients in ${sg}` });
            ingress(`lb-from-${sg}`, lb, { ...tcp(args.port), referencedSecurityGroupId: sg, description: `Clients in ${sg}` });
        }
        // AWS APIs through interface endpoints, packages and backups through the S3 gateway endpoint.
        egress("https-to-vpc", nodes, { ...tcp(443), cidrIpv4: args.vpcCidr, description: "Interface endpoints (SSM, CloudWatch)" });
        egress("https-to-s3", nodes, { ...tcp(443), prefixListId: args.s3PrefixListId, description: "S3 gateway endpoint (packages, backups)" });

        this.registerOutputs({ nodeSecurityGroupId: nodes, loadBalancerSecurityGroupId: lb });
    }
}
