/**
 * Pure planning for `reconfigure`: from the desired cluster-wide settings (stack
 * output `nodeSettings`, local mode's settings.json, or a stack config) and what
 * each live node reports, which CONFIG SET each node needs, in which order, and
 * what must stop the run before anything changes:
 *
 *  - settings chosen at creation (port, TLS, engine) that differ from the live
 *    node: not an in-place change (a new cluster, or node replacement), so the
 *    run is refused and nothing is half-applied;
 *  - risks: a maxmemory below what a node already uses (evictions or refused
 *    writes at once), a min-replicas-to-write above the replicas a master has
 *    connected (it would refuse every write). Refused unless --force.
 *
 * Order: replicas first (a setting that misbehaves shows on nodes that take no
 * writes), then masters; each group by shard, then name.
 *
 * No `ioredis` or `@pulumi/*` import: data in, data out.
 */
import type { Engine } from "../../components/config";
import { DesiredNodeSettings, DIRECTIVE_SETTINGS, maxmemoryBytesFor } from "../../components/bootstrap/nodeSettings";

/** The directives reconfigure reads and sets, in the order it sets them. */
export const RUNTIME_DIRECTIVES: readonly string[] = ["maxmemory", ...DIRECTIVE_SETTINGS.map((d) => d.directive)];

/** What one live node reports (CONFIG GET, INFO server/memory/replication). */
export interface LiveNode {
    /** `host:port` as in the topology. */
    key: string;
    name?: string;
    shard?: number;
    role: "master" | "replica";
    /** CONFIG GET values of RUNTIME_DIRECTIVES. */
    config: Record<string, string>;
    /** INFO memory total_system_memory: the MemTotal the boot script uses. */
    totalSystemMemory: number;
    /** INFO memory used_memory. */
    usedMemory: number;
    /** INFO replication connected_slaves (masters). */
    connectedReplicas?: number;
    /** "valkey" when INFO server names it (server_name / valkey_version), else "redis". */
    engine: "redis" | "valkey";
    /** INFO server redis_version (Valkey: valkey_version). */
    version: string;
    /** tls-port is set (port 0 and tls-port on the nodes this project renders). */
    tls: boolean;
    /** The client port the node serves: tls-port with TLS, port otherwise. */
    port: number;
}

export interface SettingChange {
    directive: string;
    from: string;
    to: string;
}

export interface NodeStep {
    node: LiveNode;
    /** Every runtime directive's desired value on this node. */
    desired: Record<string, string>;
    /** Only what differs; empty: the node is skipped. */
    changes: SettingChange[];
}

export interface ReconfigurePlan {
    /** Replicas first, then masters. */
    steps: NodeStep[];
    /** Port/TLS/engine differences: the run is refused, nothing changes. */
    fixedMismatches: string[];
    /** Changes that would hurt at once: refused unless forced. */
    risks: string[];
}

export const label = (n: Pick<LiveNode, "key" | "name">) => (n.name ? `${n.name} (${n.key})` : n.key);

/** The engine family a config's engine runs as ("redis6" is Redis 6.2; local mode may run any Redis). */
export function engineFamily(e: Engine): "redis" | "valkey" {
    return e === "valkey" ? "valkey" : "redis";
}

/**
 * maxmemory for a node: `maxmemoryPercent` of its memory, which is the node's
 * own total_system_memory (MemTotal, as the boot script computes it) unless
 * the desired document fixes a per-node memory (local mode).
 */
export function desiredMaxmemory(desired: DesiredNodeSettings, node: Pick<LiveNode, "totalSystemMemory">): number {
    return maxmemoryBytesFor(desired.nodeMemoryBytes ?? node.totalSystemMemory, desired.settings.maxmemoryPercent);
}

/** Every runtime directive's desired value on a node, as CONFIG GET prints it. */
export function desiredConfig(desired: DesiredNodeSettings, node: Pick<LiveNode, "totalSystemMemory">): Record<string, string> {
    const out: Record<string, string> = { maxmemory: String(desiredMaxmemory(desired, node)) };
    for (const d of DIRECTIVE_SETTINGS) out[d.directive] = String(desired.settings[d.key]);
    return out;
}

/** What differs between the desired and the live values, in RUNTIME_DIRECTIVES order. */
export function diffNode(desired: Record<string, string>, live: Record<string, string>): SettingChange[] {
    return RUNTIME_DIRECTIVES.filter((d) => live[d] !== desired[d]).map((d) => ({ directive: d, from: live[d] ?? "(unset)", to: desired[d] }));
}

/** Port, TLS and engine: chosen when the cluster is created, compared, never set. */
export function fixedMismatches(desired: DesiredNodeSettings, node: LiveNode): string[] {
    const out: string[] = [];
    const f = desired.fixed;
    if (f.tls !== undefined && f.tls !== node.tls) out.push(`${label(node)}: tls is ${node.tls ? "on" : "off"}, the settings want it ${f.tls ? "on" : "off"}`);
    if (f.port !== undefined && f.port !== node.port) out.push(`${label(node)}: serves port ${node.port}, the settings want ${f.port}`);
    if (f.engine !== undefined && engineFamily(f.engine) !== node.engine) out.push(`${label(node)}: runs ${node.engine} ${node.version}, the settings want ${f.engine}`);
    return out;
}

/** Changes that would evict keys or refuse writes the moment they are applied. */
export function risksOf(step: NodeStep): string[] {
    const out: string[] = [];
    const n = step.node;
    const maxmemory = Number(step.desired.maxmemory);
    const lowersMemory = step.changes.some((c) => c.directive === "maxmemory");
    if (lowersMemory && maxmemory > 0 && maxmemory < n.usedMemory) {
        const policy = step.desired["maxmemory-policy"];
        out.push(`${label(n)}: maxmemory ${maxmemory} is below the ${n.usedMemory} bytes it uses: it would at once ${policy === "noeviction" ? "refuse writes (noeviction)" : `evict keys (${policy})`}`);
    }
    const minReplicas = Number(step.desired["min-replicas-to-write"]);
    if (n.role === "master" && step.changes.some((c) => c.directive === "min-replicas-to-write") && minReplicas > (n.connectedReplicas ?? 0)) {
        out.push(`${label(n)}: min-replicas-to-write ${minReplicas}, but the master has ${n.connectedReplicas ?? 0} connected replica(s): it would refuse every write`);
    }
    return out;
}

/** Replicas before masters; within each, by shard then name (nodes without a shard last). */
export function orderForReconfigure<T extends Pick<LiveNode, "role" | "shard" | "name" | "key">>(nodes: T[]): T[] {
    const rank = (n: T) => (n.role === "replica" ? 0 : 1);
    return [...nodes].sort((a, b) =>
        rank(a) - rank(b) ||
        (a.shard ?? Number.MAX_SAFE_INTEGER) - (b.shard ?? Number.MAX_SAFE_INTEGER) ||
        (a.name ?? a.key).localeCompare(b.name ?? b.key));
}

export function planReconfigure(desired: DesiredNodeSettings, nodes: LiveNode[]): ReconfigurePlan {
    const steps = orderForReconfigure(nodes).map((node): NodeStep => {
        const want = desiredConfig(desired, node);
        return { node, desired: want, changes: diffNode(want, node.config) };
    });
    return {
        steps,
        fixedMismatches: nodes.flatMap((n) => fixedMismatches(desired, n)),
        risks: steps.flatMap(risksOf),
    };
}

/** "maxmemory 268435456 → 187904819, maxmemory-policy noeviction → allkeys-lru" */
export function describeChanges(changes: SettingChange[]): string {
    return changes.map((c) => `${c.directive} ${c.from} → ${c.to}`).join(", ");
}
