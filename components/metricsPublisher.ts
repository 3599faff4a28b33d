import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { childName } from "./naming";
import { bundleCollector, COLLECTOR_KEY } from "./bootstrap/metricsHook";

export interface MetricsPublisherArgs {
    bucketName: pulumi.Input<string>;
    kmsKeyArn: pulumi.Input<string>;
}

/**
 * Publishes the collector bundle to the backup bucket, where every node's metrics
 * hook fetches it at boot (components/bootstrap/metricsHook.ts). A new collector
 * changes this object only, never a node's user data: nodes pick it up at their
 * next boot, or when the hook is run again (sudo /etc/redis-cluster/hooks.d/60-metrics
 * through Session Manager).
 */
export class MetricsPublisher extends pulumi.ComponentResource {
    readonly object: aws.s3.BucketObjectv2;

    constructor(name: string, args: MetricsPublisherArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:MetricsPublisher", name, {}, opts);
        this.object = new aws.s3.BucketObjectv2(childName(name, "collector"), {
            bucket: args.bucketName,
            key: COLLECTOR_KEY,
            content: bundleCollector(),
            contentType: "application/javascript",
            serverSideEncryption: "aws:kms",
            kmsKeyId: args.kmsKeyArn,
        }, { parent: this });
        this.registerOutputs({ key: this.object.key });
    }
}
