import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { childName, tags } from "./naming";

export interface EncryptionKeyArgs {
    clusterName: string;
    /** Keep the key when the stack is destroyed (data encrypted with it may outlive the stack). @default false */
    protect?: boolean;
}

/**
 * One customer-managed KMS key per cluster, with yearly rotation, for the data
 * and root volumes, the backup bucket and the SSM SecureString secrets. The
 * default key policy (the account's IAM decides) applies; the node role and
 * the snapshot role are granted exactly what they need on this key.
 */
export class EncryptionKey extends pulumi.ComponentResource {
    readonly key: aws.kms.Key;
    readonly arn: pulumi.Output<string>;

    constructor(name: string, args: EncryptionKeyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:EncryptionKey", name, {}, opts);
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
}
