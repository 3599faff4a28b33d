import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { BACKUP_PREFIX, childName, tags } from "./naming";

/** Key prefix of the backup bucket's access logs in the log bucket. */
export const ACCESS_LOG_PREFIX = "s3-access/backups/";

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
    /** Account that owns the bucket: only its bucket's access logs may be delivered to the log bucket. */
    accountId: string;
    /** Days access log records are kept. @default expirationDays (who read a backup stays on record while it exists) */
    accessLogExpirationDays?: number;
}

/**
 * The backup bucket: versioned, SSE-KMS with the cluster's key (bucket key on,
 * to keep KMS request costs down), all public access blocked, ACLs disabled,
 * a policy refusing any request not made over TLS, and lifecycle rules from config.
 *
 * It holds every copy of the data, so every request to it is recorded (S3 server access
 * logging, AWS Security Hub control S3.9) in a log bucket of its own, locked down the same
 * way (versioned, public access blocked, ACLs disabled, TLS only, protected with the data)
 * except for encryption: log delivery supports only SSE-S3 default encryption on the target
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html).
 * Only S3's logging service may write to it, and only for this bucket in this account.
 */
export class BackupBucket extends pulumi.ComponentResource {
    readonly bucket: aws.s3.Bucket;
    /** Where S3 writes the backup bucket's server access logs. */
    readonly logBucket: aws.s3.Bucket;
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

        this.logBucket = new aws.s3.Bucket(childName(name, "access-logs"), {
            forceDestroy: args.forceDestroy,
            tags: tags(args.clusterName, childName(args.clusterName, "backup-access-logs")),
        }, { parent: this, protect: args.protect, retainOnDelete: args.protect });
        const logBucket = this.logBucket.id;
        new aws.s3.BucketOwnershipControls(childName(name, "access-logs-ownership"), {
            bucket: logBucket,
            rule: { objectOwnership: "BucketOwnerEnforced" },
        }, parent);
        const logPublicAccess = new aws.s3.BucketPublicAccessBlock(childName(name, "access-logs-public-access"), {
            bucket: logBucket,
            blockPublicAcls: true,
            blockPublicPolicy: true,
            ignorePublicAcls: true,
            restrictPublicBuckets: true,
        }, parent);
        new aws.s3.BucketVersioning(childName(name, "access-logs-versioning"), {
            bucket: logBucket,
            versioningConfiguration: { status: "Enabled" },
        }, parent);
        new aws.s3.BucketServerSideEncryptionConfiguration(childName(name, "access-logs-encryption"), {
            bucket: logBucket,
            rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }],
        }, parent);
        const logPolicy = new aws.s3.BucketPolicy(childName(name, "access-logs-policy"), {
            bucket: logBucket,
            policy: pulumi.jsonStringify({
                Version: "2012-10-17",
                Statement: [
                    {
                        Sid: "DenyInsecureTransport",
                        Effect: "Deny",
                        Principal: "*",
                        Action: "s3:*",
                        Resource: [this.logBucket.arn, pulumi.interpolate`${this.logBucket.arn}/*`],
                        Condition: { Bool: { "aws:SecureTransport": "false" } },
                    },
                    {
                        // With ACLs disabled, log delivery is granted by policy, limited to the source bucket and account.
                        Sid: "S3ServerAccessLogsFromTheBackupBucket",
                        Effect: "Allow",
                        Principal: { Service: "logging.s3.amazonaws.com" },
                        Action: "s3:PutObject",
                        Resource: pulumi.interpolate`${this.logBucket.arn}/${ACCESS_LOG_PREFIX}*`,
                        Condition: {
                            ArnLike: { "aws:SourceArn": this.bucket.arn },
                            StringEquals: { "aws:SourceAccount": args.accountId },
                        },
                    },
                ],
            }),
        }, { ...parent, dependsOn: [logPublicAccess] });
        const logDays = args.accessLogExpirationDays ?? args.expirationDays;
        new aws.s3.BucketLifecycleConfiguration(childName(name, "access-logs-lifecycle"), {
            bucket: logBucket,
            rules: [{
                id: "access-logs",
                status: "Enabled",
                filter: { prefix: "" },
                expiration: { days: logDays },
                // Versioning keeps a deleted or overwritten record recoverable for a week, not forever.
                noncurrentVersionExpiration: { noncurrentDays: 7 },
                abortIncompleteMultipartUpload: { daysAfterInitiation: 7 },
            }],
        }, parent);
        new aws.s3.BucketLogging(childName(name, "access-logging"), {
            bucket,
            targetBucket: logBucket,
            targetPrefix: ACCESS_LOG_PREFIX,
            // Date-partitioned keys, ready for Athena.
            targetObjectKeyFormat: { partitionedPrefix: { partitionDateSource: "EventTime" } },
        }, { ...parent, dependsOn: [logPolicy] });

        this.bucketName = this.bucket.bucket;
        this.arn = this.bucket.arn;
        this.registerOutputs({ bucketName: this.bucketName, arn: this.arn, accessLogBucketName: this.logBucket.bucket });
    }
}
