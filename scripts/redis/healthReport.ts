/**
 * The status reader: one sample per topology node (readNodes: CLUSTER NODES, CLUSTER
 * INFO, INFO, INFO errorstats, DBSIZE, CONFIG GET cluster-node-timeout), the replication
 * offsets of masters outside the topology when asked, and the masters' failure reports. `status`, `roll`, the
 * metrics collector and autoscale judge what it read with evaluateStatus
 * (scripts/plan/status.ts).
 */
import { Topology } from "../../components/topology";
import { nodeKey } from "../plan/node";
import { StatusInput } from "../plan/status";
import { readNodes } from "./clusterView";
import { NodePool } from "./pool";

export interface CollectOptions {
    /**
     * For a replica whose master is not among the nodes read (the node-local
     * collector reads only itself), read the master's INFO replication too, so
     * the replica's lag in bytes and seconds is known. @default false
     */
    followMasters?: boolean;
}

/** Reads one sample per topology node, in parallel, then the masters' failure reports. */
export async function collectStatus(pool: NodePool, topology: Topology, opts: CollectOptions = {}): Promise<StatusInput> {
    // One INFO per section: Redis 6.2 takes a single section argument (7.0 takes several).
    const samples = await readNodes(pool, topology.nodes.map(nodeKey), { info: ["default", "errorstats"], dbsize: true, config: ["cluster-node-timeout"] });
    // A replica's lag in bytes needs its master's offset: from the master's sample, or read for it.
    const byKey = new Map(samples.map((s) => [s.key, s]));
    await Promise.all(samples.map(async (s) => {
        const info = s.info ?? {};
        if (!s.reachable || info.role !== "slave" || !info.master_host) return;
        const masterKey = nodeKey({ host: info.master_host, port: info.master_port });
        const m = byKey.get(masterKey);
        if (m?.reachable) {
            s.masterReplication = m.info;
            return;
        }
        if (!opts.followMasters) return;
        // An unreachable master: the replica's own link status says so.
        const [master] = await readNodes(pool, [masterKey], { info: ["replication"] });
        if (master.reachable) s.masterReplication = master.info;
    }));
    // Failure reports are kept by every node but only masters' reports count: ask the masters.
    const ids = new Set<string>();
    for (const s of samples) for (const n of s.nodes) if (!n.flags.includes("handshake")) ids.add(n.id);
    const masters = samples.filter((s) => s.myself?.role === "master");
    const failureReports = new Map<string, number>();
    await Promise.all(masters.map(async (m) => {
        try {
            const c = await pool.get(m.key);
            const p = c.pipeline();
            const list = [...ids];
            for (const id of list) p.call("CLUSTER", "COUNT-FAILURE-REPORTS", id);
            const res = (await p.exec())!;
            res.forEach(([err, v], i) => {
                if (!err) failureReports.set(list[i], Math.max(failureReports.get(list[i]) ?? 0, Number(v)));
            });
        } catch {
            /* the master went away between the two reads: its sample already says so */
        }
    }));
    return { topology, samples, failureReports };
}

