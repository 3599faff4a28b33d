/**
 * The metrics collector: reads every topology node through the status reader
 * (`collectStatus`: CLUSTER NODES, CLUSTER INFO, INFO, INFO errorstats, and the
 * masters' replication offsets) and maps what it read to samples with the one
 * pure mapping in scripts/plan/metrics.ts. Every outlet calls this: `metrics`,
 * `status --watch`, and the node's own publisher (scripts/metrics/node.ts).
 */
import { Topology } from "../../components/topology";
import { BackupFacts, CollectorState, MetricsNodeInput, MetricsSnapshot, toSamples } from "../plan/metrics";
import { collectStatus } from "./healthReport";
import { StatusInput } from "../plan/status";
import { NodePool } from "./pool";
import { nodeKey } from "../plan/node";

export interface CollectMetricsOptions {
    /** The previous run's state, for counter deltas and CPU utilisation. */
    previous?: CollectorState;
    backupFacts?: BackupFacts;
    /** Data-volume usage by node name, measured where the volume is (the node itself). */
    dataVolumeUsedPercent?: Record<string, number>;
    /** Read a replica's master even when it is not in the topology (the node-local collector reads only itself). */
    followMasters?: boolean;
    /** @default Date.now */
    now?: () => number;
}

export interface CollectedMetrics {
    snapshot: MetricsSnapshot;
    /** Keep for the next run. */
    state: CollectorState;
    /** What the status reader read, for callers that also judge health (`status --watch`). */
    status: StatusInput;
}

export async function collectMetrics(pool: NodePool, topology: Topology, opts: CollectMetricsOptions = {}): Promise<CollectedMetrics> {
    const status = await collectStatus(pool, topology, { followMasters: opts.followMasters });
    const byKey = new Map(status.samples.map((s) => [s.key, s]));
    const now = (opts.now ?? Date.now)();
    const nodes: MetricsNodeInput[] = topology.nodes.map((t) => {
        const s = byKey.get(nodeKey(t))!;
        return {
            name: t.name,
            shard: t.shard,
            key: s.key,
            reachable: s.reachable,
            error: s.error,
            info: s.info ?? {},
            hasErrorstats: !!s.hasErrorstats,
            clusterInfo: s.clusterInfo,
            masterReplication: s.masterReplication,
            dataVolumeUsedPercent: opts.dataVolumeUsedPercent?.[t.name],
            at: s.at ?? now,
        };
    });
    const { snapshot, state } = toSamples({ clusterName: topology.clusterName, nodes, previous: opts.previous, backupFacts: opts.backupFacts, now });
    return { snapshot, state, status };
}
