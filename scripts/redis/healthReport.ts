/**
 * What `status` shows: one sample per node (collected in parallel), judged by a
 * pure function into shards, cluster-wide facts, problems (unhealthy: exit 1)
 * and warnings. Live nodes are matched to topology entries by `host:port`.
 */
import { RefusedError } from "../errors";
import { Topology } from "../../components/topology";
import { keyOf } from "../plan/topology";
import { ClusterNodeInfo, countSlots, formatRanges, parseClusterNodes, slotOwners, SLOT_COUNT, toRanges } from "./clusterNodes";
import { parseInfo } from "./clusterView";
import { NodeKey, nodeKey, NodePool } from "./pool";
import { EngineInfo, engineLabel, engineOf } from "./engine";

/** Everything read from one node. */
export interface NodeSample {
    key: NodeKey;
    reachable: boolean;
    error?: string;
    nodes: ClusterNodeInfo[];
    myself?: ClusterNodeInfo;
    /** CLUSTER INFO */
    clusterInfo: Record<string, string>;
    /** INFO replication fields (the same map as `info`, which holds every section). */
    replication: Record<string, string>;
    /** INFO memory fields (the same map as `info`). */
    memory: Record<string, string>;
    /** Default INFO (server, clients, memory, persistence, stats, replication, cpu, cluster, keyspace) plus INFO errorstats, flattened. */
    info?: Record<string, string>;
    /** INFO errorstats answered with its section (Redis 6.2+). */
    hasErrorstats?: boolean;
    /** For a replica: INFO replication of its master (offsets, its replicas' lag), from the master's own sample or read for it. */
    masterReplication?: Record<string, string>;
    /** ms since the epoch when the node answered. */
    at?: number;
    /** INFO server redis_version (Valkey: its Redis compatibility level, 7.2.4 on Valkey 8). */
    version?: string;
    /** INFO server: the engine and its own release (server_name, valkey_version). */
    engine?: EngineInfo;
    dbsize?: number;
}

export interface StatusInput {
    topology: Topology;
    samples: NodeSample[];
    /** Node id -> highest CLUSTER COUNT-FAILURE-REPORTS any reachable master returns for it. */
    failureReports: Map<string, number>;
}

export interface NodeStatus {
    key: NodeKey;
    /** From the topology; undefined for a node the cluster knows but the topology does not. */
    name?: string;
    shard?: number;
    zone?: string;
    id?: string;
    reachable: boolean;
    error?: string;
    /** "valkey 8.0.2", "redis 6.2.14". */
    engine?: string;
    role: "master" | "replica" | "unknown";
    /** Key of the master, for a replica. */
    masterKey?: string;
    slots: number;
    slotRanges: string;
    keys?: number;
    usedMemoryBytes?: number;
    /** master_link_status, for a replica. */
    masterLinkStatus?: string;
    /** master_repl_offset (master) or slave_repl_offset (replica). */
    replOffset?: number;
    /** Bytes the replica is behind its master (master_repl_offset − slave_repl_offset). */
    lagBytes?: number;
    /** connected_slaves, for a master. */
    connectedReplicas?: number;
    failureReports?: number;
    /** Keys of reachable nodes that flag this node fail? or fail. */
    flaggedBy: string[];
    /** Known by the rest of the cluster. */
    inCluster: boolean;
    inTopology: boolean;
}

export interface ShardStatus {
    /** "shard 0", or "not in cluster"/"unknown" for stragglers. */
    label: string;
    shard?: number;
    masterKey?: string;
    slots: number;
    slotRanges: string;
    nodes: NodeStatus[];
}

export interface StatusReport {
    healthy: boolean;
    clusterName: string;
    problems: string[];
    warnings: string[];
    shards: ShardStatus[];
    cluster: {
        /** Distinct engines and releases the reachable nodes run ("valkey 8.0.2"). */
        engines: string[];
        nodes: number;
        reachable: number;
        stateOk: number;
        slotsAssigned: number;
        slotMapsAgree: boolean;
        openSlots: { slot: number; node: NodeKey; state: "migrating" | "importing"; peer: string }[];
        failing: { node: string; flaggedBy: string[]; flag: string }[];
        shardsWithoutReplica: string[];
        replicaInMasterZone: string[];
        notInCluster: string[];
        notInTopology: string[];
        /** Replicas whose master the reachable nodes do not agree on, with who says what. */
        replicaMasterDisagreements: { replica: string; views: { master: string; seenBy: string[] }[] }[];
    };
}

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
    const keys = topology.nodes.map(keyOf);
    const samples = await Promise.all(keys.map(async (key): Promise<NodeSample> => {
        const empty: NodeSample = { key, reachable: false, nodes: [], clusterInfo: {}, replication: {}, memory: {}, info: {}, hasErrorstats: false, at: Date.now() };
        try {
            const c = await pool.get(key);
            // One INFO per section list: Redis 6.2 takes a single section argument (7.0 takes several).
            const res = (await c.pipeline()
                .call("CLUSTER", "NODES").call("CLUSTER", "INFO").call("INFO").call("INFO", "errorstats").call("DBSIZE")
                .exec())!;
            const vals = res.map(([err, v]) => {
                if (err) throw err;
                return v as string;
            });
            const nodes = parseClusterNodes(vals[0]);
            const info = { ...parseInfo(vals[2]), ...parseInfo(vals[3]) };
            return {
                key, reachable: true, nodes, myself: nodes.find((n) => n.myself), clusterInfo: parseInfo(vals[1]),
                replication: info, memory: info, info, hasErrorstats: /^# Errorstats/m.test(vals[3]),
                version: info.redis_version, engine: engineOf(info), dbsize: Number(vals[4]), at: Date.now(),
            };
        } catch (e) {
            if (e instanceof RefusedError) throw e; // the wrong node answered (pool.ts identity check)
            pool.drop(key);
            return { ...empty, error: (e as Error).message };
        }
    }));
    // A replica's lag in bytes needs its master's offset: from the master's sample, or read for it.
    const byKey = new Map(samples.map((s) => [s.key, s]));
    await Promise.all(samples.map(async (s) => {
        const info = s.info ?? {};
        if (!s.reachable || info.role !== "slave" || !info.master_host) return;
        const masterKey = nodeKey(info.master_host, Number(info.master_port));
        const m = byKey.get(masterKey);
        if (m?.reachable) {
            s.masterReplication = m.info;
            return;
        }
        if (!opts.followMasters) return;
        try {
            s.masterReplication = parseInfo(String(await pool.call(masterKey, "INFO", "replication")));
        } catch {
            pool.drop(masterKey); // unreachable master: the replica's own link status says so
        }
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

const num = (v: string | undefined) => (v === undefined || v === "" ? undefined : Number(v));

/** Judges the samples. Pure. */
export function evaluateStatus(input: StatusInput): StatusReport {
    const { topology, samples, failureReports } = input;
    const problems: string[] = [];
    const warnings: string[] = [];
    const topoByKey = new Map(topology.nodes.map((n) => [keyOf(n), n]));
    const sampleByKey = new Map(samples.map((s) => [s.key, s]));
    const reachable = samples.filter((s) => s.reachable && s.myself);
    const label = (key: string) => {
        const t = topoByKey.get(key);
        return t ? `${t.name} (${key})` : key;
    };

    // Every node anyone knows, with the freshest line: its own when reachable.
    const lineById = new Map<string, ClusterNodeInfo>();
    for (const s of reachable) for (const n of s.nodes) if (!n.flags.includes("handshake") && !lineById.has(n.id)) lineById.set(n.id, n);
    // A node that has met nobody yet does not know its own address (":7000"): use ours.
    for (const s of reachable) lineById.set(s.myself!.id, { ...s.myself!, key: s.key });
    const keyById = new Map<string, string>();
    for (const [id, n] of lineById) keyById.set(id, n.key && !n.key.startsWith(":") ? n.key : `${id.slice(0, 8)} (no address)`);
    const idByKey = new Map<string, string>();
    for (const s of reachable) idByKey.set(s.key, s.myself!.id);
    for (const [id] of lineById) if (!idByKey.has(keyById.get(id)!)) idByKey.set(keyById.get(id)!, id);

    // Who flags whom.
    const flaggedBy = new Map<string, { by: string[]; flag: string }>();
    for (const s of reachable) for (const n of s.nodes) {
        if (n.myself || !n.failing) continue;
        const f = flaggedBy.get(n.id) ?? { by: [], flag: "fail?" };
        f.by.push(s.key);
        if (n.flags.includes("fail")) f.flag = "fail";
        flaggedBy.set(n.id, f);
    }
    // Known by others = in the cluster.
    const knownByOthers = (id: string, key: string) => reachable.some((s) => s.key !== key && s.nodes.some((n) => n.id === id && !n.flags.includes("handshake")));

    const statuses = new Map<string, NodeStatus>();
    const allKeys = [...topology.nodes.map(keyOf)];
    for (const [id] of lineById) if (!allKeys.includes(keyById.get(id)!)) allKeys.push(keyById.get(id)!);
    for (const key of allKeys) {
        const t = topoByKey.get(key);
        const s = sampleByKey.get(key);
        const id = idByKey.get(key);
        const line = s?.myself ?? (id ? lineById.get(id) : undefined);
        const role = line?.role ?? "unknown";
        const st: NodeStatus = {
            key, name: t?.name, shard: t?.shard, zone: t?.az, id,
            reachable: !!s?.reachable, error: s?.error,
            engine: s?.engine ? engineLabel(s.engine) : undefined,
            role,
            masterKey: role === "replica" && line?.masterId ? keyById.get(line.masterId) ?? line.masterId.slice(0, 8) : undefined,
            slots: line ? countSlots(line.slots) : 0,
            slotRanges: line ? formatRanges(line.slots) : "",
            keys: s?.dbsize,
            usedMemoryBytes: num(s?.memory.used_memory),
            masterLinkStatus: role === "replica" ? s?.replication.master_link_status : undefined,
            replOffset: role === "replica" ? num(s?.replication.slave_repl_offset) : num(s?.replication.master_repl_offset),
            connectedReplicas: role === "master" ? num(s?.replication.connected_slaves) : undefined,
            failureReports: id ? failureReports.get(id) ?? 0 : undefined,
            flaggedBy: id ? flaggedBy.get(id)?.by ?? [] : [],
            inCluster: !!id && (knownByOthers(id, key) || (s?.myself ? s.nodes.length > 1 : false)),
            inTopology: !!t,
        };
        statuses.set(key, st);
    }
    // Lag: master's offset minus the replica's.
    for (const st of statuses.values()) {
        if (st.role !== "replica" || !st.masterKey) continue;
        const m = statuses.get(st.masterKey);
        if (m?.reachable && m.replOffset !== undefined && st.replOffset !== undefined && st.masterLinkStatus === "up") st.lagBytes = Math.max(0, m.replOffset - st.replOffset);
    }

    // Group: each master with its replicas; stragglers under their topology shard.
    const shards: ShardStatus[] = [];
    const grouped = new Set<string>();
    const masters = [...statuses.values()].filter((s) => s.role === "master" && s.inCluster && (s.slots > 0 || [...statuses.values()].some((r) => r.masterKey === s.key)));
    for (const m of masters) {
        const nodes = [m, ...[...statuses.values()].filter((r) => r.role === "replica" && r.masterKey === m.key)];
        nodes.forEach((n) => grouped.add(n.key));
        shards.push({ label: m.shard !== undefined ? `shard ${m.shard}` : "shard ?", shard: m.shard, masterKey: m.key, slots: m.slots, slotRanges: m.slotRanges, nodes });
    }
    for (const st of statuses.values()) {
        if (grouped.has(st.key)) continue;
        const home = shards.find((g) => g.shard !== undefined && g.shard === st.shard && st.shard !== undefined);
        if (home) home.nodes.push(st);
        else {
            const lbl = st.shard !== undefined ? `shard ${st.shard}` : "not in topology";
            const g = shards.find((x) => x.label === lbl && !x.masterKey);
            if (g) g.nodes.push(st);
            else shards.push({ label: lbl, shard: st.shard, slots: 0, slotRanges: "", nodes: [st] });
        }
        grouped.add(st.key);
    }
    shards.sort((a, b) => (a.shard ?? Number.MAX_SAFE_INTEGER) - (b.shard ?? Number.MAX_SAFE_INTEGER) || (a.masterKey ? 0 : 1) - (b.masterKey ? 0 : 1));

    // Problems.
    const unreachable = topology.nodes.map(keyOf).filter((k) => !statuses.get(k)!.reachable);
    for (const k of unreachable) {
        const err = statuses.get(k)!.error ?? "no answer";
        problems.push(/WRONGPASS|NOAUTH|NOPERM/.test(err)
            ? `${label(k)} refuses our credentials (${err}): give the admin user with --user/--password or REDISCLI_AUTH`
            : `${label(k)} is unreachable: ${err}`);
    }
    const notOk = reachable.filter((s) => s.clusterInfo.cluster_state !== "ok");
    if (notOk.length) problems.push(`cluster_state is not ok on ${notOk.map((s) => label(s.key)).join(", ")}`);

    const maps = reachable.filter((s) => statuses.get(s.key)!.inCluster).map((s) => slotOwners(s.nodes));
    let slotsAssigned = 0;
    let agree = true;
    if (maps.length) {
        for (let slot = 0; slot < SLOT_COUNT; slot++) {
            if (maps.some((m) => m[slot] !== undefined)) slotsAssigned++;
            if (maps.some((m) => m[slot] !== maps[0][slot])) agree = false;
        }
    }
    if (slotsAssigned < SLOT_COUNT && maps.length) {
        const unassigned = toRanges([...Array(SLOT_COUNT).keys()].filter((s) => maps.every((m) => m[s] === undefined)));
        problems.push(`${SLOT_COUNT - slotsAssigned} slot(s) have no owner: ${formatRanges(unassigned.slice(0, 5))}${unassigned.length > 5 ? ", …" : ""}`);
    }
    if (!agree) problems.push("nodes disagree on the slot map (a change is still propagating, or a conflict)");

    const openSlots: StatusReport["cluster"]["openSlots"] = [];
    for (const s of reachable) {
        for (const [slot, peer] of s.myself!.migrating) openSlots.push({ slot, node: s.key, state: "migrating", peer: keyById.get(peer) ?? peer });
        for (const [slot, peer] of s.myself!.importing) openSlots.push({ slot, node: s.key, state: "importing", peer: keyById.get(peer) ?? peer });
    }
    openSlots.sort((a, b) => a.slot - b.slot);
    if (openSlots.length) problems.push(`${openSlots.length} open slot(s): ${openSlots.slice(0, 4).map((o) => `${o.slot} ${o.state} on ${label(o.node)}`).join(", ")}${openSlots.length > 4 ? ", …" : ""} (finish or roll back the migration)`);

    const failing: StatusReport["cluster"]["failing"] = [];
    for (const [id, f] of flaggedBy) {
        const k = keyById.get(id) ?? id;
        failing.push({ node: k, flaggedBy: f.by, flag: f.flag });
        problems.push(`${label(k)} is flagged ${f.flag} by ${f.by.length} node(s)`);
    }

    for (const st of statuses.values()) {
        if (st.role === "replica" && st.reachable && st.masterLinkStatus !== "up") {
            problems.push(`${label(st.key)}: link to its master ${st.masterKey ? label(st.masterKey) : "?"} is ${st.masterLinkStatus ?? "unknown"}`);
        }
    }

    // Which master each replica follows, as every reachable node sees it (its own line included:
    // the replica is the authority on whom it follows). A problem, like a slot-map disagreement:
    // after a role change that is not broadcast (CLUSTER REPLICATE, a replica migrating after a
    // failover) the other nodes learn it only from their next ping/pong with that replica, up to
    // about cluster-node-timeout / 2 later (docs/cluster-tool.md, `status`, has the timings). So a
    // disagreement is normal for seconds after such a change, not hundreds of ms; but the tool's
    // own commands wait until every node agrees before they return, so `status` sees one only
    // right after a change made outside the tool, or when some nodes keep a stale view (they do
    // not hear from the replica). Either way the cluster has not settled: clients reading the
    // replica list (CLUSTER SHARDS/SLOTS/NODES) from different nodes get different answers, and
    // the next failover or replica migration acts on it. Rerunning `status` tells the two apart.
    // Lines flagged failing/noaddr/handshake are skipped: a node that met a dead replica only
    // through gossip never learned its master, and that is not a disagreement.
    const replicaMasterDisagreements: StatusReport["cluster"]["replicaMasterDisagreements"] = [];
    const followed = new Map<string, Map<string, string[]>>();
    for (const s of reachable) for (const n of s.nodes) {
        if (n.failing || n.flags.includes("noaddr") || n.flags.includes("handshake")) continue;
        const says = n.role === "replica" && n.masterId ? n.masterId : n.role === "master" ? "-" : undefined;
        if (says === undefined) continue;
        const byMaster = followed.get(n.id) ?? new Map<string, string[]>();
        byMaster.set(says, [...(byMaster.get(says) ?? []), s.key]);
        followed.set(n.id, byMaster);
    }
    for (const [id, byMaster] of followed) {
        if (byMaster.size < 2 || ![...byMaster.keys()].some((m) => m !== "-")) continue;
        const k = keyById.get(id) ?? id;
        const views = [...byMaster].map(([m, by]) => ({ master: m === "-" ? "(none: it is a master)" : keyById.get(m) ?? m.slice(0, 8), seenBy: by.sort() }))
            .sort((a, b) => b.seenBy.length - a.seenBy.length || a.master.localeCompare(b.master));
        replicaMasterDisagreements.push({ replica: k, views });
        problems.push(`nodes disagree on which master ${label(k)} follows: ${views.map((v) => `${v.seenBy.map(label).join(", ")} ${v.seenBy.length === 1 ? "says" : "say"} ${v.master.startsWith("(") ? "it is a master" : `it follows ${label(v.master)}`}`).join("; ")} ` +
            "(a role change still propagating, normal for up to cluster-node-timeout / 2, or a stale view: rerun status)");
    }

    const shardsWithoutReplica: string[] = [];
    const replicaInMasterZone: string[] = [];
    for (const g of shards.filter((x) => x.masterKey)) {
        const m = statuses.get(g.masterKey!)!;
        const reps = g.nodes.filter((n) => n.role === "replica" && n.masterKey === m.key);
        const declared = m.shard !== undefined ? topology.nodes.filter((n) => n.shard === m.shard).length - 1 : 0;
        const working = reps.filter((r) => r.reachable && r.masterLinkStatus === "up" && r.flaggedBy.length === 0);
        if (m.slots > 0 && declared > 0 && working.length === 0) {
            shardsWithoutReplica.push(g.label);
            problems.push(`${g.label} (master ${label(m.key)}) has no working replica (${declared} declared): one more failure loses its slots`);
        } else if (m.slots > 0 && working.length < declared) {
            problems.push(`${g.label} (master ${label(m.key)}) has ${working.length} of ${declared} declared replicas working`);
        }
        for (const r of reps) {
            if (r.zone !== undefined && r.zone === m.zone) {
                replicaInMasterZone.push(`${label(r.key)} in ${r.zone}`);
                warnings.push(`${label(r.key)} is in its master's zone ${r.zone}: losing that zone loses ${g.label}`);
            }
        }
    }

    const notInCluster = topology.nodes.map(keyOf).filter((k) => statuses.get(k)!.reachable && !statuses.get(k)!.inCluster);
    for (const k of notInCluster) problems.push(`${label(k)} is in the topology but not in the cluster (run create, or scale)`);
    const notInTopology = [...statuses.values()].filter((s) => !s.inTopology).map((s) => s.key);
    for (const k of notInTopology) problems.push(`${k} is in the cluster but not in the topology${statuses.get(k)!.flaggedBy.length ? " and failing (remove it with forget)" : ""}`);

    for (const st of statuses.values()) {
        if (st.failureReports && !st.flaggedBy.length) warnings.push(`${label(st.key)} has ${st.failureReports} failure report(s) from masters`);
    }
    const engines = [...new Set([...statuses.values()].map((s) => s.engine).filter((e): e is string => e !== undefined))].sort();
    if (engines.length > 1) {
        const by = (e: string) => [...statuses.values()].filter((s) => s.engine === e).map((s) => label(s.key));
        warnings.push(`nodes run different engines or releases (fine during a rolling upgrade, not for long): ${engines.map((e) => `${e} on ${by(e).join(", ")}`).join("; ")}`);
    }

    return {
        healthy: problems.length === 0,
        clusterName: topology.clusterName,
        problems,
        warnings,
        shards,
        cluster: {
            engines,
            nodes: topology.nodes.length,
            reachable: topology.nodes.length - unreachable.length,
            stateOk: reachable.length - notOk.length,
            slotsAssigned,
            slotMapsAgree: agree,
            openSlots,
            failing,
            shardsWithoutReplica,
            replicaInMasterZone,
            notInCluster,
            notInTopology,
            replicaMasterDisagreements,
        },
    };
}
