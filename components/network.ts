import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { planSubnets } from "./plan/subnets";
import { assumeRolePolicy, childName, flowLogGroupName, tags, zoneResourceName } from "./naming";

/** Interface endpoints for Session Manager (ssm, ssmmessages, ec2messages) and the CloudWatch agent (logs, monitoring). */
export const INTERFACE_ENDPOINT_SERVICES = ["ssm", "ssmmessages", "ec2messages", "logs", "monitoring"] as const;

export interface NetworkArgs {
    clusterName: string;
    /** VPC CIDR; cut into one private subnet per zone by `planSubnets`. */
    vpcCidr: string;
    /** Availability zone names, zone index i -> availabilityZones[i]; one subnet each. */
    availabilityZones: string[];
    region: string;
    /**
     * Create the Session Manager and CloudWatch interface endpoints in every zone.
     * When false only the `ssm` and `logs` endpoints are created, in zone 0: nodes
     * still read their secrets from Parameter Store at boot and publish their metrics
     * (EMF through the agent), but there is no Session Manager. @default true
     */
    interfaceEndpoints: boolean;
    /** Retention of the VPC flow log group. */
    logRetentionDays: number;
    /** Account the flow-log role may be assumed for (aws:SourceAccount). */
    accountId?: string;
}

/**
 * A VPC with one private subnet per zone and nothing routed to the internet.
 * Packages (Amazon Linux 2023 repositories live in S3) and backups go through
 * the S3 gateway endpoint, AWS APIs through interface endpoints, so the nodes
 * need neither a NAT gateway nor a public address.
 */
export class Network extends pulumi.ComponentResource {
    readonly vpc: aws.ec2.Vpc;
    readonly vpcId: pulumi.Output<string>;
    readonly subnets: aws.ec2.Subnet[];
    readonly subnetIds: pulumi.Output<string>[];
    /** Prefix list of the S3 gateway endpoint, for security group egress. */
    readonly s3PrefixListId: pulumi.Output<string>;
    /** The S3 gateway endpoint, for route tables added later (the autoscale runner's). */
    readonly s3EndpointId: pulumi.Output<string>;
    readonly endpointSecurityGroup: aws.ec2.SecurityGroup;

    constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:Network", name, {}, opts);
        const parent = { parent: this };
        const t = (display: string) => tags(args.clusterName, display);

        this.vpc = new aws.ec2.Vpc(childName(name, "vpc"), {
            cidrBlock: args.vpcCidr,
            // Private DNS of interface endpoints needs both.
            enableDnsSupport: true,
            enableDnsHostnames: true,
            tags: t(childName(args.clusterName, "vpc")),
        }, parent);
        this.vpcId = this.vpc.id;

        // The default security group allows all traffic between its members; take its rules away so
        // nothing launched into this VPC by hand is open by accident.
        new aws.ec2.DefaultSecurityGroup(childName(name, "default-sg"), {
            vpcId: this.vpc.id,
            tags: t(childName(args.clusterName, "default-sg-unused")),
        }, parent);

        const plans = planSubnets(args.vpcCidr, args.availabilityZones.length);
        const routeTables: aws.ec2.RouteTable[] = [];
        this.subnets = plans.map((p) => {
            const az = args.availabilityZones[p.zoneIndex];
            const subnet = new aws.ec2.Subnet(zoneResourceName(name, "subnet", p.zoneIndex), {
                vpcId: this.vpc.id,
                cidrBlock: p.cidr,
                availabilityZone: az,
                mapPublicIpOnLaunch: false,
                tags: t(`${args.clusterName}-private-${az}`),
            }, parent);
            // Nodes take fixed addresses from the upper half; an explicit reservation keeps AWS from
            // handing any of them to the load balancer or an endpoint, so a node added later always
            // finds its address free.
            new aws.ec2.SubnetCidrReservation(zoneResourceName(name, "node-range", p.zoneIndex), {
                subnetId: subnet.id,
                cidrBlock: p.nodeRangeCidr,
                reservationType: "explicit",
                description: `Fixed addresses of ${args.clusterName} Redis nodes`,
            }, parent);
            // Own route table per subnet: only the implicit local route and the S3 gateway endpoint.
            const rt = new aws.ec2.RouteTable(zoneResourceName(name, "rt", p.zoneIndex), {
                vpcId: this.vpc.id,
                tags: t(`${args.clusterName}-private-${az}`),
            }, parent);
            new aws.ec2.RouteTableAssociation(zoneResourceName(name, "rta", p.zoneIndex), {
                subnetId: subnet.id,
                routeTableId: rt.id,
            }, parent);
            routeTables.push(rt);
            return subnet;
        });
        this.subnetIds = this.subnets.map((s) => s.id);

        const s3 = new aws.ec2.VpcEndpoint(childName(name, "s3"), {
            vpcId: this.vpc.id,
            serviceName: `com.amazonaws.${args.region}.s3`,
            vpcEndpointType: "Gateway",
            routeTableIds: routeTables.map((rt) => rt.id),
            tags: t(childName(args.clusterName, "s3")),
        }, parent);
        this.s3PrefixListId = s3.prefixListId;
        this.s3EndpointId = s3.id;

        this.endpointSecurityGroup = new aws.ec2.SecurityGroup(childName(name, "endpoints-sg"), {
            vpcId: this.vpc.id,
            description: `HTTPS from the ${args.clusterName} VPC to its interface endpoints`,
            tags: t(childName(args.clusterName, "endpoints-sg")),
        }, parent);
        new aws.vpc.SecurityGroupIngressRule(childName(name, "endpoints-https-in"), {
            securityGroupId: this.endpointSecurityGroup.id,
            description: "HTTPS from the VPC",
            ipProtocol: "tcp",
            fromPort: 443,
            toPort: 443,
            cidrIpv4: args.vpcCidr,
        }, parent);

        // Without the full set, still ssm (secrets at boot) and logs (the metrics: EMF through the agent).
        const services = args.interfaceEndpoints ? [...INTERFACE_ENDPOINT_SERVICES] : ["ssm", "logs"];
        const endpointSubnets = args.interfaceEndpoints ? this.subnetIds : [this.subnetIds[0]];
        for (const svc of services) {
            new aws.ec2.VpcEndpoint(childName(name, svc), {
                vpcId: this.vpc.id,
                serviceName: `com.amazonaws.${args.region}.${svc}`,
                vpcEndpointType: "Interface",
                privateDnsEnabled: true,
                subnetIds: endpointSubnets,
                securityGroupIds: [this.endpointSecurityGroup.id],
                tags: t(childName(args.clusterName, svc)),
            }, parent);
        }

        // Flow logs: who talked to the nodes, and what the security groups refused.
        const logGroup = new aws.cloudwatch.LogGroup(childName(name, "flow-logs"), {
            name: flowLogGroupName(args.clusterName),
            retentionInDays: args.logRetentionDays,
            tags: t(childName(args.clusterName, "flow-logs")),
        }, parent);
        const flowRole = new aws.iam.Role(childName(name, "flow-logs-role"), {
            assumeRolePolicy: JSON.stringify(assumeRolePolicy("vpc-flow-logs.amazonaws.com", args.accountId)),
            tags: t(childName(args.clusterName, "flow-logs-role")),
        }, parent);
        new aws.iam.RolePolicy(childName(name, "flow-logs-policy"), {
            role: flowRole.id,
            policy: pulumi.jsonStringify({
                Version: "2012-10-17",
                Statement: [{
                    Effect: "Allow",
                    Action: ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:DescribeLogGroups"],
                    Resource: [logGroup.arn, pulumi.interpolate`${logGroup.arn}:*`],
                }],
            }),
        }, { parent: flowRole });
        new aws.ec2.FlowLog(childName(name, "flow-log"), {
            vpcId: this.vpc.id,
            trafficType: "ALL",
            logDestinationType: "cloud-watch-logs",
            logDestination: logGroup.arn,
            iamRoleArn: flowRole.arn,
            tags: t(childName(args.clusterName, "flow-log")),
        }, parent);

        this.registerOutputs({ vpcId: this.vpcId, subnetIds: this.subnetIds, s3PrefixListId: this.s3PrefixListId });
    }
}
