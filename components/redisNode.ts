import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { StackConfig } from "./config";
import type { UserDataInput } from "./bootstrap/contract";
import type { NodePlan } from "./plan/placement";
import { isBurstable } from "./plan/ami";
import { instanceChanges, instanceIgnoreChanges, PendingNodeChange } from "./plan/rollout";
import { gzipUserData } from "./bootstrap/userData";
import { userDataInputFor } from "./bootstrap/nodeInput";
import { CLUSTER_TAG, SNAPSHOT_TAG, tags } from "./naming";

/** Root volume size: the OS, packages and logs; Redis data lives on the data volume. */
export const ROOT_VOLUME_GIB = 20;
/** Device name the data volume is attached as; on Nitro it shows up as NVMe, found by volume id. */
export const DATA_DEVICE_NAME = "/dev/sdf";

export interface RedisNodeArgs {
    config: StackConfig;
    plan: NodePlan;
    /** Availability zone name of plan.zoneIndex. */
    availabilityZone: string;
    subnetId: pulumi.Input<string>;
    securityGroupId: pulumi.Input<string>;
    instanceProfileName: pulumi.Input<string>;
    kmsKeyArn: pulumi.Input<string>;
    amiId: string;
    /** The AMI came from config (operator-controlled); otherwise it was looked up and later lookups are ignored. */
    amiPinned: boolean;
    region: string;
    backupBucketName: pulumi.Input<string>;
    renderUserData: (input: UserDataInput) => string;
    /**
     * What the first boot needs to exist (endpoints, routes, egress rules, IAM and key policies,
     * SSM parameters): the instance waits for them. A component stands for all of its children.
     */
    bootDependsOn?: pulumi.Input<pulumi.Resource>[];
}

/**
 * One Redis node: a network interface holding its fixed private IP, an
 * encrypted gp3 data volume, the instance and the attachment. The interface
 * and the volume outlive the instance, so a replaced instance comes back with
 * the same address, cluster identity (nodes.conf) and data.
 */
export class RedisNode extends pulumi.ComponentResource {
    readonly instance: aws.ec2.Instance;
    readonly networkInterface: aws.ec2.NetworkInterface;
    readonly dataVolume: aws.ebs.Volume;
    readonly instanceId: pulumi.Output<string>;
    readonly privateIp: string;
    /** How the deployed instance differs from the desired one (undefined: it does not); see docs/operations-roll.md. */
    readonly pendingChange: pulumi.Output<PendingNodeChange | undefined>;

    constructor(name: string, args: RedisNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:RedisNode", name, {}, opts);
        const { config: cfg, plan } = args;
        const parent = { parent: this };
        const protect = cfg.protectData;
        const nodeTags = (display: string, extra: Record<string, string> = {}) =>
            tags(cfg.clusterName, display, { "redis-cluster:node": plan.name, "redis-cluster:shard": String(plan.shard), ...extra });

        this.networkInterface = new aws.ec2.NetworkInterface(`${name}-eni`, {
            subnetId: args.subnetId,
            privateIps: [plan.privateIp],
            securityGroups: [args.securityGroupId],
            description: `Redis node ${plan.name}`,
            tags: nodeTags(`${plan.name}-eni`),
        }, parent);

        this.dataVolume = new aws.ebs.Volume(`${name}-data`, {
            availabilityZone: args.availabilityZone,
            type: "gp3",
            size: cfg.dataVolumeSizeGiB,
            iops: cfg.dataVolumeIops,
            throughput: cfg.dataVolumeThroughputMiBps,
            encrypted: true,
            kmsKeyId: args.kmsKeyArn,
            // Removing a node (scale-in, destroy) leaves a last snapshot behind.
            finalSnapshot: true,
            tags: nodeTags(`${plan.name}-data`, { [SNAPSHOT_TAG]: cfg.clusterName }),
        }, { parent: this, protect, retainOnDelete: protect });

        // The same input `npm run render` shows: only per-node stable values (never the shape, never a secret).
        const userData = pulumi.all([this.dataVolume.id, args.backupBucketName, args.kmsKeyArn]).apply(([dataVolumeId, backupBucket, backupKmsKeyArn]) =>
            args.renderUserData(userDataInputFor(cfg, plan, { az: args.availabilityZone, dataVolumeId, region: args.region, backupBucket, backupKmsKeyArn })));

        const userDataBase64 = userData.apply(gzipUserData);
        this.instance = new aws.ec2.Instance(`${name}-instance`, {
            ami: args.amiId,
            instanceType: cfg.instanceType,
            iamInstanceProfile: args.instanceProfileName,
            // deleteOnTermination is read-only upstream, and EC2 never deletes an interface it did not create.
            primaryNetworkInterface: { networkInterfaceId: this.networkInterface.id },
            metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 },
            monitoring: true,
            ebsOptimized: true,
            rootBlockDevice: {
                volumeType: "gp3",
                volumeSize: ROOT_VOLUME_GIB,
                encrypted: true,
                kmsKeyId: args.kmsKeyArn,
                deleteOnTermination: true,
                tags: nodeTags(`${plan.name}-root`),
            },
            creditSpecification: isBurstable(cfg.instanceType) ? { cpuCredits: "standard" } : undefined,
            // gzip: cloud-init inflates it, and it leaves room under EC2's 16 KB limit for hooks.
            userDataBase64,
            tags: nodeTags(plan.name, { [CLUSTER_TAG]: cfg.clusterName }),
        }, {
            parent: this,
            dependsOn: args.bootDependsOn,
            // The network interface can be attached to one instance at a time.
            deleteBeforeReplace: true,
            // Existing instances keep their deployed type, AMI and user data unless this node is the one
            // `roll` names in `rollout`: a plain `pulumi up` never stops the fleet (docs/operations-roll.md).
            ignoreChanges: instanceIgnoreChanges(plan.name, cfg.rollout, args.amiPinned),
        });
        // For an ignored input the instance's output is the deployed value (from the state).
        this.pendingChange = pulumi.all([this.instance.instanceType, this.instance.ami, this.instance.userDataBase64, userDataBase64, this.instance.urn])
            .apply(([instanceType, ami, deployedUserData, desiredUserData, instanceUrn]) => {
                const changes = instanceChanges({ instanceType, ami, userDataBase64: deployedUserData },
                    { instanceType: cfg.instanceType, ami: args.amiId, userDataBase64: desiredUserData }, args.amiPinned);
                return changes.length ? { node: plan.name, instanceUrn, changes } : undefined;
            });

        new aws.ec2.VolumeAttachment(`${name}-data-attachment`, {
            instanceId: this.instance.id,
            volumeId: this.dataVolume.id,
            deviceName: DATA_DEVICE_NAME,
            // Stop Redis cleanly (systemd on shutdown) rather than pull the volume from under it.
            stopInstanceBeforeDetaching: true,
        }, { parent: this, deleteBeforeReplace: true });

        this.instanceId = this.instance.id;
        this.privateIp = plan.privateIp;
        this.registerOutputs({ instanceId: this.instanceId, privateIp: this.privateIp, dataVolumeId: this.dataVolume.id });
    }
}
