/**
 * The package's entry point (`import { RedisCluster } from "pulumi-redis-cluster"`): the
 * RedisCluster component and its parts, their argument types, and the config, placement and
 * environment helpers they share with the stack program (index.ts at the repository root).
 */
export { RedisCluster, clusterConfigOf } from "./redisCluster";
export type { RedisClusterArgs, RedisClusterSettings, ClusterOutputs, NetworkMode } from "./redisCluster";
export type { Topology, TopologyNode } from "./topology";
export { lookupExistingVpc, existingVpcProblems, neededInterfaceEndpoints } from "./existingVpc";
export type { ExistingVpc } from "./existingVpc";
export { networkModeProblems, previousNetwork } from "./networkMode";
export { Network, INTERFACE_ENDPOINT_SERVICES } from "./network";
export type { NetworkArgs } from "./network";
export { SecurityGroups } from "./securityGroups";
export type { SecurityGroupsArgs } from "./securityGroups";
export { EncryptionKey } from "./encryptionKey";
export type { EncryptionKeyArgs } from "./encryptionKey";
export { Secrets } from "./secrets";
export type { SecretsArgs } from "./secrets";
export { BackupBucket } from "./backupBucket";
export type { BackupBucketArgs } from "./backupBucket";
export { SnapshotPolicy } from "./snapshotPolicy";
export type { SnapshotPolicyArgs } from "./snapshotPolicy";
export { NodeRole } from "./nodeRole";
export type { NodeRoleArgs } from "./nodeRole";
export { RedisNode } from "./redisNode";
export type { RedisNodeArgs } from "./redisNode";
export { RedisNodes } from "./redisNodes";
export type { RedisNodesArgs } from "./redisNodes";
export { LoadBalancer } from "./loadBalancer";
export type { LoadBalancerArgs } from "./loadBalancer";
export { Alarms } from "./alarms";
export type { AlarmsArgs } from "./alarms";
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
