/**
 * The CLUSTER NODES parser is pure and lives with the planners (plan/clusterNodes.ts),
 * which read its lines too; the executors keep importing it from here.
 */
export * from "../plan/clusterNodes";
