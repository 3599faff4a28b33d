/**
 * A running cluster keeps the network it was created in. Moving it between its own VPC and an
 * existing one (or to other subnets) changes every node's subnet, and Pulumi would replace
 * every network interface and instance, and the zone-bound data volumes with them: the whole
 * cluster at once, data included. The program refuses that before declaring anything.
 *
 * The previous mode comes from the stack's own last outputs (`networkMode`, `vpcId`,
 * `privateSubnetIds`), read through a StackReference to the stack itself.
 */
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_NAMESPACE, StackConfig } from "./config";

export interface PreviousNetwork {
    networkMode?: unknown;
    vpcId?: unknown;
    privateSubnetIds?: unknown;
}

/** Why this config cannot be applied to a stack last deployed with `previous`; empty when it can. */
export function networkModeProblems(previous: PreviousNetwork, cfg: Pick<StackConfig, "vpcId" | "subnetIds">): string[] {
    if (typeof previous.vpcId !== "string") return []; // never deployed
    const key = (k: string) => `${CONFIG_NAMESPACE}:${k}`;
    // Stacks deployed before `networkMode` existed created their VPC.
    const was = previous.networkMode === "existing" ? "existing" : "created";
    const how = "To move a cluster, deploy a new stack in the target network, copy the data over (backup and restore, or replicate), point the clients at it, then destroy this stack.";
    if (was === "created" && cfg.vpcId !== undefined) {
        return [`${key("vpcId")} is set, but this stack runs its cluster in the VPC it created (${previous.vpcId}): moving to ${cfg.vpcId} would replace every node and data volume at once, and delete the stack's VPC. Refused. ${how} Or remove ${key("vpcId")} and ${key("subnetIds")} to keep the current network.`];
    }
    if (was === "existing" && cfg.vpcId === undefined) {
        return [`${key("vpcId")} is not set, but this stack runs its cluster in the existing VPC ${previous.vpcId}: creating a VPC of its own would replace every node and data volume at once. Refused. ${how} Or set ${key("vpcId")} ${previous.vpcId} and its ${key("subnetIds")} again.`];
    }
    if (was === "existing" && cfg.vpcId !== previous.vpcId) {
        return [`${key("vpcId")} changed from ${previous.vpcId} to ${cfg.vpcId} on a running cluster: every node and data volume would be replaced at once. Refused. ${how}`];
    }
    const before = Array.isArray(previous.privateSubnetIds) ? previous.privateSubnetIds.map(String) : undefined;
    if (was === "existing" && before && JSON.stringify(before) !== JSON.stringify(cfg.subnetIds)) {
        return [`${key("subnetIds")} changed from ${JSON.stringify(before)} to ${JSON.stringify(cfg.subnetIds)} on a running cluster: a node's zone and address follow its subnet's position in this list, so nodes would be replaced. Refused. Keep the list as it was. ${how}`];
    }
    return [];
}

/** The network outputs of this stack's last update (empty for a new stack). */
export async function previousNetwork(): Promise<PreviousNetwork> {
    const self = new pulumi.StackReference(`${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`);
    const [networkMode, vpcId, privateSubnetIds] = await Promise.all(
        ["networkMode", "vpcId", "privateSubnetIds"].map(async (n) => (await self.getOutputDetails(n)).value));
    return { networkMode, vpcId, privateSubnetIds };
}
