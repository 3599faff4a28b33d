import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { ssmPrefix } from "./bootstrap/contract";
import { backupS3Prefix } from "./bootstrap/backupHook";
import { assumeRolePolicy, childName, nodeLogGroupName, tags } from "./naming";
import { COLLECTOR_KEY } from "./bootstrap/metricsHook";

/**
 * What the SSM agent needs for Session Manager, Run Command and State Manager:
 * the actions of AmazonSSMManagedInstanceCore
 * (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonSSMManagedInstanceCore.html)
 * except ssm:GetParameter and ssm:GetParameters.
 */
export const SSM_AGENT_ACTIONS = [
    "ssm:DescribeAssociation", "ssm:GetDeployablePatchSnapshotForInstance", "ssm:GetDocument", "ssm:DescribeDocument",
    "ssm:GetManifest", "ssm:ListAssociations", "ssm:ListInstanceAssociations", "ssm:PutInventory",
    "ssm:PutComplianceItems", "ssm:PutConfigurePackageResult", "ssm:UpdateAssociationStatus",
    "ssm:UpdateInstanceAssociationStatus", "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint",
    "ec2messages:GetMessages", "ec2messages:SendReply",
];

export interface NodeRoleArgs {
    clusterName: string;
    region: string;
    accountId: string;
    partition: string;
    kmsKeyArn: pulumi.Input<string>;
    backupBucketArn: pulumi.Input<string>;
}

/**
 * The nodes' IAM role and instance profile, least privilege:
 * - read the cluster's own SSM parameters (and decrypt them with the cluster key);
 * - Session Manager and Run Command, instead of SSH: what AmazonSSMManagedInstanceCore
 *   grants, without its ssm:GetParameter(s) on `*` (which would let a node read every
 *   parameter of the account and region);
 * - write the node log group (the CloudWatch agent: embedded-metric-format documents, from
 *   which CloudWatch extracts the RedisCluster metrics; no cloudwatch:PutMetricData at all);
 * - read the metrics collector bundle the stack publishes (tools/metrics-collector.cjs);
 * - put, get and list backups under `backups/<clusterName>/` in the cluster's bucket (the
 *   node backup script, backupHook.ts), never delete (versioning keeps what an overwrite
 *   replaced); AbortMultipartUpload lets the aws CLI clean up a failed multipart upload.
 */
export class NodeRole extends pulumi.ComponentResource {
    readonly role: aws.iam.Role;
    readonly instanceProfile: aws.iam.InstanceProfile;
    /** The inline policy: a node must not boot before it exists. */
    readonly policy: aws.iam.RolePolicy;

    constructor(name: string, args: NodeRoleArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:NodeRole", name, {}, opts);
        const parent = { parent: this };
        const p = args.partition;
        const logGroupArn = `arn:${p}:logs:${args.region}:${args.accountId}:log-group:${nodeLogGroupName(args.clusterName)}`;
        const paramPath = `arn:${p}:ssm:${args.region}:${args.accountId}:parameter${ssmPrefix(args.clusterName)}`;

        this.role = new aws.iam.Role(childName(name, "node-role"), {
            assumeRolePolicy: JSON.stringify(assumeRolePolicy("ec2.amazonaws.com")),
            description: `Redis nodes of ${args.clusterName}`,
            tags: tags(args.clusterName, childName(args.clusterName, "node-role")),
        }, parent);
        this.policy = new aws.iam.RolePolicy(childName(name, "node-policy"), {
            role: this.role.id,
            policy: pulumi.jsonStringify({
                Version: "2012-10-17",
                Statement: [
                    {
                        Sid: "ReadClusterParameters",
                        Effect: "Allow",
                        Action: ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
                        Resource: [paramPath, `${paramPath}/*`],
                    },
                    {
                        // The SSM agent's own calls (AmazonSSMManagedInstanceCore minus GetParameter/GetParameters).
                        // These actions take no resource narrower than "*" that the agent could be given up front.
                        Sid: "SessionManagerAgent",
                        Effect: "Allow",
                        Action: SSM_AGENT_ACTIONS,
                        Resource: "*",
                    },
                    {
                        Sid: "UseClusterKey",
                        Effect: "Allow",
                        Action: ["kms:Decrypt", "kms:GenerateDataKey"],
                        Resource: args.kmsKeyArn,
                    },
                    {
                        Sid: "ListBackups",
                        Effect: "Allow",
                        Action: "s3:ListBucket",
                        Resource: args.backupBucketArn,
                        Condition: { StringLike: { "s3:prefix": [`${backupS3Prefix(args.clusterName)}*`] } },
                    },
                    {
                        Sid: "ReadWriteBackups",
                        Effect: "Allow",
                        Action: ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
                        Resource: pulumi.interpolate`${args.backupBucketArn}/${backupS3Prefix(args.clusterName)}*`,
                    },
                    {
                        Sid: "NodeLogs",
                        Effect: "Allow",
                        Action: ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                        Resource: [logGroupArn, `${logGroupArn}:*`],
                    },
                    {
                        Sid: "ReadMetricsCollector",
                        Effect: "Allow",
                        Action: "s3:GetObject",
                        Resource: pulumi.interpolate`${args.backupBucketArn}/${COLLECTOR_KEY}`,
                    },
                ],
            }),
        }, { parent: this.role });
        this.instanceProfile = new aws.iam.InstanceProfile(childName(name, "node-profile"), {
            role: this.role.name,
            tags: tags(args.clusterName, childName(args.clusterName, "node-profile")),
        }, parent);
        this.registerOutputs({ roleArn: this.role.arn, instanceProfileName: this.instanceProfile.name });
    }
}
