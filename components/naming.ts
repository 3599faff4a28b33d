/**
 * Resource naming, apart from the resources themselves (as awsx's subnetNaming).
 *
 * Pulumi resource names are the identity: `${name}-<role>` for singletons and
 * `${name}-s<shard>-r<replica>[-<role>]` per node, so scaling adds names and
 * never shifts one. `Name` tags are display only and may change freely.
 * No `@pulumi/*` import.
 */
import { nodeName } from "./topology";

/** Tag every resource carries, with the cluster name as value: DLM targets volumes by it. */
export const CLUSTER_TAG = "redis-cluster:cluster";
/**
 * Tag on data volumes the snapshot policy picks up, with the cluster name as
 * value: the policy's only target tag, so it never catches root volumes or
 * another cluster's data volumes.
 */
export const SNAPSHOT_TAG = "redis-cluster:snapshot";
/** Key prefix in the backup bucket that nodes may write to and read from (never delete). */
export const BACKUP_PREFIX = "backups/";
/** CloudWatch namespace nodes may publish custom metrics to (besides the agent's default CWAgent). */
export const METRICS_NAMESPACE = "RedisCluster";

/** `${name}-<role>` for a singleton child. */
export function childName(name: string, role: string): string {
    return `${name}-${role}`;
}

/** Resource name of a per-node child: `${name}-s<shard>-r<replica>` or `${name}-s<shard>-r<replica>-<role>`. */
export function nodeResourceName(name: string, shard: number, replica: number, role?: string): string {
    const base = nodeName(name, shard, replica);
    return role ? `${base}-${role}` : base;
}

/** Per-zone child: `${name}-<role>-<zoneIndex>` (zone index, not the AZ name, so a region move keeps names). */
export function zoneResourceName(name: string, role: string, zoneIndex: number): string {
    return `${name}-${role}-${zoneIndex}`;
}

/** Log group the nodes' agent writes to. */
export function nodeLogGroupName(clusterName: string): string {
    return `/redis-cluster/${clusterName}/nodes`;
}

/** Log group of the VPC flow logs. */
export function flowLogGroupName(clusterName: string): string {
    return `/redis-cluster/${clusterName}/vpc-flow-logs`;
}

/** Tags shared by every resource of a cluster, plus a display Name. */
export function tags(clusterName: string, displayName?: string, extra: Record<string, string> = {}): Record<string, string> {
    return { [CLUSTER_TAG]: clusterName, ...(displayName ? { Name: displayName } : {}), ...extra };
}

/**
 * AWS caps load balancer and target group names at 32 characters. Cluster
 * names may be 32 long, so the suffix is kept and the cluster part trimmed.
 */
export function awsName32(clusterName: string, suffix: string): string {
    const room = 32 - suffix.length - 1;
    return `${clusterName.slice(0, room).replace(/-+$/, "")}-${suffix}`;
}

/**
 * DLM schedule name. The API allows only `[0-9A-Za-z _-]+`, at most 120
 * characters (botocore dlm/2018-01-12 ScheduleName): no comma, no colon.
 */
export function dlmScheduleName(intervalHours: number, retentionCount: number): string {
    return `every ${intervalHours}h keep ${retentionCount}`;
}

/**
 * Trust policy letting one AWS service assume a role. With `sourceAccount`,
 * only on behalf of that account (the confused-deputy guard AWS recommends for
 * service roles such as VPC Flow Logs').
 */
export function assumeRolePolicy(service: string, sourceAccount?: string) {
    return {
        Version: "2012-10-17",
        Statement: [{
            Effect: "Allow",
            Action: "sts:AssumeRole",
            Principal: { Service: service },
            ...(sourceAccount ? { Condition: { StringEquals: { "aws:SourceAccount": sourceAccount } } } : {}),
        }],
    };
}
