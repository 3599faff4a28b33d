/**
 * Pure planning of a rolling change (`roll`, on AWS and in local mode): which
 * node goes when, and whether it may start at all. No I/O.
 *
 * Order (the procedure the Redis docs give for upgrading a cluster,
 * https://redis.io/docs/latest/operate/oss_and_stack/management/scaling/#upgrade-nodes-in-a-redis-cluster):
 * 1. replicas first, round-robin over the shards (the r-th pending replica of
 *    every shard, then the next), one node at a time;
 * 2. then per shard: a controlled CLUSTER FAILOVER to an in-sync replica
 *    (another zone preferred), then the old master, which is a replica by then.
 *
 * Engine versions: a replica may run a newer engine than its master (it
 * understands the older RDB and command stream); a replica on an OLDER engine
 * than its master cannot load the master's RDB on a full resync. Replicas-first
 * keeps that true for an upgrade; a downgrade has no safe rolling order and is
 * refused. Versions are compared on major.minor of `redis_version` (Valkey
 * reports the Redis version it is compatible with, 7.2.4 for Valkey 7.2–8.x).
 */

export interface RollNode {
    name: string;
    key: string;
    /** Cluster node id (what must be the same after the node comes back). */
    id: string;
    shard: number;
    az: string;
    role: "master" | "replica";
    /** Name of the master, for a replica. */
    master?: string;
    /** Reachable and not flagged failing. */
    healthy: boolean;
    /** Replication link up (replicas). */
    linkUp?: boolean;
    /** INFO server redis_version. */
    version?: string;
}

export interface RollInput {
    nodes: RollNode[];
    /** Node name -> what changes on it (human text); only these nodes are rolled. */
    pending: Map<string, string[]>;
    /** Engine version every rolled node ends up on, when known. */
    targetVersion?: string;
    /** Go on when a shard has no in-sync replica: its slots are unavailable while its master restarts. */
    allowUnavailableShard?: boolean;
    /** Why the cluster is not healthy (status problems). */
    unhealthy: string[];
    /** Open (migrating/importing) slots, described. */
    openSlots: string[];
    /** Nodes with a BGSAVE running (rdb_bgsave_in_progress: how a backup shows today). */
    backups: string[];
}

export type RollStep =
    | { kind: "update"; node: string; shard: number; role: "replica" | "master"; changes: string[]; unavailable?: boolean }
    | { kind: "failover"; shard: number; from: string; candidates: string[] };

export type RollPlan =
    | { ok: true; steps: RollStep[]; warnings: string[] }
    | { ok: false; refusals: string[] };

/** [major, minor] of "7.0.15" / "6.2"; undefined when unparsable. */
export function majorMinor(v: string | undefined): [number, number] | undefined {
    const m = /^(\d+)\.(\d+)/.exec(v ?? "");
    return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** <0, 0, >0 as a is older, the same feature level, newer than b; undefined when either is unknown. */
export function compareVersions(a: string | undefined, b: string | undefined): number | undefined {
    const x = majorMinor(a);
    const y = majorMinor(b);
    if (!x || !y) return undefined;
    return x[0] - y[0] || x[1] - y[1];
}

/**
 * The `redis_version` a node of an engine package reports: AL2023's redis6 is
 * 6.2, upstream redis 7.0 (Debian, this project's tests), Valkey 7.2–8.x says 7.2.4.
 */
export function engineCompatVersion(engine: string): string | undefined {
    return ({ redis6: "6.2", redis: "7.0", valkey: "7.2" } as Record<string, string>)[engine];
}

/**
 * The engine package a running node comes from, by its INFO server: Valkey says
 * `server_name:valkey`; Redis 6.2 is AL2023's redis6; any other Redis, `redis`.
 */
export function engineOf(info: { server_name?: string; redis_version?: string }): string {
    if (info.server_name === "valkey") return "valkey";
    return compareVersions(info.redis_version, "6.2") === 0 ? "redis6" : "redis";
}

/** Replicas a failover of `master` may promote: healthy, in sync, not older than the master; other zones first. */
export function failoverCandidates(master: RollNode, nodes: RollNode[]): RollNode[] {
    return nodes
        .filter((n) => n.role === "replica" && n.master === master.name && n.healthy && n.linkUp)
        .filter((n) => (compareVersions(n.version, master.version) ?? 0) >= 0)
        .sort((a, b) => Number(a.az === master.az) - Number(b.az === master.az) || a.name.localeCompare(b.name));
}

export function planRoll(input: RollInput): RollPlan {
    const refusals: string[] = [];
    if (input.unhealthy.length) refusals.push(`the cluster is not healthy: ${input.unhealthy.join("; ")} (fix it first: npm run cluster -- status)`);
    if (input.openSlots.length) refusals.push(`slot(s) are open (a reshard is running or was interrupted): ${input.openSlots.join(", ")}; let it finish, or rerun the scale/rebalance that left them`);
    if (input.backups.length) refusals.push(`a backup is running (BGSAVE in progress) on ${input.backups.join(", ")}: a restart would cut it short; roll again when it has finished`);

    const byName = new Map(input.nodes.map((n) => [n.name, n]));
    for (const name of input.pending.keys()) {
        if (!byName.has(name)) refusals.push(`${name} has pending changes but is not a member of the cluster (create or scale it in first)`);
    }
    const rolled = input.nodes.filter((n) => input.pending.has(n.name));
    if (input.targetVersion) {
        const newer = rolled.filter((n) => (compareVersions(input.targetVersion, n.version) ?? 0) < 0);
        if (newer.length) {
            refusals.push(`engine ${input.targetVersion} is older than what ${newer.map((n) => `${n.name} (${n.version})`).join(", ")} run${newer.length === 1 ? "s" : ""}: ` +
                `a downgrade has no safe rolling order (a replica on an older engine cannot load a newer master's RDB on a full resync). ` +
                `Move data to a new cluster on the older engine instead (backup and restore)`);
        }
    }

    const steps: RollStep[] = [];
    const warnings: string[] = [];
    const shards = [...new Set(input.nodes.map((n) => n.shard))].sort((a, b) => a - b);
    const masterOf = (shard: number) => input.nodes.find((n) => n.shard === shard && n.role === "master");
    const changes = (n: RollNode) => input.pending.get(n.name) ?? [];

    // Replicas: round-robin over the shards, so no shard is without its updated replica longer than needed.
    const replicasByShard = shards.map((s) => rolled.filter((n) => n.shard === s && n.role === "replica").sort((a, b) => a.name.localeCompare(b.name)));
    for (let round = 0; replicasByShard.some((r) => r.length > round); round++) {
        for (const list of replicasByShard) {
            const n = list[round];
            if (n) steps.push({ kind: "update", node: n.name, shard: n.shard, role: "replica", changes: changes(n) });
        }
    }

    for (const s of shards) {
        const master = masterOf(s);
        if (!master || !input.pending.has(master.name)) continue;
        // Candidates as they will be after the replicas are rolled: every replica of the shard, in sync now.
        const candidates = failoverCandidates(master, input.nodes);
        if (candidates.length === 0) {
            const why = `shard ${s} has no in-sync replica to take over from its master ${master.name}`;
            if (!input.allowUnavailableShard) {
                refusals.push(`${why}; restarting the master makes the shard's slots unavailable. Add or repair a replica (status shows which), or accept the outage with --allow-unavailable-shard`);
                continue;
            }
            warnings.push(`${why}: while ${master.name} restarts, every key of its slots is unavailable (reads and writes fail with CLUSTERDOWN), and a write it acknowledged but had not persisted (appendfsync everysec: up to 1 s) is lost`);
            steps.push({ kind: "update", node: master.name, shard: s, role: "master", changes: changes(master), unavailable: true });
            continue;
        }
        if (candidates.every((c) => c.az === master.az)) warnings.push(`shard ${s}: no in-sync replica outside ${master.az}; failing over within the zone`);
        steps.push({ kind: "failover", shard: s, from: master.name, candidates: candidates.map((c) => c.name) });
        steps.push({ kind: "update", node: master.name, shard: s, role: "master", changes: changes(master) });
    }

    if (refusals.length) return { ok: false, refusals };
    return { ok: true, steps, warnings };
}

/** The plan as lines for `--dry-run` and the start of a roll. */
export function describePlan(steps: RollStep[]): string[] {
    let i = 0;
    const total = steps.filter((s) => s.kind === "update").length;
    return steps.map((s) => s.kind === "failover"
        ? `        shard ${s.shard}: failover ${s.from} → ${s.candidates[0]}${s.candidates.length > 1 ? ` (or ${s.candidates.slice(1).join(", ")})` : ""}`
        : `  ${String(++i).padStart(2)}/${total} ${s.node} (${s.role}${s.unavailable ? ", shard unavailable meanwhile" : ""}): ${s.changes.join("; ") || "restart"}`);
}
