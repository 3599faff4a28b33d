/**
 * The shape the stack exports as `topology` and the cluster tool reads
 * (`--topology FILE`, `--stack NAME`, local mode's `.local/<stack>/topology.json`).
 * No `@pulumi/*` import: shared by the Pulumi program and the scripts.
 */

/** One Redis node as declared by the stack. */
export interface TopologyNode {
    /** Stable node name, `${clusterName}-s<shard>-r<replica>`; r0 is the shard's intended first master. */
    name: string;
    /** Shard (0-based) the node belongs to. */
    shard: number;
    /** Availability zone (a label such as `local-a` in local mode). */
    az: string;
    /** Address the node announces: its stable private IP (127.0.0.x/127.0.0.1 locally). */
    host: string;
    /** Client port; the bus is port + 10000. */
    port: number;
    /** EC2 instance id, when on AWS. */
    instanceId?: string;
    /** Relative slot weight of this node's shard when it is a master (scale/rebalance). @default 1 */
    weight?: number;
}

export interface Topology {
    clusterName: string;
    port: number;
    tls: boolean;
    nodes: TopologyNode[];
}

/** `${clusterName}-s<shard>-r<replica>`: scaling adds names, existing ones never shift. */
export function nodeName(clusterName: string, shard: number, replica: number): string {
    return `${clusterName}-s${shard}-r${replica}`;
}

/** Parses `<cluster>-s<shard>-r<replica>`; undefined when the name is not of that form. */
export function parseNodeName(name: string): { shard: number; replica: number } | undefined {
    const m = /-s(\d+)-r(\d+)$/.exec(name);
    return m ? { shard: Number(m[1]), replica: Number(m[2]) } : undefined;
}

/** Validates an untrusted topology document; throws with every problem listed. */
export function validateTopology(doc: unknown, source: string): Topology {
    const problems: string[] = [];
    const t = doc as Partial<Topology> | null;
    if (!t || typeof t !== "object") throw new Error(`${source}: topology must be a JSON object { clusterName, port, tls, nodes: [...] }`);
    if (typeof t.clusterName !== "string" || t.clusterName === "") problems.push(`clusterName must be a non-empty string (got ${JSON.stringify(t.clusterName)})`);
    if (!Number.isInteger(t.port)) problems.push(`port must be an integer (got ${JSON.stringify(t.port)})`);
    if (typeof t.tls !== "boolean") problems.push(`tls must be true or false (got ${JSON.stringify(t.tls)})`);
    if (!Array.isArray(t.nodes) || t.nodes.length === 0) problems.push(`nodes must be a non-empty list`);
    const seen = new Set<string>();
    (Array.isArray(t.nodes) ? t.nodes : []).forEach((n: Partial<TopologyNode>, i: number) => {
        const at = `nodes[${i}]`;
        if (typeof n?.name !== "string" || n.name === "") problems.push(`${at}.name must be a non-empty string`);
        if (!Number.isInteger(n?.shard) || (n.shard as number) < 0) problems.push(`${at}.shard must be an integer ≥ 0 (got ${JSON.stringify(n?.shard)})`);
        if (typeof n?.az !== "string" || n.az === "") problems.push(`${at}.az must be a non-empty string`);
        if (typeof n?.host !== "string" || n.host === "") problems.push(`${at}.host must be a non-empty string`);
        if (!Number.isInteger(n?.port) || (n.port as number) < 1 || (n.port as number) > 55535) problems.push(`${at}.port must be an integer from 1 to 55535 (got ${JSON.stringify(n?.port)})`);
        if (n?.weight !== undefined && !(typeof n.weight === "number" && n.weight >= 0)) problems.push(`${at}.weight must be a number ≥ 0 (got ${JSON.stringify(n.weight)})`);
        const key = `${n?.host}:${n?.port}`;
        if (seen.has(key)) problems.push(`${at} repeats address ${key}`);
        seen.add(key);
    });
    if (problems.length) throw new Error(`Invalid topology in ${source}:\n${problems.map((p) => ` - ${p}`).join("\n")}`);
    return t as Topology;
}
