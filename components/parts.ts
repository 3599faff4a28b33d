/**
 * The building blocks of RedisCluster, one ComponentResource per AWS concept, for programs that
 * compose their own cluster (`import { RedisNodes } from "pulumi-redis-cluster/parts"`).
 */
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
