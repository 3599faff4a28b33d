import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { ssmPrefix } from "./bootstrap/contract";
import { assumeRolePolicy, BACKUP_PREFIX, childName, nodeLogGroupName, tags } from "./naming";
import { COLLECTOR_KEY } from "./bootstrap/metricsHook";

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
 * - Session Manager (AmazonSSMManagedInstanceCore), instead of SSH;
 * - write the node log group (the CloudWatch agent: embedded-metric-format documents, from
 *   which CloudWatch extracts the RedisCluster metrics; no cloudwatch:PutMetricData at all);
 * - read the metrics collector bundle the stack publishes (tools/metrics-collector.cjs);
 * - put, get and list backups under `backups/` in the cluster's bucket, never delete
 *   (versioning keeps what an overwrite replaced).
 */
export class NodeRole extends pulumi.ComponentResource {
    readonly role: aws.iam.Role;
    readonly instanceProfile: aws.iam.InstanceProfile;

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
        new aws.iam.RolePolicyAttachment(childName(name, "node-ssm-core"), {
            role: this.role.name,
            policyArn: `arn:${p}:iam::aws:policy/AmazonSSMManagedInstanceCore`,
        }, { parent: this.role });
        new aws.iam.RolePolicy(childName(name, "node-policy"), {
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
                        Condition: { StringLike: { "s3:prefix": [`${BACKUP_PREFIX}*`] } },
                    },
                    {
                        Sid: "ReadWriteBackups",
                        Effect: "Allow",
                        Action: ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:AbortMultipartUpload"],
                        Resource: pulumi.interpolate`${args.backupBucketArn}/${BACKUP_PREFIX}*`,
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
