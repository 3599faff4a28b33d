import * as os from "node:os";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { AutoscalePolicy } from "./autoscaleConfig";
import { s3Backend } from "./autoscaleConfig";
import { al2023AmiNamePattern, isBurstable } from "./plan/ami";
import { planRunnerSubnets } from "./plan/subnets";
import { SSM_AGENT_ACTIONS } from "./nodeRole";
import { COLLECTOR_KEY } from "./bootstrap/metricsHook";
import { projectBundle, pulumiSdkVersion, renderRunnerUserData, RUNNER_BUNDLE_KEY, RUNNER_UNIT, secretEnvFor } from "./bootstrap/runner";
import { assumeRolePolicy, childName, CLUSTER_TAG, tags } from "./naming";
import { gzipUserData } from "./bootstrap/userData";

/** The runner's root volume: the OS, Node.js, the Pulumi CLI and its AWS plugin, two releases of the project. */
export const RUNNER_ROOT_VOLUME_GIB = 20;

export interface AutoscaleRunnerArgs {
    clusterName: string;
    stack: string;
    region: string;
    accountId: string;
    partition: string;
    policy: AutoscalePolicy;
    vpcId: pulumi.Input<string>;
    /** The VPC's CIDR (the stack's `vpcCidr`): the runner's subnets are cut from it when the stack created the VPC. */
    vpcCidr: string;
    /** Zone 0: where the runner and, with a created VPC, its NAT gateway go. */
    availabilityZone: string;
    /** With an existing VPC: `autoscale.runnerSubnetId` (private, with a NAT route). Undefined: create the subnets. */
    subnetId?: string;
    /** With a created VPC: its S3 gateway endpoint, also routed from the runner's subnet (S3 stays off the NAT). */
    s3EndpointId?: pulumi.Input<string>;
    /** The client port of the nodes, the only port the runner may reach on them. */
    port: number;
    nodeSecurityGroupId: pulumi.Input<string>;
    /** The cluster key: the runner's root volume, the bundle in the bucket, new nodes' volumes. */
    kmsKeyArn: pulumi.Input<string>;
    backupBucketName: pulumi.Input<string>;
    backupBucketArn: pulumi.Input<string>;
    /** The node role: the only role the runner may pass (to new nodes). */
    nodeRoleArn: pulumi.Input<string>;
    /** The repository with the stack program (index.ts), bundled for the runner. */
    projectRoot: string;
    /**
     * The RedisCluster component's name: per-node EC2 alarms are auto-named after their
     * resource name (`<name>-s0-r0-…-<suffix>`), which starts with it, not with clusterName,
     * when the two differ. @default clusterName
     */
    resourcePrefix?: string;
}

/** What exists only once the cluster's other parts do (`launch`). */
export interface RunnerLaunchArgs {
    targetGroupArn: pulumi.Input<string>;
    dashboardName: pulumi.Input<string>;
    /** Published after these (the nodes): a failed update leaves the previous project, and so the previous shape, in the bucket. */
    publishAfter?: pulumi.Input<pulumi.Resource>[];
}

/**
 * The AWS runner of the autoscaler, created when `autoscale.enabled`: a small Graviton
 * instance in a private subnet (no public address, IMDSv2 only, encrypted root volume)
 * whose systemd timer runs `autoscale --stack <stack> --once` every
 * `autoscale.intervalSeconds` (components/bootstrap/runner.ts), with
 * - its own security group: no ingress; egress to the nodes' client port and HTTPS out
 *   (AWS APIs, npm, the Pulumi CLI and plugins); the nodes' group admits it on that port;
 * - with a VPC the stack creates, a private subnet of its own routed through a NAT gateway
 *   in a public subnet (the nodes' subnets keep no route out);
 * - an instance profile allowing what one decision does and nothing else: Session Manager;
 *   the secret that unlocks the stack; the state backend; the project bundle; and what
 *   `pulumi up` needs to add or remove nodes of this cluster (instances, interfaces and
 *   volumes tagged with the cluster, the node role to pass, the cluster key for their
 *   volumes, the cluster's target group, alarms and dashboard). No CloudWatch metric reads:
 *   the autoscaler reads the nodes themselves.
 *
 * The runner's own instance ignores newer AMIs, so its `pulumi up` never replaces the
 * machine it runs on; its user data only changes with the runner's settings, which only an
 * operator's `pulumi up` changes.
 */
export class AutoscaleRunner extends pulumi.ComponentResource {
    readonly securityGroup: aws.ec2.SecurityGroup;
    /** Created first: the cluster key's policy names it (EncryptionKey.restrictUse), as it names the node role. */
    readonly role: aws.iam.Role;
    readonly subnetId: pulumi.Output<string>;
    instance?: aws.ec2.Instance;
    policy?: aws.iam.RolePolicy;
    bundle?: aws.s3.BucketObjectv2;
    /** Rendered user data (plain text; the instance gets it gzipped). */
    userData?: pulumi.Output<string>;
    private readonly name: string;
    private readonly args: AutoscaleRunnerArgs;

    constructor(name: string, args: AutoscaleRunnerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:AutoscaleRunner", name, {}, opts);
        this.name = name;
        this.args = args;
        const parent = { parent: this };
        const a = args.policy;
        if (!a.runnerBackendUrl) throw new Error("AutoscaleRunner needs autoscale.runnerBackendUrl (runnerConfigProblems checks it first)");
        const t = (role: string) => tags(args.clusterName, childName(args.clusterName, role));

        // Where it runs: a subnet with a way out.
        if (args.subnetId) {
            this.subnetId = pulumi.output(args.subnetId);
        } else {
            const cidrs = planRunnerSubnets(args.vpcCidr);
            const igw = new aws.ec2.InternetGateway(childName(name, "igw"), { vpcId: args.vpcId, tags: t("autoscaler-igw") }, parent);
            const pub = new aws.ec2.Subnet(childName(name, "nat-subnet"), {
                vpcId: args.vpcId, cidrBlock: cidrs.publicCidr, availabilityZone: args.availabilityZone, mapPublicIpOnLaunch: false,
                tags: t("autoscaler-nat"),
            }, parent);
            const pubRt = new aws.ec2.RouteTable(childName(name, "nat-rt"), {
                vpcId: args.vpcId, routes: [{ cidrBlock: "0.0.0.0/0", gatewayId: igw.id }], tags: t("autoscaler-nat"),
            }, parent);
            new aws.ec2.RouteTableAssociation(childName(name, "nat-rta"), { subnetId: pub.id, routeTableId: pubRt.id }, parent);
            const eip = new aws.ec2.Eip(childName(name, "nat-eip"), { domain: "vpc", tags: t("autoscaler-nat") }, parent);
            const nat = new aws.ec2.NatGateway(childName(name, "nat"), {
                subnetId: pub.id, allocationId: eip.id, connectivityType: "public", tags: t("autoscaler-nat"),
            }, { parent: this, dependsOn: [igw] });
            const priv = new aws.ec2.Subnet(childName(name, "subnet"), {
                vpcId: args.vpcId, cidrBlock: cidrs.privateCidr, availabilityZone: args.availabilityZone, mapPublicIpOnLaunch: false,
                tags: t("autoscaler"),
            }, parent);
            const privRt = new aws.ec2.RouteTable(childName(name, "rt"), {
                vpcId: args.vpcId, routes: [{ cidrBlock: "0.0.0.0/0", natGatewayId: nat.id }], tags: t("autoscaler"),
            }, parent);
            new aws.ec2.RouteTableAssociation(childName(name, "rta"), { subnetId: priv.id, routeTableId: privRt.id }, parent);
            // The project fetch every interval, the CLI and packages from S3: free through the gateway, billed per GB through the NAT.
            if (args.s3EndpointId) {
                new aws.ec2.VpcEndpointRouteTableAssociation(childName(name, "s3"), { vpcEndpointId: args.s3EndpointId, routeTableId: privRt.id }, parent);
            }
            this.subnetId = priv.id;
        }

        this.securityGroup = new aws.ec2.SecurityGroup(childName(name, "sg"), {
            vpcId: args.vpcId,
            description: `Autoscaler of ${args.clusterName}: to the nodes' port ${args.port} and HTTPS out; no ingress`,
            tags: t("autoscaler"),
        }, parent);
        new aws.vpc.SecurityGroupEgressRule(childName(name, "redis-to-nodes"), {
            securityGroupId: this.securityGroup.id, ipProtocol: "tcp", fromPort: args.port, toPort: args.port,
            referencedSecurityGroupId: args.nodeSecurityGroupId, description: "The tool: collector reads, lease, scale",
        }, parent);
        new aws.vpc.SecurityGroupEgressRule(childName(name, "https-out"), {
            securityGroupId: this.securityGroup.id, ipProtocol: "tcp", fromPort: 443, toPort: 443, cidrIpv4: "0.0.0.0/0",
            description: "AWS APIs (endpoints or NAT), npm registry, Pulumi CLI and plugins (NAT)",
        }, parent);
        new aws.vpc.SecurityGroupIngressRule(childName(name, "redis-from-autoscaler"), {
            securityGroupId: args.nodeSecurityGroupId, ipProtocol: "tcp", fromPort: args.port, toPort: args.port,
            referencedSecurityGroupId: this.securityGroup.id, description: `The autoscaler of ${args.clusterName}`,
        }, parent);

        this.role = new aws.iam.Role(childName(name, "role"), {
            assumeRolePolicy: JSON.stringify(assumeRolePolicy("ec2.amazonaws.com")),
            description: `Autoscaler of ${args.clusterName}: one decision, pulumi up of this stack's nodes`,
            tags: t("autoscaler-role"),
        }, parent);
    }

    /**
     * The role's policy, the project bundle and the instance: once the load balancer, the
     * dashboard and the nodes exist (the policy names them; the bundle follows the nodes).
     */
    launch(launch: RunnerLaunchArgs): aws.ec2.Instance {
        const { name, args } = this;
        const a = args.policy;
        const parent = { parent: this };
        const t = (role: string) => tags(args.clusterName, childName(args.clusterName, role));
        // The project the runner runs, published by every pulumi up (its own included).
        const bundle = projectBundle(args.projectRoot, args.stack);
        // A file asset is recorded by its hash: the same project never shows as a change.
        const bundleFile = join(os.tmpdir(), `redis-cluster-autoscale-project-${bundle.sha256.slice(0, 16)}.zip`);
        writeFileSync(bundleFile, bundle.zip);
        this.bundle = new aws.s3.BucketObjectv2(childName(name, "project"), {
            bucket: args.backupBucketName,
            key: RUNNER_BUNDLE_KEY,
            source: new pulumi.asset.FileAsset(bundleFile),
            contentType: "application/zip",
            serverSideEncryption: "aws:kms",
            kmsKeyId: args.kmsKeyArn,
        }, { parent: this, dependsOn: launch.publishAfter });

        this.policy = new aws.iam.RolePolicy(childName(name, "policy"), {
            role: this.role.id,
            policy: pulumi.jsonStringify({ Version: "2012-10-17", Statement: runnerStatements({ ...args, ...launch }) }),
        }, { parent: this.role });
        const profile = new aws.iam.InstanceProfile(childName(name, "profile"), { role: this.role.name, tags: t("autoscaler-profile") }, parent);

        const ami = aws.ec2.getAmiOutput({
            owners: ["amazon"],
            mostRecent: true,
            filters: [
                { name: "name", values: [al2023AmiNamePattern("arm64")] },
                { name: "architecture", values: ["arm64"] },
                { name: "state", values: ["available"] },
            ],
        }, parent);
        const secret = a.runnerSecretArn ? { arn: a.runnerSecretArn, env: secretEnvFor(a.runnerBackendUrl!) } : undefined;
        const userData = pulumi.output(args.backupBucketName).apply((bucket) => renderRunnerUserData({
            clusterName: args.clusterName, stack: args.stack, region: args.region, bucket,
            intervalSeconds: a.intervalSeconds, backendUrl: a.runnerBackendUrl!, secret, pulumiVersion: pulumiSdkVersion(),
        }));
        this.userData = userData;
        const instance = new aws.ec2.Instance(childName(name, "instance"), {
            ami: ami.id,
            instanceType: a.runnerInstanceType,
            subnetId: this.subnetId,
            vpcSecurityGroupIds: [this.securityGroup.id],
            associatePublicIpAddress: false,
            iamInstanceProfile: profile.name,
            metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 },
            rootBlockDevice: {
                volumeType: "gp3", volumeSize: RUNNER_ROOT_VOLUME_GIB, encrypted: true, kmsKeyId: args.kmsKeyArn, deleteOnTermination: true,
                tags: t("autoscaler-root"),
            },
            creditSpecification: isBurstable(a.runnerInstanceType) ? { cpuCredits: "standard" } : undefined,
            userDataBase64: userData.apply(gzipUserData),
            // User data runs at first boot only: a changed interval or backend needs a new machine.
            userDataReplaceOnChange: true,
            tags: { ...t("autoscaler"), "redis-cluster:role": "autoscaler" },
        }, {
            parent: this,
            // Its own pulumi up must never replace it mid-run for a newer AMI.
            ignoreChanges: ["ami"],
            dependsOn: [this.policy, this.bundle],
        });
        this.instance = instance;
        this.registerOutputs({ instanceId: instance.id, securityGroupId: this.securityGroup.id, roleArn: this.role.arn, subnetId: this.subnetId });
        return instance;
    }
}

/** The runner role's statements, one per purpose, each on the narrowest resource AWS lets it name. */
export function runnerStatements(args: AutoscaleRunnerArgs & RunnerLaunchArgs): unknown[] {
    const a = args.policy;
    const p = args.partition;
    const region = args.region;
    const acct = args.accountId;
    const clusterTag = { [`aws:ResourceTag/${CLUSTER_TAG}`]: args.clusterName };
    const statements: unknown[] = [
        {
            // The SSM agent's own calls (AmazonSSMManagedInstanceCore minus its GetParameter(s) on "*").
            Sid: "SessionManagerAgent",
            Effect: "Allow",
            Action: SSM_AGENT_ACTIONS,
            Resource: "*",
        },
        {
            Sid: "ReadTheProject",
            Effect: "Allow",
            Action: ["s3:GetObject"],
            Resource: [pulumi.interpolate`${args.backupBucketArn}/${RUNNER_BUNDLE_KEY}`, pulumi.interpolate`${args.backupBucketArn}/${COLLECTOR_KEY}`],
        },
        {
            // Its own pulumi up republishes the project with the new shape in Pulumi.<stack>.yaml.
            Sid: "PublishTheProject",
            Effect: "Allow",
            Action: ["s3:PutObject", "s3:GetObjectTagging"],
            Resource: pulumi.interpolate`${args.backupBucketArn}/${RUNNER_BUNDLE_KEY}`,
        },
        {
            // Describe calls take no resource narrower than "*"; the program's lookups and the provider's reads.
            Sid: "ReadForPlanning",
            Effect: "Allow",
            Action: [
                "ec2:DescribeImages", "ec2:DescribeAvailabilityZones", "ec2:DescribeInstances", "ec2:DescribeInstanceAttribute",
                "ec2:DescribeInstanceTypes", "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceCreditSpecifications",
                "ec2:DescribeVolumes", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
                "ec2:DescribeTags", "ec2:DescribeVpcEndpointServices", "ec2:DescribeSnapshots",
                "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeTags",
                "cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource",
            ],
            Resource: "*",
        },
        {
            Sid: "ChangeNodesOfThisClusterOnly",
            Effect: "Allow",
            Action: [
                "ec2:RunInstances", "ec2:TerminateInstances", "ec2:StopInstances", "ec2:ModifyInstanceAttribute",
                "ec2:AttachVolume", "ec2:DetachVolume", "ec2:DeleteVolume", "ec2:CreateSnapshot",
                "ec2:DeleteNetworkInterface", "ec2:CreateTags",
            ],
            Resource: "*",
            Condition: { StringEquals: clusterTag },
        },
        {
            Sid: "CreateOnlyTaggedWithThisCluster",
            Effect: "Allow",
            Action: ["ec2:RunInstances", "ec2:CreateVolume", "ec2:CreateNetworkInterface", "ec2:CreateSnapshot", "ec2:CreateTags"],
            Resource: "*",
            Condition: { StringEquals: { [`aws:RequestTag/${CLUSTER_TAG}`]: args.clusterName } },
        },
        {
            Sid: "LaunchIntoTheStacksNetwork",
            Effect: "Allow",
            Action: ["ec2:RunInstances", "ec2:CreateNetworkInterface"],
            Resource: [`arn:${p}:ec2:${region}:${acct}:subnet/*`, `arn:${p}:ec2:${region}:${acct}:security-group/*`],
            Condition: { StringEquals: { "ec2:Vpc": pulumi.interpolate`arn:${p}:ec2:${region}:${acct}:vpc/${args.vpcId}` } },
        },
        {
            // A new node's root volume: the provider tags it after launch (rootBlockDevice.tags), so no
            // request tag can be required of it; the instance it belongs to must carry the cluster tag.
            Sid: "RootVolumesOfNewNodes",
            Effect: "Allow",
            Action: "ec2:RunInstances",
            Resource: `arn:${p}:ec2:${region}:${acct}:volume/*`,
        },
        {
            // A removed node's data volume leaves a final snapshot (the volume itself: tag-conditioned above).
            Sid: "FinalSnapshotsOfRemovedNodes",
            Effect: "Allow",
            Action: ["ec2:CreateSnapshot", "ec2:CreateTags"],
            Resource: `arn:${p}:ec2:${region}::snapshot/*`,
            Condition: { StringEqualsIfExists: { "ec2:CreateAction": "CreateSnapshot" } },
        },
        {
            Sid: "LaunchWithAmazonImages",
            Effect: "Allow",
            Action: "ec2:RunInstances",
            Resource: `arn:${p}:ec2:${region}::image/*`,
            Condition: { StringEquals: { "ec2:Owner": "amazon" } },
        },
        {
            Sid: "PassTheNodeRoleOnly",
            Effect: "Allow",
            Action: "iam:PassRole",
            Resource: args.nodeRoleArn,
            Condition: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } },
        },
        {
            // New nodes' volumes and the bundle are encrypted with the cluster key, through EC2 and S3 only.
            Sid: "UseTheClusterKeyThroughEc2AndS3",
            Effect: "Allow",
            Action: ["kms:CreateGrant", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
            Resource: args.kmsKeyArn,
            Condition: { StringEquals: { "kms:ViaService": [`ec2.${region}.amazonaws.com`, `s3.${region}.amazonaws.com`] } },
        },
        {
            Sid: "TargetsOfThisCluster",
            Effect: "Allow",
            Action: ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
            Resource: args.targetGroupArn,
        },
        {
            Sid: "AlarmsAndDashboardOfThisCluster",
            Effect: "Allow",
            Action: ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:PutCompositeAlarm", "cloudwatch:TagResource", "cloudwatch:PutDashboard", "cloudwatch:GetDashboard"],
            Resource: [
                ...[...new Set([args.clusterName, args.resourcePrefix ?? args.clusterName])].map((prefix) => `arn:${p}:cloudwatch:${region}:${acct}:alarm:${prefix}*`),
                pulumi.interpolate`arn:${p}:cloudwatch::${acct}:dashboard/${args.dashboardName}`,
            ],
        },
    ];
    if (a.runnerSecretArn) {
        statements.push({ Sid: "ReadTheStacksSecret", Effect: "Allow", Action: "secretsmanager:GetSecretValue", Resource: a.runnerSecretArn });
    }
    if (a.runnerSecretsKmsKeyArn) {
        statements.push({ Sid: "SecretsProviderKey", Effect: "Allow", Action: ["kms:Encrypt", "kms:Decrypt"], Resource: a.runnerSecretsKmsKeyArn });
    }
    const s3 = a.runnerBackendUrl ? s3Backend(a.runnerBackendUrl) : undefined;
    if (s3) {
        // Pulumi's own layout under <path>/.pulumi/ (stacks, history, backups, locks, meta.yaml): the
        // backend path is the boundary; give this project a path of its own to keep others' state out.
        const state = `${s3.prefix}.pulumi/`;
        statements.push(
            {
                Sid: "ListTheStateBackend",
                Effect: "Allow",
                Action: "s3:ListBucket",
                Resource: `arn:${p}:s3:::${s3.bucket}`,
                Condition: { StringLike: { "s3:prefix": [`${state}*`] } },
            },
            {
                Sid: "ReadWriteTheStateBackend",
                Effect: "Allow",
                Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                Resource: `arn:${p}:s3:::${s3.bucket}/${state}*`,
            },
        );
    }
    return statements;
}
