/**
 * master-kill: SIGKILL of a master while an application client writes through
 * the cluster, once with plain writes and once with SET + WAIT 1, each on its
 * own shard. Measures the time from the kill to the replica's promotion (against
 * cluster-node-timeout: detection takes one timeout, then the election waits
 * 500-1000 ms plus a rank delay), to cluster_state:ok everywhere, the errors
 * the client saw, and the acknowledged writes that no longer read back; the full
 * run then restarts the killed node and times its return as a replica in sync.
 */
import { killServer, restartServer } from "../../test/helpers/redisServers";
import { startDrillCluster } from "./cluster";
import { DrillReport, lostKeys, Report, sleep, startWriter, timeUntil, WriteMode } from "./common";

export interface MasterKillOptions {
    /** A short run for the test suite. */
    quick?: boolean;
    /** cluster-node-timeout. @default 5000 (the stack default); quick: 1000 */
    nodeTimeoutMs?: number;
    log?: (line: string) => void;
}

export async function masterKill(o: MasterKillOptions = {}): Promise<DrillReport> {
    const log = o.log ?? (() => undefined);
    const T = o.nodeTimeoutMs ?? (o.quick ? 1000 : 5000);
    const writeBeforeMs = o.quick ? 300 : 3000;
    const writeAfterMs = o.quick ? 300 : 3000;
    const report = new Report("master-kill", { shards: 3, replicasPerShard: 1, clusterNodeTimeoutMs: T, quick: !!o.quick, writerLanes: 4 }, log);
    log(`master-kill: 3 shards x (1 + 1), cluster-node-timeout ${T} ms`);
    const dc = await startDrillCluster({ shards: 3, replicas: 1, settings: { clusterNodeTimeoutMs: T } });
    try {
        const modes: WriteMode[] = ["wait1", "plain"];
        for (const [shard, mode] of modes.entries()) {
            const [master, replica] = dc.shards[shard];
            const replicaAdmin = dc.client(replica);
            const survivors = dc.shards.flat().filter((s) => s !== master && s.proc.exitCode === null && s.proc.signalCode === null);
            const writer = startWriter(dc.appClient(), `mk-${mode}`, mode);
            await sleep(writeBeforeMs);
            const before = writer.acked.size;
            const tKill = Date.now();
            await killServer(master);
            log(`  ${mode}: SIGKILL of shard ${shard}'s master ${master.key} after ${before} acknowledged writes`);
            const promotedMs = await timeUntil(async () => /role:master/.test((await replicaAdmin.call("INFO", "replication")) as string), 4 * T + 10000);
            const okMs = await timeUntil(async () => {
                const states = await Promise.all(survivors.map(async (s) => /cluster_state:ok/.test((await dc.client(s).call("CLUSTER", "INFO")) as string)));
                return states.every(Boolean);
            }, 4 * T + 10000).then((ms) => (ms === undefined ? undefined : Date.now() - tKill));
            await sleep(writeAfterMs);
            await writer.stop();
            const window = writer.errorWindow();
            const reader = dc.appClient();
            const lost = await lostKeys(reader, writer.acked);
            reader.disconnect();
            const p = mode;
            report.figure(`${p}.promotionMs`, promotedMs ?? "none");
            report.figure(`${p}.promotionInNodeTimeouts`, promotedMs === undefined ? "none" : +(promotedMs / T).toFixed(2));
            report.figure(`${p}.clusterStateOkMs`, okMs ?? "none");
            report.figure(`${p}.writesAttempted`, writer.attempts());
            report.figure(`${p}.writesAcknowledged`, writer.acked.size);
            if (mode === "wait1") report.figure(`${p}.writesNotConfirmedByReplica`, writer.unconfirmed);
            report.figure(`${p}.clientErrors`, writer.errors);
            report.figure(`${p}.clientErrorWindowMs`, window.first ? window.last! - window.first : 0);
            report.figure(`${p}.acknowledgedThenLost`, lost.length);
            const bound = 2 * T + 2000;
            report.check(`${mode}: the replica is promoted within 2 x cluster-node-timeout + 2 s (${bound} ms)`, promotedMs !== undefined && promotedMs <= bound, `${promotedMs ?? "no promotion"} ms`);
            report.check(`${mode}: every node left reports cluster_state:ok again`, okMs !== undefined, `${okMs ?? "never"} ms after the kill`);
            report.check(`${mode}: writes succeed again after the promotion`, writer.acked.size > before, `${writer.acked.size - before} acknowledged after the kill`);
            if (mode === "wait1") report.check("WAIT 1: no write acknowledged by a replica is lost", lost.length === 0, `${lost.length} of ${writer.acked.size} lost`);
            // WAIT 1 runs first, while every shard has its replica; plain writes need none. The full drill
            // also brings the killed node back (its nodes.conf keeps its identity) as its successor's replica.
            if (o.quick) continue;
            const tBack = Date.now();
            await restartServer(master);
            const masterAdmin = dc.client(master);
            const rejoinMs = await timeUntil(async () => /role:slave[\s\S]*master_link_status:up/.test((await masterAdmin.call("INFO", "replication")) as string), 4 * T + 10000);
            const backMs = rejoinMs === undefined ? undefined : Date.now() - tBack;
            report.figure(`${p}.restartedAsReplicaInSyncMs`, backMs ?? "never");
            report.check(`${mode}: the killed master, restarted, rejoins as a replica of its successor and syncs`, backMs !== undefined, `${backMs ?? "not"} ms from the restart`);
        }
    } finally {
        await dc.stop();
    }
    return report.done();
}
