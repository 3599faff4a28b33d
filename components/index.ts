/**
 * The package's entry point (`import { RedisCluster } from "pulumi-redis-cluster"`): the
 * RedisCluster component, its argument and output types, and the config, placement and
 * environment helpers it shares with the stack program (index.ts at the repository root).
 *
 * The building blocks it is made of (Network, SecurityGroups, RedisNodes, …) are in
 * `pulumi-redis-cluster/parts` (./parts.ts): their declarations name @pulumi/aws types, and
 * keeping them out of this entry keeps a program that only needs the cluster from
 * type-checking all of @pulumi/aws on their account.
 */
export { RedisCluster, clusterConfigOf } from "./redisCluster";
export type { RedisClusterArgs, RedisClusterSettings, ClusterOutputs, NetworkMode } from "./redisCluster";
export type { Topology, TopologyNode } from "./topology";
export { lookupExistingVpc, existingVpcProblems, neededInterfaceEndpoints } from "./existingVpc";
export type { ExistingVpc } from "./existingVpc";
export { networkModeProblems, previousNetwork } from "./networkMode";
export { lookupEnvironment, chooseZones } from "./environment";
export type { Environment } from "./environment";
export { loadConfig } from "./loadConfig";
export type { LoadedConfig } from "./loadConfig";
export { parseStackConfig, parseStackYaml, ConfigError } from "./config";
export type { StackConfig } from "./config";
export { planNodes } from "./plan/placement";
export type { NodePlan } from "./plan/placement";
export { planSubnets } from "./plan/subnets";
export type { SubnetPlan } from "./plan/subnets";
