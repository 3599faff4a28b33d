/**
 * Pure choices for a backup: which node of a shard takes it. The same rule as the
 * node script (components/bootstrap/backup.sh), which applies it in awk:
 *
 *   the shard's replicas that its master reports `state=online` with `lag` at most
 *   `maxLagSec` (in sync, so the master never forks), smallest node id first; then
 *   the master.
 *
 * Node ids, not replication offsets: offsets move with every write, so two nodes
 * reading the master a moment apart could each find themselves "highest" (issue 11's
 * first rule let two nodes back up one shard). Every node of the shard reads the same
 * master's INFO, so the order is the same everywhere except when a replica crosses the
 * lag bound between two reads; the claim (scripts/backup/claim.ts, backup.sh) makes
 * the choice final then. The order is also the fallback order: candidate k waits k
 * claim deadlines before claiming a shard nobody claimed.
 */

export interface ReplicaLine {
    /** `ip:port` as the master sees the replica. */
    key: string;
    state: string;
    offset: number;
    lagSec: number;
}

/** The `slaveN:ip=…,port=…,state=…,offset=…,lag=…` lines of a master's INFO replication. */
export function parseReplicaLines(infoReplication: string): ReplicaLine[] {
    const out: ReplicaLine[] = [];
    for (const line of infoReplication.split(/\r?\n/)) {
        const m = /^slave\d+:(.*)$/.exec(line.trim());
        if (!m) continue;
        const f = Object.fromEntries(m[1].split(",").map((kv) => kv.split("=") as [string, string]));
        out.push({ key: `${f.ip}:${f.port}`, state: f.state ?? "", offset: Number(f.offset ?? 0), lagSec: Number(f.lag ?? Infinity) });
    }
    return out;
}

export interface BackupCandidate {
    key: string;
    id: string;
    role: "replica" | "master";
    /** Why, for the log. */
    reason: string;
}

export interface ShardFacts {
    masterKey: string;
    masterId: string;
    /** The master's replicas as CLUSTER NODES lists them (key and id), failing ones excluded. */
    replicas: { key: string; id: string }[];
    /** The master's INFO replication. */
    infoReplication: string;
    /** @default 10 */
    maxLagSec?: number;
}

/**
 * The shard's candidates in order: in-sync replicas by node id, then the master. A
 * replica the master does not list as online within the lag bound (link down, still
 * syncing, lagging) is not a candidate: its copy may be stale.
 */
export function backupCandidates(f: ShardFacts): BackupCandidate[] {
    const maxLag = f.maxLagSec ?? 10;
    const lines = new Map(parseReplicaLines(f.infoReplication).map((r) => [r.key, r]));
    const inSync = f.replicas.filter((r) => {
        const l = lines.get(r.key);
        return l !== undefined && l.state === "online" && l.lagSec <= maxLag;
    }).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const out: BackupCandidate[] = inSync.map((r, i) => ({ key: r.key, id: r.id, role: "replica", reason: i === 0 ? "in-sync replica with the smallest node id" : `in-sync replica, fallback ${i}` }));
    const notInSync = f.replicas.filter((r) => !inSync.includes(r)).map((r) => {
        const l = lines.get(r.key);
        return l ? `${r.key} ${l.state} lag ${l.lagSec}s` : `${r.key} not connected`;
    });
    out.push({
        key: f.masterKey, id: f.masterId, role: "master",
        reason: inSync.length ? `master, fallback ${inSync.length}` : f.replicas.length ? `no replica in sync (${notInSync.join(", ")})` : "the shard has no replica",
    });
    return out;
}
