import { existsSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { CONFIG_NAMESPACE, ConfigError, parseStackConfig, RawValue, StackConfig } from "./config";
import { runnerConfigProblems } from "./autoscaleConfig";
import type { UserDataInput } from "./bootstrap/contract";
import { ACL_USERS, ssmParameterNames } from "./bootstrap/contract";
import { DesiredNodeSettings, desiredNodeSettingsOf, nodeSettingsOf, renderNodeSettings } from "./bootstrap/nodeSettings";
import type { Topology } from "./topology";
import type { PendingNodeChange } from "./plan/rollout";
import { Environment, lookupEnvironment } from "./environment";
import { planNodes } from "./plan/placement";
import { EncryptionKey } from "./encryptionKey";
import { Network } from "./network";
import { SecurityGroups } from "./securityGroups";
import { Secrets } from "./secrets";
import { BackupBucket } from "./backupBucket";
import { SnapshotPolicy } from "./snapshotPolicy";
import { NodeRole } from "./nodeRole";
import { RedisNodes } from "./redisNodes";
import { LoadBalancer } from "./loadBalancer";
import { Alarms } from "./alarms";
import { Dashboard } from "./dashboard";
import { MetricsPublisher } from "./metricsPublisher";
import { AutoscaleRunner } from "./autoscaleRunner";
import { MonitoredNode } from "./monitoring";
import { childName, nodeResourceName, tags } from "./naming";

/** The settings of a cluster: every stack config key, each optional with the stack's default. */
export type RedisClusterSettings = Partial<Omit<StackConfig, "alarmEmail">>;

/**
 * Arguments of `new RedisCluster(name, args)`: the same keys, defaults and validation as the
 * stack config (`redis-cluster:<key>`, docs/infrastructure.md), as typed values, e.g.
 * `{ shards: 3, replicasPerShard: 1, vpcId, subnetIds, clientSecurityGroupIds: [app.id] }`.
 * `clusterName` defaults to `<name>-<stack>`.
 */
export interface RedisClusterArgs extends RedisClusterSettings {
    /** E-mail subscribed to the alarm topic; may be a secret. @default none */
    alarmEmail?: pulumi.Input<string>;
    /**
     * Region, account, zones, AMI and (with `vpcId`) the existing VPC, as `lookupEnvironment`
     * finds them. @default looked up from the provider's account and region
     */
    environment?: Environment;
    /** User-data renderer. @default renderUserData from ./bootstrap/userData */
    renderUserData?: (input: UserDataInput) => string;
    /**
     * With `autoscale.enabled`: the directory of the Pulumi project the runner runs (Pulumi.yaml,
     * the program, package-lock.json), bundled for it. @default this repository (the stack program)
     */
    projectRoot?: string;
}

/** The repository this component lives in: components/.. in a checkout, dist/components/../.. when packed. */
function defaultProjectRoot(): string {
    const candidates = [join(__dirname, ".."), join(__dirname, "..", "..")];
    return candidates.find((d) => existsSync(join(d, "Pulumi.yaml")) && existsSync(join(d, "index.ts"))) ?? process.cwd();
}

/** Whether the stack created its network or was given one; a running cluster keeps its mode. */
export type NetworkMode = "created" | "existing";

/** The outputs the operations tool reads (as stack outputs, or nested under one output name). */
export interface ClusterOutputs {
    topology: pulumi.Output<Topology>;
    loadBalancerDnsName: pulumi.Output<string>;
    backupBucketName: pulumi.Output<string>;
    adminCredentials: pulumi.Output<{ user: string; password: string }>;
    tlsCaCertificate?: pulumi.Output<string>;
    /**
     * The cluster-wide node settings as plain values (what the SSM node-settings parameter
     * holds, plus port/tls/engine to compare): `reconfigure --stack` applies them to the
     * running nodes one at a time.
     */
    nodeSettings: pulumi.Output<DesiredNodeSettings>;
    networkMode: pulumi.Output<NetworkMode>;
    /**
     * Nodes whose instance still runs an older instance type, pinned AMI or user data
     * (bootstrap, engine): a plain `pulumi up` leaves them alone, `roll` applies the
     * change one node at a time (docs/operations-roll.md).
     */
    pendingNodeChanges: pulumi.Output<PendingNodeChange[]>;
    vpcId: pulumi.Output<string>;
    privateSubnetIds: pulumi.Output<string[]>;
    /** Allow your application's security group from here, or list it in `clientSecurityGroupIds`. */
    nodeSecurityGroupId: pulumi.Output<string>;
    alarmTopicArn: pulumi.Output<string>;
    /** The CloudWatch dashboard (one row per shard, the cluster row). */
    dashboardName: pulumi.Output<string>;
    /** With `autoscale.enabled`: the runner's instance (`aws ssm start-session --target <id>`, then `journalctl -u redis-autoscale@<stack>`). */
    autoscaleRunnerInstanceId?: pulumi.Output<string>;
}

/**
 * Validates component arguments with the stack config's rules (one source of defaults and
 * messages): each argument is read as the value of `redis-cluster:<key>`.
 */
export function clusterConfigOf(name: string, settings: RedisClusterSettings & { alarmEmail?: unknown }, stack = pulumi.getStack()): StackConfig {
    const plain = settings as Record<string, unknown>;
    const cfg = parseStackConfig((k): RawValue => {
        // A secret or computed e-mail is checked where it is plain; the component passes it on as is.
        if (k === "alarmEmail" && typeof plain.alarmEmail !== "string") return undefined;
        return plain[k] as RawValue;
    }, { project: name, stack });
    // Only the stack creates the runner: local mode and the tool read the same keys without it.
    const runner = runnerConfigProblems(cfg.autoscale, { ns: CONFIG_NAMESPACE, vpcId: cfg.vpcId });
    if (runner.length > 0) throw new ConfigError(runner);
    return cfg;
}

/**
 * A self-managed Redis Cluster: network (or an existing VPC's subnets), security groups, KMS
 * key, secrets, backup bucket and snapshot schedule, nodes, internal load balancer, alarms.
 *
 * ```ts
 * const cache = new RedisCluster("cache", { shards: 3, vpcId, subnetIds, clientSecurityGroupIds: [appSg.id] });
 * export const redis = cache.outputs;     // npm run cluster -- status --stack dev --output redis
 * ```
 */
export class RedisCluster extends pulumi.ComponentResource {
    /** The validated settings, defaults filled in. */
    readonly config: StackConfig;
    /** Everything the operations tool reads; export it whole (`export const redis = cluster.outputs`). */
    readonly outputs: ClusterOutputs;
    readonly topology: pulumi.Output<Topology>;
    /** The discovery endpoint: point a cluster client at `<this>:<port>`. */
    readonly loadBalancerDnsName: pulumi.Output<string>;
    readonly nodeSecurityGroupId: pulumi.Output<string>;
    readonly adminCredentials: pulumi.Output<{ user: string; password: string }>;
    readonly backupBucketName: pulumi.Output<string>;

    constructor(name: string, args: RedisClusterArgs = {}, opts?: pulumi.ComponentResourceOptions) {
        const { environment, alarmEmail, renderUserData, projectRoot, ...settings } = args;
        // Throws a ConfigError listing every problem before anything, this component included, is declared.
        const cfg = clusterConfigOf(name, { ...settings, alarmEmail });
        super("rediscluster:index:RedisCluster", name, {}, opts);
        this.config = cfg;
        const build = (env: Environment) => this.build(name, cfg, env, alarmEmail ?? cfg.alarmEmail, renderUserData, projectRoot);
        if (environment) {
            this.outputs = build(environment);
        } else {
            // The lookups are invokes: children are declared once they answer. The program keeps
            // running until they are, as with any resource created after an await.
            const built = lookupEnvironment(cfg).then(build);
            const later = <K extends keyof ClusterOutputs>(k: K) =>
                pulumi.output(built.then((o) => o[k] as pulumi.Output<unknown>)) as unknown as NonNullable<ClusterOutputs[K]>;
            this.outputs = {
                topology: later("topology"),
                loadBalancerDnsName: later("loadBalancerDnsName"),
                backupBucketName: later("backupBucketName"),
                adminCredentials: pulumi.secret(later("adminCredentials")),
                ...(cfg.tls ? { tlsCaCertificate: later("tlsCaCertificate") } : {}),
                nodeSettings: later("nodeSettings"),
                networkMode: later("networkMode"),
                vpcId: later("vpcId"),
                privateSubnetIds: later("privateSubnetIds"),
                nodeSecurityGroupId: later("nodeSecurityGroupId"),
                alarmTopicArn: later("alarmTopicArn"),
                dashboardName: later("dashboardName"),
                pendingNodeChanges: later("pendingNodeChanges"),
                ...(cfg.autoscale.enabled ? { autoscaleRunnerInstanceId: later("autoscaleRunnerInstanceId") } : {}),
            };
        }
        this.topology = this.outputs.topology;
        this.loadBalancerDnsName = this.outputs.loadBalancerDnsName;
        this.nodeSecurityGroupId = this.outputs.nodeSecurityGroupId;
        this.adminCredentials = this.outputs.adminCredentials;
        this.backupBucketName = this.outputs.backupBucketName;
        this.registerOutputs({ ...this.outputs });
    }

    private build(name: string, cfg: StackConfig, env: Environment, alarmEmail: pulumi.Input<string> | undefined, renderUserData?: (input: UserDataInput) => string, projectRoot?: string): ClusterOutputs {
        const parent = { parent: this };
        const existing = env.existingVpc;
        const key = new EncryptionKey(childName(name, "kms"), { clusterName: cfg.clusterName, protect: cfg.protectData }, parent);
        // In an existing VPC nothing of the network is created: its subnets, routes and endpoints
        // are the account owner's (what they must provide: existingVpc.ts).
        const network = existing
            ? {
                vpcId: pulumi.output(existing.vpcId),
                subnetIds: existing.subnets.map((s) => pulumi.output(s.id)),
                s3PrefixListId: pulumi.output(existing.s3PrefixListId),
            }
            : new Network(childName(name, "net"), {
                clusterName: cfg.clusterName,
                vpcCidr: cfg.vpcCidr,
                availabilityZones: env.availabilityZones,
                region: env.region,
                interfaceEndpoints: cfg.interfaceEndpoints,
                logRetentionDays: cfg.logRetentionDays,
                accountId: env.accountId,
            }, parent);
        const sgs = new SecurityGroups(childName(name, "sg"), {
            clusterName: cfg.clusterName,
            vpcId: network.vpcId,
            vpcCidr: existing ? existing.cidrBlock : cfg.vpcCidr,
            port: cfg.port,
            clientCidrs: cfg.clientCidrs,
            clientSecurityGroupIds: cfg.clientSecurityGroupIds,
            s3PrefixListId: network.s3PrefixListId,
        }, parent);
        const secrets = new Secrets(childName(name, "secrets"), { clusterName: cfg.clusterName, tls: cfg.tls, kmsKeyArn: key.arn }, parent);
        const bucket = new BackupBucket(childName(name, "backup"), {
            clusterName: cfg.clusterName,
            kmsKeyArn: key.arn,
            transitionDays: cfg.backupTransitionDays,
            expirationDays: cfg.backupExpirationDays,
            forceDestroy: cfg.backupBucketForceDestroy,
            protect: cfg.protectData,
            accountId: env.accountId,
        }, parent);
        const snapshots = new SnapshotPolicy(childName(name, "snapshots"), {
            clusterName: cfg.clusterName,
            intervalHours: cfg.snapshotIntervalHours,
            retentionCount: cfg.snapshotRetentionCount,
            kmsKeyArn: key.arn,
            partition: env.partition,
        }, parent);
        const role = new NodeRole(childName(name, "iam"), {
            clusterName: cfg.clusterName,
            region: env.region,
            accountId: env.accountId,
            partition: env.partition,
            kmsKeyArn: key.arn,
            backupBucketArn: bucket.arn,
        }, parent);
        // The autoscaler's runner (autoscale.enabled): its role first, as the key policy names it;
        // its policy and instance once the load balancer, dashboard and nodes exist (launch, below).
        const runner = cfg.autoscale.enabled ? new AutoscaleRunner(childName(name, "autoscaler"), {
            clusterName: cfg.clusterName,
            stack: pulumi.getStack(),
            region: env.region,
            accountId: env.accountId,
            partition: env.partition,
            policy: cfg.autoscale,
            vpcId: network.vpcId,
            vpcCidr: existing ? existing.cidrBlock : cfg.vpcCidr,
            availabilityZone: env.availabilityZones[0],
            subnetId: existing ? cfg.autoscale.runnerSubnetId : undefined,
            s3EndpointId: network instanceof Network ? network.s3EndpointId : undefined,
            port: cfg.port,
            nodeSecurityGroupId: sgs.nodeSecurityGroup.id,
            kmsKeyArn: key.arn,
            backupBucketName: bucket.bucketName,
            backupBucketArn: bucket.arn,
            nodeRoleArn: role.role.arn,
            projectRoot: projectRoot ?? defaultProjectRoot(),
            resourcePrefix: name,
        }, parent) : undefined;
        key.restrictUse(childName(name, "kms-policy"), {
            partition: env.partition,
            region: env.region,
            accountId: env.accountId,
            nodeRoleArn: role.role.arn,
            snapshotRoleArn: snapshots.roleArn,
            administratorArns: cfg.keyAdministratorArns.length > 0 ? cfg.keyAdministratorArns : [env.deployerArn],
            ...(runner ? { autoscalerRoleArn: runner.role.arn } : {}),
        });

        // Cluster-wide settings (maxmemory share, policy, timeouts, min-replicas) live in one SSM
        // parameter the nodes read at every boot, not in their user data: changing one updates
        // this parameter only, never an instance (see bootstrap/nodeSettings.ts); `reconfigure`
        // applies it to running nodes one at a time.
        const nodeSettingsName = ssmParameterNames(cfg.clusterName).nodeSettings;
        const nodeSettingsParam = new aws.ssm.Parameter(childName(name, "node-settings"), {
            name: nodeSettingsName,
            type: "String",
            // A few hundred bytes: Standard (free, up to 4 KB); renderNodeSettings refuses more.
            tier: "Standard",
            // Not a secret: `insecureValue` lets `pulumi preview` show the settings diff in clear.
            insecureValue: renderNodeSettings(nodeSettingsOf(cfg)),
            description: "Cluster-wide redis.conf settings every node renders at boot (KEY=VALUE)",
            tags: tags(cfg.clusterName, nodeSettingsName),
        }, parent);

        // The collector the nodes' metrics hook fetches at boot: published before any node starts.
        const publisher = new MetricsPublisher(childName(name, "metrics"), { bucketName: bucket.bucketName, kmsKeyArn: key.arn }, parent);

        const plans = planNodes(cfg, existing?.subnets);
        const nodes = new RedisNodes(childName(name, "nodes"), {
            config: cfg,
            nodes: plans,
            availabilityZones: env.availabilityZones,
            subnetIds: network.subnetIds,
            securityGroupId: sgs.nodeSecurityGroup.id,
            instanceProfileName: role.instanceProfile.name,
            kmsKeyArn: key.arn,
            amiId: env.amiId,
            amiPinned: env.amiPinned,
            region: env.region,
            backupBucketName: bucket.bucketName,
            renderUserData,
            namePrefix: name,
            // A first boot needs its paths and files to exist: the endpoints, the S3 route and the egress
            // rules (network, sgs), the node and key policies (role, key), the parameters, the metrics
            // collector the hook fetches (publisher). A component stands for all of its children; a
            // dependsOn on RedisNodes itself would not reach the instances. The node policy is listed
            // itself: it is a child of the role resource, which the expansion stops at.
            // In an existing VPC the network is not ours: nothing of it to wait for.
            bootDependsOn: [...secrets.parameters, nodeSettingsParam, publisher, ...(network instanceof Network ? [network] : []), sgs, role, role.policy, key],
        }, parent);

        const lb = new LoadBalancer(childName(name, "lb"), {
            clusterName: cfg.clusterName,
            vpcId: network.vpcId,
            subnetIds: network.subnetIds,
            securityGroupId: sgs.loadBalancerSecurityGroup.id,
            port: cfg.port,
            deletionProtection: cfg.protectData,
            targets: plans.map((p) => ({ resourceName: nodeResourceName(name, p.shard, p.replica), privateIp: p.privateIp })),
        }, parent);

        const monitored: MonitoredNode[] = plans.map((p) => ({ name: p.name, shard: p.shard, resourceName: nodeResourceName(name, p.shard, p.replica) }));
        const alarms = new Alarms(childName(name, "alarms"), {
            clusterName: cfg.clusterName,
            region: env.region,
            partition: env.partition,
            alarmEmail,
            cpuThresholdPercent: cfg.cpuAlarmThresholdPercent,
            nodes: nodes.nodes.map(({ plan, node }) => ({
                resourceName: nodeResourceName(name, plan.shard, plan.replica),
                name: plan.name,
                instanceId: node.instanceId,
            })),
            loadBalancerArnSuffix: lb.loadBalancer.arnSuffix,
            targetGroupArnSuffix: lb.targetGroup.arnSuffix,
            redis: { settings: cfg, nodes: monitored },
        }, parent);
        const dashboard = new Dashboard(childName(name, "dashboard"), {
            clusterName: cfg.clusterName,
            region: env.region,
            nodes: monitored,
            alarmArns: [alarms.unhealthy.arn, ...alarms.redisAlarms.map((a) => a.arn)],
        }, parent);
        const runnerInstance = runner?.launch({ targetGroupArn: lb.targetGroup.arn, dashboardName: dashboard.dashboard.dashboardName, publishAfter: [nodes] });
        return {
            topology: nodes.topologyNodes.apply((ns): Topology => ({ clusterName: cfg.clusterName, port: cfg.port, tls: cfg.tls, nodes: ns })),
            loadBalancerDnsName: lb.dnsName,
            backupBucketName: bucket.bucketName,
            adminCredentials: pulumi.secret(secrets.adminPassword.apply((password) => ({ user: ACL_USERS.admin, password }))),
            ...(secrets.caCertPem ? { tlsCaCertificate: secrets.caCertPem } : {}),
            nodeSettings: pulumi.output(desiredNodeSettingsOf(cfg, { parameterName: nodeSettingsName })),
            networkMode: pulumi.output<NetworkMode>(existing ? "existing" : "created"),
            pendingNodeChanges: nodes.pendingNodeChanges,
            vpcId: network.vpcId,
            privateSubnetIds: pulumi.all(network.subnetIds),
            nodeSecurityGroupId: sgs.nodeSecurityGroup.id,
            alarmTopicArn: alarms.topic.arn,
            dashboardName: dashboard.dashboard.dashboardName,
            ...(runnerInstance ? { autoscaleRunnerInstanceId: runnerInstance.id } : {}),
        };
    }
}
