import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { assumeRolePolicy, childName, CLUSTER_TAG, dlmScheduleName, SNAPSHOT_TAG, tags } from "./naming";

export interface SnapshotPolicyArgs {
    clusterName: string;
    /** Hours between snapshots (1, 2, 3, 4, 6, 8, 12 or 24). */
    intervalHours: number;
    /** Snapshots kept per volume. */
    retentionCount: number;
    /** Key the data volumes are encrypted with; the DLM role may use it. */
    kmsKeyArn: pulumi.Input<string>;
    /** AWS partition ("aws", "aws-cn", "aws-us-gov"), for managed policy ARNs. */
    partition: string;
}

/**
 * EBS snapshots of the data volumes with Data Lifecycle Manager, targeting the
 * volumes tagged for this cluster, so nodes added later are covered without a
 * change here. DLM ORs its target tags ("resources that have any of these
 * tags", CreateLifecyclePolicy's TargetTags), so there is exactly one:
 * `redis-cluster:snapshot=<clusterName>`, carried by the data volumes only (not
 * the root volumes, not another cluster's volumes in the same account). Crash-consistent (AOF with appendfsync everysec on the volume);
 * the S3 backups are the application-consistent copy.
 */
export class SnapshotPolicy extends pulumi.ComponentResource {
    readonly policy: aws.dlm.LifecyclePolicy;
    /** DLM's role, named in the key policy. */
    readonly roleArn: pulumi.Output<string>;

    constructor(name: string, args: SnapshotPolicyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:SnapshotPolicy", name, {}, opts);
        const parent = { parent: this };

        const role = new aws.iam.Role(childName(name, "dlm-role"), {
            assumeRolePolicy: JSON.stringify(assumeRolePolicy("dlm.amazonaws.com")),
            tags: tags(args.clusterName, childName(args.clusterName, "dlm-role")),
        }, parent);
        new aws.iam.RolePolicyAttachment(childName(name, "dlm-managed"), {
            role: role.name,
            policyArn: `arn:${args.partition}:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole`,
        }, { parent: role });
        new aws.iam.RolePolicy(childName(name, "dlm-kms"), {
            role: role.id,
            policy: pulumi.jsonStringify({
                Version: "2012-10-17",
                Statement: [{
                    Effect: "Allow",
                    Action: ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*"],
                    Resource: args.kmsKeyArn,
                }],
            }),
        }, { parent: role });

        this.policy = new aws.dlm.LifecyclePolicy(childName(name, "snapshots"), {
            description: `Snapshots of ${args.clusterName} Redis data volumes`,
            executionRoleArn: role.arn,
            state: "ENABLED",
            policyDetails: {
                resourceTypes: ["VOLUME"],
                targetTags: { [SNAPSHOT_TAG]: args.clusterName },
                schedules: [{
                    name: dlmScheduleName(args.intervalHours, args.retentionCount),
                    createRule: { interval: args.intervalHours, intervalUnit: "HOURS", times: "03:00" },
                    retainRule: { count: args.retentionCount },
                    copyTags: true,
                    tagsToAdd: { [CLUSTER_TAG]: args.clusterName, "redis-cluster:snapshot-of": "data-volume" },
                }],
            },
            tags: tags(args.clusterName, childName(args.clusterName, "snapshots")),
        }, parent);
        this.roleArn = role.arn;
        this.registerOutputs({ policyArn: this.policy.arn, roleArn: this.roleArn });
    }
}
