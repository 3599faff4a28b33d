/**
 * Pure choices for a backup: which node of a shard takes it. The same rule as the
 * node script (components/bootstrap/backup.sh), which applies it in awk: the in-sync
 * replica (online, lag at most `maxLagSec`) with the highest replication offset, so
 * the master never forks; ties by address; the master when no replica is in sync.
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

export interface BackupChoice {
    key: string;
    role: "replica" | "master";
    /** Why, for the log. */
    reason: string;
}

export function chooseBackupNode(masterKey: string, infoReplication: string, maxLagSec = 10): BackupChoice {
    const all = parseReplicaLines(infoReplication);
    const inSync = all.filter((r) => r.state === "online" && r.lagSec <= maxLagSec)
        .sort((a, b) => b.offset - a.offset || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    if (inSync.length) return { key: inSync[0].key, role: "replica", reason: `in-sync replica with the highest offset (${inSync[0].offset})` };
    return { key: masterKey, role: "master", reason: all.length ? `no replica in sync (${all.map((r) => `${r.key} ${r.state} lag ${r.lagSec}s`).join(", ")})` : "the shard has no replica" };
}
