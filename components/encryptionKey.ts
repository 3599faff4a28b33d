import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { childName, tags } from "./naming";

export interface EncryptionKeyArgs {
    clusterName: string;
    /** Keep the key when the stack is destroyed (data encrypted with it may outlive the stack). @default false */
    protect?: boolean;
}

/** Who may use the key, besides administering it (see keyPolicy). */
export interface KeyUsers {
    partition: string;
    region: string;
    accountId: string;
    /** The nodes' role: reads SecureStrings through SSM, writes and reads backups through S3. */
    nodeRoleArn: pulumi.Input<string>;
    /** Data Lifecycle Manager's role: snapshots of the encrypted data volumes. */
    snapshotRoleArn: pulumi.Input<string>;
    /** Roles/users that deploy and operate the cluster (keyAdministratorArns, or the deployer). */
    administratorArns: string[];
    /** The autoscale runner's role (autoscale.enabled): new nodes' volumes through EC2, the project bundle through S3. */
    autoscalerRoleArn?: pulumi.Input<string>;
}

/**
 * Everything the key policy lets the account's IAM grant: managing the key,
 * never using it. No kms:CreateGrant either (a grant is a way to use it).
 */
export const KEY_ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey", "kms:DisableKey",
    "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus",
    "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListKeyRotations", "kms:ListResourceTags",
    "kms:PutKeyPolicy", "kms:RevokeGrant", "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion", "kms:TagResource",
    "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
];

/**
 * The key policy: it names who may decrypt. The default policy ("Enable IAM
 * User Permissions": kms:* to the account) would let any principal with
 * kms:Decrypt on `*` in IAM (administrators, CI) read the cluster's secrets.
 * Here the account keeps only key administration (so the key can never become
 * unmanageable); use is granted to the node role (through SSM and S3), the DLM
 * role (EBS snapshots), and the administrators through SSM, EC2 and S3 only
 * (writing the SecureStrings, creating encrypted volumes, reading backups).
 */
export function keyPolicy(u: KeyUsers): pulumi.Output<string> {
    const via = (...services: string[]) => ({ StringEquals: { "kms:ViaService": services.map((s) => `${s}.${u.region}.amazonaws.com`) } });
    return pulumi.jsonStringify({
        Version: "2012-10-17",
        Statement: [
            {
                Sid: "AccountAdministersTheKey",
                Effect: "Allow",
                Principal: { AWS: `arn:${u.partition}:iam::${u.accountId}:root` },
                Action: KEY_ADMIN_ACTIONS,
                Resource: "*",
            },
            {
                Sid: "AdministratorsUseTheKeyThroughServices",
                Effect: "Allow",
                Principal: { AWS: u.administratorArns },
                Action: ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
                Resource: "*",
                Condition: via("ssm", "ec2", "s3"),
            },
            {
                Sid: "NodesReadSecretsAndBackups",
                Effect: "Allow",
                Principal: { AWS: u.nodeRoleArn },
                Action: ["kms:Decrypt", "kms:GenerateDataKey"],
                Resource: "*",
                Condition: via("ssm", "s3"),
            },
            ...(u.autoscalerRoleArn ? [{
                Sid: "AutoscalerUsesTheKeyThroughEc2AndS3",
                Effect: "Allow",
                Principal: { AWS: u.autoscalerRoleArn },
                Action: ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*", "kms:CreateGrant", "kms:DescribeKey"],
                Resource: "*",
                Condition: via("ec2", "s3"),
            }] : []),
            {
                Sid: "SnapshotRoleUsesTheKey",
                Effect: "Allow",
                Principal: { AWS: u.snapshotRoleArn },
                Action: ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*"],
                Resource: "*",
            },
            {
                Sid: "SnapshotRoleGrantsToEbs",
                Effect: "Allow",
                Principal: { AWS: u.snapshotRoleArn },
                Action: "kms:CreateGrant",
                Resource: "*",
                Condition: { Bool: { "kms:GrantIsForAWSResource": "true" } },
            },
        ],
    });
}

/**
 * One customer-managed KMS key per cluster, with yearly rotation, for the data
 * and root volumes, the backup bucket and the SSM SecureString secrets. Its
 * policy (`restrictUse`, once the roles exist) names who may use it.
 */
export class EncryptionKey extends pulumi.ComponentResource {
    readonly key: aws.kms.Key;
    readonly arn: pulumi.Output<string>;
    private readonly protect: boolean;

    constructor(name: string, args: EncryptionKeyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:EncryptionKey", name, {}, opts);
        this.protect = args.protect ?? false;
        this.key = new aws.kms.Key(childName(name, "key"), {
            description: `Redis cluster ${args.clusterName}: data volumes, backups, secrets`,
            enableKeyRotation: true,
            // A deleted key makes every snapshot and backup encrypted with it unreadable: wait the maximum.
            deletionWindowInDays: 30,
            tags: tags(args.clusterName, childName(args.clusterName, "key")),
        }, { parent: this, protect: args.protect, retainOnDelete: args.protect });
        new aws.kms.Alias(childName(name, "key-alias"), {
            name: `alias/redis-cluster/${args.clusterName}`,
            targetKeyId: this.key.keyId,
        }, { parent: this });
        this.arn = this.key.arn;
        this.registerOutputs({ arn: this.arn });
    }

    /**
     * Replaces the key's default policy with `keyPolicy(users)`. Separate from the
     * key because the roles it names are created after it (their policies name the key).
     */
    restrictUse(name: string, users: KeyUsers): aws.kms.KeyPolicy {
        return new aws.kms.KeyPolicy(name, {
            keyId: this.key.keyId,
            policy: keyPolicy(users),
        }, { parent: this, retainOnDelete: this.protect });
    }
}
