import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { UserDataInput } from "./bootstrap/contract";
import type { TopologyNode } from "./topology";
import type { NodePlan } from "./plan/placement";
import type { PendingNodeChange } from "./plan/rollout";
import { renderUserData } from "./bootstrap/userData";
import { RedisNode, RedisNodeArgs } from "./redisNode";
import { childName, nodeLogGroupName, nodeResourceName, tags } from "./naming";

/** What every node shares; the per-node fields (plan, zone, subnet) come from the shape. */
type SharedNodeArgs = Omit<RedisNodeArgs, "plan" | "availabilityZone" | "subnetId" | "renderUserData">;

export interface RedisNodesArgs extends SharedNodeArgs {
    /** Every node of the shape, from `planNodes`. */
    nodes: NodePlan[];
    /** Zone index -> availability zone name. */
    availabilityZones: string[];
    /** Zone index -> subnet id. */
    subnetIds: pulumi.Input<string>[];
    /** Renders one node's user data. @default renderUserData from ./bootstrap/userData */
    renderUserData?: (input: UserDataInput) => string;
    /** Prefix of node resource names: nodes are `${namePrefix}-s<shard>-r<replica>`. */
    namePrefix: string;
}

/** Every node of the cluster, plus the log group they write to. */
export class RedisNodes extends pulumi.ComponentResource {
    readonly nodes: { plan: NodePlan; az: string; node: RedisNode }[];
    /** The `topology.nodes` the operations tool reads. */
    readonly topologyNodes: pulumi.Output<TopologyNode[]>;
    readonly logGroup: aws.cloudwatch.LogGroup;
    /** Nodes whose instance differs from the desired type/AMI/user data: what `roll` applies. */
    readonly pendingNodeChanges: pulumi.Output<PendingNodeChange[]>;

    constructor(name: string, args: RedisNodesArgs, opts?: pulumi.ComponentResourceOptions) {
        super("rediscluster:index:RedisNodes", name, {}, opts);
        const { nodes, availabilityZones, subnetIds, renderUserData: render, namePrefix, ...shared } = args;
        const cfg = args.config;
        this.logGroup = new aws.cloudwatch.LogGroup(childName(name, "logs"), {
            name: nodeLogGroupName(cfg.clusterName),
            retentionInDays: cfg.logRetentionDays,
            tags: tags(cfg.clusterName, nodeLogGroupName(cfg.clusterName)),
        }, { parent: this });

        this.nodes = nodes.map((plan) => {
            const az = availabilityZones[plan.zoneIndex];
            const node = new RedisNode(nodeResourceName(namePrefix, plan.shard, plan.replica), {
                ...shared,
                plan,
                availabilityZone: az,
                subnetId: subnetIds[plan.zoneIndex],
                renderUserData: render ?? renderUserData,
            }, { parent: this });
            return { plan, az, node };
        });

        this.topologyNodes = pulumi.all(this.nodes.map(({ plan, az, node }) =>
            node.instanceId.apply((instanceId): TopologyNode => ({
                name: plan.name,
                shard: plan.shard,
                az,
                host: plan.privateIp,
                port: cfg.port,
                instanceId,
            }))));
        this.pendingNodeChanges = pulumi.all(this.nodes.map(({ node }) => node.pendingChange))
            .apply((all) => {
                const pending = all.filter((c): c is PendingNodeChange => c !== undefined);
                if (pending.length) {
                    // What `pulumi preview` would otherwise show as a fleet-wide stop, said once and plainly.
                    const fields = [...new Set(pending.flatMap((p) => p.changes.map((c) => c.field)))].join(", ");
                    pulumi.log.warn(`${pending.length} of ${this.nodes.length} node(s) still run an older ${fields}: this update leaves them alone; ` +
                        `apply it one node at a time with: npm run cluster -- roll --stack ${pulumi.getStack()}`, this);
                }
                return pending;
            });
        this.registerOutputs({ topologyNodes: this.topologyNodes, logGroupArn: this.logGroup.arn, pendingNodeChanges: this.pendingNodeChanges });
    }
}
