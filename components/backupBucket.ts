import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { BACKUP_PREFIX, childName, tags } from "./naming";

export interface BackupBucketArgs {
    clusterName: string;
    /** Customer-managed key for SSE-KMS. */
    kmsKeyArn: pulumi.Input<string>;
    /** Days before objects move to STANDARD_IA; 0 keeps them in STANDARD. */
    transitionDays: number;
    /** Days before objects (and noncurrent versions) expire. */
    expirationDays: number;
    /** Let `pulumi destroy` delete a non-empty bucket. */
    forceDestroy: boolean;
    /** `protect` + `retainOnDelete`: the bucket survives `pulumi destroy` and removal from the program. */
    protect: boolean;
}

/**
 * The backup bucket: versioned, SSE-KMS with the cluster's key (bucket key on,
 * to keep KMS request costs down), all public access blocked, ACLs disabled,
 * a policy refusing any request not made over TLS, and lifecycle rules from config.
 */
export class BackupBucket extends pulumi.ComponentResource {
    readonly bucket: aws.s3.Bucket;
    readonly bucketName: pulumi.Output<string>;
    readonly arn: pulumi.Output<string>;

    constructor(name: string, args: BackupBucketArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:BackupBucket", name, {}, opts);
        // A protected bucket is retained by `pulumi destroy`; so is everything that secures it. Deleting
        // these would suspend versioning and remove the public access block, encryption default, TLS-only
        // policy and lifecycle of the bucket left behind.
        const parent = { parent: this, retainOnDelete: args.protect };

        this.bucket = new aws.s3.Bucket(childName(name, "backups"), {
            forceDestroy: args.forceDestroy,
            tags: tags(args.clusterName, childName(args.clusterName, "backups")),
        }, { parent: this, protect: args.protect, retainOnDelete: args.protect });
        const bucket = this.bucket.id;

        new aws.s3.BucketOwnershipControls(childName(name, "ownership"), {
            bucket,
            rule: { objectOwnership: "BucketOwnerEnforced" },
        }, parent);
        const publicAccess = new aws.s3.BucketPublicAccessBlock(childName(name, "public-access"), {
            bucket,
            blockPublicAcls: true,
            blockPublicPolicy: true,
            ignorePublicAcls: true,
            restrictPublicBuckets: true,
        }, parent);
        const versioning = new aws.s3.BucketVersioning(childName(name, "versioning"), {
            bucket,
            versioningConfiguration: { status: "Enabled" },
        }, parent);
        new aws.s3.BucketServerSideEncryptionConfiguration(childName(name, "encryption"), {
            bucket,
            rules: [{
                applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: args.kmsKeyArn },
                bucketKeyEnabled: true,
            }],
        }, parent);
        new aws.s3.BucketPolicy(childName(name, "policy"), {
            bucket,
            policy: pulumi.jsonStringify({
                Version: "2012-10-17",
                Statement: [{
                    Sid: "DenyInsecureTransport",
                    Effect: "Deny",
                    Principal: "*",
                    Action: "s3:*",
                    Resource: [this.bucket.arn, pulumi.interpolate`${this.bucket.arn}/*`],
                    Condition: { Bool: { "aws:SecureTransport": "false" } },
                }],
            }),
        }, { ...parent, dependsOn: [publicAccess] });
        new aws.s3.BucketLifecycleConfiguration(childName(name, "lifecycle"), {
            bucket,
            rules: [{
                id: "backups",
                status: "Enabled",
                // Backups only: the metrics collector bundle (tools/) must outlive expirationDays.
                filter: { prefix: BACKUP_PREFIX },
                transitions: args.transitionDays > 0 ? [{ days: args.transitionDays, storageClass: "STANDARD_IA" }] : [],
                expiration: { days: args.expirationDays },
                noncurrentVersionExpiration: { noncurrentDays: args.expirationDays },
                abortIncompleteMultipartUpload: { daysAfterInitiation: 7 },
            }],
        // Noncurrent-version rules need versioning on first (the provider's own example orders them so).
        }, { ...parent, dependsOn: [versioning] });

        this.bucketName = this.bucket.bucket;
        this.arn = this.bucket.arn;
        this.registerOutputs({ bucketName: this.bucketName, arn: this.arn });
    }
}
