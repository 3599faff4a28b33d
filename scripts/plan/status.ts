/**
 * The status judge: from what every node said (StatusInput, read by collectStatus in
 * scripts/redis/healthReport.ts) to shards, cluster-wide facts, problems (unhealthy:
 * `status` exits 1) and warnings. Pure. The facts come first (every node's status,
 * grouped into shards); then each named check in STATUS_CHECKS adds its problems and
 * warnings, in the order listed. Live nodes are matched to topology entries by `host:port`.
 */
import { Topology } from "../../components/topology";
import { ClusterNodeInfo, countSlots, formatRanges, SLOT_COUNT, toRanges } from "./clusterNodes";
import { ClusterView, NodeSample } from "./clusterView";
import { engineLabel } from "./engine";
import { isAuthError, NodeKey, nodeKey } from "./node";

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
        /** Nodes running the join's short cluster-node-timeout (JOIN_NODE_TIMEOUT_MS): a killed create/scale left them. */
        joinTimeoutLeft: string[];
    };
}

/**
 * The cluster-node-timeout a joining master runs for a moment (scripts/redis/joinTimeout.ts):
 * below the stack's minimum of 1000 ms, so never a configured value.
 */
export const JOIN_NODE_TIMEOUT_MS = 500;

const num = (v: string | undefined) => (v === undefined || v === "" ? undefined : Number(v));

/** What the checks read: the input, every node's status, the shards. */
export interface StatusFacts {
    topology: Topology;
    view: ClusterView;
    /** Samples of reachable nodes that answered CLUSTER NODES. */
    reachable: NodeSample[];
    /** By key: every topology node and every node the cluster knows. */
    statuses: Map<NodeKey, NodeStatus>;
    shards: ShardStatus[];
    /** Node id -> key ("<id> (no address)" for a node that does not know its address). */
    keyById: Map<string, string>;
    /** Node id -> the reachable nodes flagging it, and the strongest flag. */
    flaggedBy: Map<string, { by: string[]; flag: string }>;
    /** "name (host:port)" for a topology node, else host:port. */
    label: (key: string) => string;
}

type ClusterFacts = StatusReport["cluster"];

/** What one check found: problems make the cluster unhealthy, warnings do not; `cluster` adds to the report's facts. */
export interface CheckResult {
    problems?: string[];
    warnings?: string[];
    cluster?: Partial<ClusterFacts>;
}

/** Every node's status and the shards, from the samples. */
export function statusFacts(input: StatusInput): StatusFacts {
    const { topology, samples, failureReports } = input;
    const topoByKey = new Map(topology.nodes.map((n) => [nodeKey(n), n]));
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
    const allKeys = [...topology.nodes.map(nodeKey)];
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
            usedMemoryBytes: num(s?.info.used_memory),
            masterLinkStatus: role === "replica" ? s?.info.master_link_status : undefined,
            replOffset: role === "replica" ? num(s?.info.slave_repl_offset) : num(s?.info.master_repl_offset),
            connectedReplicas: role === "master" ? num(s?.info.connected_slaves) : undefined,
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

    return { topology, view: ClusterView.of(samples), reachable, statuses, shards, keyById, flaggedBy, label };
}

/** Topology nodes that do not answer, or refuse our credentials. */
export function checkReachable({ topology, statuses, label }: StatusFacts): CheckResult {
    const unreachable = topology.nodes.map(nodeKey).filter((k) => !statuses.get(k)!.reachable);
    const problems = unreachable.map((k) => {
        const err = statuses.get(k)!.error ?? "no answer";
        return isAuthError(err)
            ? `${label(k)} refuses our credentials (${err}): give the admin user with --user/--password or REDISCLI_AUTH`
            : `${label(k)} is unreachable: ${err}`;
    });
    return { problems, cluster: { nodes: topology.nodes.length, reachable: topology.nodes.length - unreachable.length } };
}

/** Nodes that do not report cluster_state:ok. */
export function checkClusterState({ reachable, label }: StatusFacts): CheckResult {
    const notOk = reachable.filter((s) => s.clusterInfo.cluster_state !== "ok");
    return {
        problems: notOk.length ? [`cluster_state is not ok on ${notOk.map((s) => label(s.key)).join(", ")}`] : [],
        cluster: { stateOk: reachable.length - notOk.length },
    };
}

/** Every slot has an owner, and the members agree on who. */
export function checkSlots({ view, reachable, statuses }: StatusFacts): CheckResult {
    const members = reachable.filter((s) => statuses.get(s.key)!.inCluster);
    const unassigned = view.unassignedSlots(members);
    const slotsAssigned = members.length ? SLOT_COUNT - unassigned.length : 0;
    const agree = view.disagreeingSlots(members).length === 0;
    const problems: string[] = [];
    if (unassigned.length) {
        const ranges = toRanges(unassigned);
        problems.push(`${unassigned.length} slot(s) have no owner: ${formatRanges(ranges.slice(0, 5))}${ranges.length > 5 ? ", …" : ""}`);
    }
    if (!agree) problems.push("nodes disagree on the slot map (a change is still propagating, or a conflict)");
    return { problems, cluster: { slotsAssigned, slotMapsAgree: agree } };
}

/** Slots left MIGRATING or IMPORTING. */
export function checkOpenSlots({ view, keyById, label }: StatusFacts): CheckResult {
    const openSlots = view.openSlots().map((o) => ({ slot: o.slot, node: o.node, state: o.state, peer: keyById.get(o.peerId) ?? o.peerId }));
    return {
        problems: openSlots.length ? [`${openSlots.length} open slot(s): ${openSlots.slice(0, 4).map((o) => `${o.slot} ${o.state} on ${label(o.node)}`).join(", ")}${openSlots.length > 4 ? ", …" : ""} (finish or roll back the migration)`] : [],
        cluster: { openSlots },
    };
}

/** Nodes some reachable node flags fail? or fail. */
export function checkFailing({ flaggedBy, keyById, label }: StatusFacts): CheckResult {
    const failing: ClusterFacts["failing"] = [];
    const problems: string[] = [];
    for (const [id, f] of flaggedBy) {
        const k = keyById.get(id) ?? id;
        failing.push({ node: k, flaggedBy: f.by, flag: f.flag });
        problems.push(`${label(k)} is flagged ${f.flag} by ${f.by.length} node(s)`);
    }
    return { problems, cluster: { failing } };
}

/** Replicas whose link to their master is not up. */
export function checkReplicaLinks({ statuses, label }: StatusFacts): CheckResult {
    return {
        problems: [...statuses.values()].filter((st) => st.role === "replica" && st.reachable && st.masterLinkStatus !== "up")
            .map((st) => `${label(st.key)}: link to its master ${st.masterKey ? label(st.masterKey) : "?"} is ${st.masterLinkStatus ?? "unknown"}`),
    };
}

/** Which master each replica follows, as every reachable node sees it. */
export function checkReplicaMasterAgreement({ reachable, keyById, label }: StatusFacts): CheckResult {
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
    const problems: string[] = [];
    const replicaMasterDisagreements: ClusterFacts["replicaMasterDisagreements"] = [];
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

    return { problems, cluster: { replicaMasterDisagreements } };
}

/** Shards with fewer working replicas than declared, and replicas in their master's zone. */
export function checkReplicas({ topology, statuses, shards, label }: StatusFacts): CheckResult {
    const problems: string[] = [];
    const warnings: string[] = [];
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

    return { problems, warnings, cluster: { shardsWithoutReplica, replicaInMasterZone } };
}

/** Topology nodes outside the cluster, and cluster nodes outside the topology. */
export function checkMembership({ topology, statuses, label }: StatusFacts): CheckResult {
    const notInCluster = topology.nodes.map(nodeKey).filter((k) => statuses.get(k)!.reachable && !statuses.get(k)!.inCluster);
    const notInTopology = [...statuses.values()].filter((s) => !s.inTopology).map((s) => s.key);
    return {
        problems: [
            ...notInCluster.map((k) => `${label(k)} is in the topology but not in the cluster (run create, or scale)`),
            ...notInTopology.map((k) => `${k} is in the cluster but not in the topology${statuses.get(k)!.flaggedBy.length ? " and failing (remove it with forget)" : ""}`),
        ],
        cluster: { notInCluster, notInTopology },
    };
}

/** Failure reports from masters about a node nobody flags yet. */
export function checkFailureReports({ statuses, label }: StatusFacts): CheckResult {
    return { warnings: [...statuses.values()].filter((st) => st.failureReports && !st.flaggedBy.length).map((st) => `${label(st.key)} has ${st.failureReports} failure report(s) from masters`) };
}

/** Nodes running different engines or releases. */
export function checkEngines({ statuses, label }: StatusFacts): CheckResult {
    const warnings: string[] = [];
    const engines = [...new Set([...statuses.values()].map((s) => s.engine).filter((e): e is string => e !== undefined))].sort();
    if (engines.length > 1) {
        const by = (e: string) => [...statuses.values()].filter((s) => s.engine === e).map((s) => label(s.key));
        warnings.push(`nodes run different engines or releases (fine during a rolling upgrade, not for long): ${engines.map((e) => `${e} on ${by(e).join(", ")}`).join("; ")}`);
    }

    return { warnings, cluster: { engines } };
}

/**
 * Nodes left at the join's 500 ms node timeout by a create or scale killed in its join window.
 * A problem: such a node flags a peer PFAIL after 500 ms without a PONG, and a master's flag is a
 * vote towards FAIL, so a stall of a second can start a failover. Read with CONFIG GET; a node
 * that refuses CONFIG (a user without @admin, a renamed command) is not judged.
 */
export function checkJoinTimeoutLeft({ reachable, label }: StatusFacts): CheckResult {
    const left = reachable.filter((s) => s.config?.["cluster-node-timeout"] === String(JOIN_NODE_TIMEOUT_MS)).map((s) => s.key);
    return {
        problems: left.map((k) => `${label(k)} runs cluster-node-timeout ${JOIN_NODE_TIMEOUT_MS} ms, the value a join sets for a moment (a create or scale was stopped in its join window): it can start failovers on a one-second stall. Rerun that command, or \`reconfigure\`, to restore the configured value`),
        cluster: { joinTimeoutLeft: left },
    };
}

/** The checks `status` runs, in the order their problems and warnings are listed. */
export const STATUS_CHECKS: { name: string; check: (f: StatusFacts) => CheckResult }[] = [
    { name: "reachable", check: checkReachable },
    { name: "cluster-state", check: checkClusterState },
    { name: "slots", check: checkSlots },
    { name: "open-slots", check: checkOpenSlots },
    { name: "failing", check: checkFailing },
    { name: "replica-links", check: checkReplicaLinks },
    { name: "replica-master-agreement", check: checkReplicaMasterAgreement },
    { name: "replicas", check: checkReplicas },
    { name: "membership", check: checkMembership },
    { name: "failure-reports", check: checkFailureReports },
    { name: "engines", check: checkEngines },
    { name: "join-timeout-left", check: checkJoinTimeoutLeft },
];

/** Judges the samples: every check of STATUS_CHECKS over the facts. */
export function evaluateStatus(input: StatusInput): StatusReport {
    const facts = statusFacts(input);
    const problems: string[] = [];
    const warnings: string[] = [];
    const cluster: Partial<ClusterFacts> = {};
    for (const { check } of STATUS_CHECKS) {
        const r = check(facts);
        problems.push(...(r.problems ?? []));
        warnings.push(...(r.warnings ?? []));
        Object.assign(cluster, r.cluster);
    }
    return {
        healthy: problems.length === 0,
        clusterName: input.topology.clusterName,
        problems,
        warnings,
        shards: facts.shards,
        cluster: cluster as ClusterFacts,
    };
}
