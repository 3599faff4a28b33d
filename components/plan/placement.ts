/**
 * Pure node placement: which zone and which fixed private IP each node gets.
 *
 * Both are functions of (shard, replica, zones, vpcCidr) only, never of the
 * number of shards or replicas, so raising or lowering `shards` or
 * `replicasPerShard` adds or removes nodes without moving any existing one.
 * Changing `zones` or `vpcCidr` does move nodes: both are fixed at creation.
 *
 * No `@pulumi/*` import: data in, data out.
 */
import { nodeName } from "../topology";
import { intToIp, ipToInt, nodeCapacityPerSubnet, nodeRangeOf, planSubnet, splitCidr } from "./subnets";

/** Highest replicasPerShard the config accepts (config.ts reads it from here); the address stride reserves room for all of them. */
export const MAX_REPLICAS_PER_SHARD = 5;
/** Addresses reserved per shard slot in a zone's node range: one per possible node of the shard. */
export const ADDRESS_STRIDE = MAX_REPLICAS_PER_SHARD + 1;

export interface NodePlan {
    /** `${clusterName}-s<shard>-r<replica>` */
    name: string;
    shard: number;
    /** 0 is the shard's intended first master. */
    replica: number;
    /** Index into the region's sorted available zones. */
    zoneIndex: number;
    /** CIDR of the zone's private subnet. */
    subnetCidr: string;
    /** Fixed private IP of the node's network interface. */
    privateIp: string;
}

/** The shape placement depends on: the stack config's keys of the same names. */
export interface PlacementInput {
    clusterName: string;
    /** Masters, at least 1. */
    shards: number;
    /** 0..MAX_REPLICAS_PER_SHARD. */
    replicasPerShard: number;
    /** Zones used, 1..6. */
    zones: number;
    /** IPv4 CIDR of the VPC, e.g. "10.42.0.0/16". */
    vpcCidr: string;
}

/**
 * Zone of node (shard, replica): (shard + replica) mod zones. A shard's nodes
 * therefore occupy consecutive zones (distinct whenever zones ≥ 1 + replicas)
 * and the masters (replica 0) go round-robin over the zones.
 */
export function zoneOf(shard: number, replica: number, zones: number): number {
    return (shard + replica) % zones;
}

/**
 * Offset of the node's address inside its zone's node range. Within a zone,
 * given the replica, the shard is determined by k = floor(shard / zones), so
 * k * ADDRESS_STRIDE + replica is unique per zone and stays put when shards
 * or replicas are added.
 */
export function addressOffset(shard: number, replica: number, zones: number): number {
    return Math.floor(shard / zones) * ADDRESS_STRIDE + replica;
}

/** Largest shard count whose addresses fit, for a VPC CIDR, zone count and replica count. */
export function maxShardsThatFit(vpcCidr: string, zones: number, replicasPerShard: number): number {
    // Highest offset used is floor((shards-1)/zones) * STRIDE + replicas; it must be < capacity.
    return maxShardsThatFitCapacity(nodeCapacityPerSubnet(vpcCidr), zones, replicasPerShard);
}

/**
 * Problems with a shape whose fixed addresses don't fit the subnets, each
 * naming the keys involved (as `${ns}:key`) and what would fit. Empty when it fits. Expects
 * shards/replicas/zones/vpcCidr already individually valid.
 */
export function placementProblems(cfg: Omit<PlacementInput, "clusterName">, ns = "redis-cluster"): string[] {
    const { shards, replicasPerShard: replicas, zones, vpcCidr } = cfg;
    const fit = maxShardsThatFit(vpcCidr, zones, replicas);
    if (shards <= fit) return [];
    const { base, prefix } = splitCidr(vpcCidr);
    let larger: string | undefined;
    for (let p = prefix - 1; p >= 16; p--) {
        const size = 2 ** (32 - p);
        const candidate = `${intToIp(base - (base % size))}/${p}`;
        if (maxShardsThatFit(candidate, zones, replicas) >= shards) { larger = candidate; break; }
    }
    const fix = [
        fit >= 3 ? `at most ${fit} shards fit with ${replicas} replica${replicas === 1 ? "" : "s"} per shard` : `not even 3 shards fit`,
        larger ? `or use a vpcCidr of /${larger.split("/")[1]} or larger (e.g. ${JSON.stringify(larger)})` : undefined,
        zones < 6 ? `or more ${ns}:zones` : undefined,
    ].filter(Boolean).join(", ");
    return [
        `${ns}:shards × (1 + ${ns}:replicasPerShard) = ${shards} × ${1 + replicas} nodes do not fit the fixed node addresses of ` +
        `${ns}:vpcCidr ${JSON.stringify(vpcCidr)} over ${ns}:zones ${zones} ` +
        `(each zone's subnet holds ${nodeCapacityPerSubnet(vpcCidr)} node addresses, ${ADDRESS_STRIDE} reserved per shard): ${fix}`,
    ];
}

/** A subnet of an existing VPC, as AWS describes it. */
export interface ExistingSubnet {
    id: string;
    cidr: string;
    availabilityZone: string;
}

/**
 * Problems with a shape whose fixed addresses don't fit the node ranges (upper halves) of an
 * existing VPC's subnets, naming each subnet that is too small and what would fit.
 */
export function existingSubnetPlacementProblems(
    cfg: Pick<PlacementInput, "shards" | "replicasPerShard">, subnets: ExistingSubnet[], ns = "redis-cluster",
): string[] {
    const problems: string[] = [];
    subnets.forEach((s, zoneIndex) => {
        const range = nodeRangeOf(s.cidr);
        let highest = -1;
        let count = 0;
        for (let shard = 0; shard < cfg.shards; shard++) {
            for (let replica = 0; replica <= cfg.replicasPerShard; replica++) {
                if (zoneOf(shard, replica, subnets.length) !== zoneIndex) continue;
                highest = Math.max(highest, addressOffset(shard, replica, subnets.length));
                count++;
            }
        }
        if (highest >= range.nodeCapacity) {
            problems.push(`${ns}:subnetIds: subnet ${s.id} (${s.cidr}, ${s.availabilityZone}) is too small for ${count} nodes: their fixed addresses are taken from its upper half ` +
                `${range.nodeRangeCidr} (${ADDRESS_STRIDE} per shard, ${range.nodeCapacity} usable), which needs room for ${highest + 1}; ` +
                `at most ${maxShardsThatFitCapacity(range.nodeCapacity, subnets.length, cfg.replicasPerShard)} shards fit: use a larger subnet (a /${Math.max(16, 32 - Math.ceil(Math.log2(2 * (highest + 3))))} or larger) or fewer ${ns}:shards`);
        }
    });
    return problems;
}

function maxShardsThatFitCapacity(capacity: number, zones: number, replicasPerShard: number): number {
    const kMax = Math.floor((capacity - 1 - replicasPerShard) / ADDRESS_STRIDE);
    return kMax < 0 ? 0 : (kMax + 1) * zones;
}

/**
 * Every node of the shape, shard by shard, replica 0 first. Throws when the addresses don't fit.
 * With `existingSubnets` (zone i = existingSubnets[i]) the addresses come from those subnets'
 * node ranges instead of the stack's own subnets cut from `vpcCidr`.
 */
export function planNodes(cfg: PlacementInput, existingSubnets?: ExistingSubnet[]): NodePlan[] {
    const problems = existingSubnets ? existingSubnetPlacementProblems(cfg, existingSubnets) : placementProblems(cfg);
    if (problems.length > 0) throw new Error(problems[0]);
    const zones = existingSubnets ? existingSubnets.length : cfg.zones;
    const nodes: NodePlan[] = [];
    for (let shard = 0; shard < cfg.shards; shard++) {
        for (let replica = 0; replica <= cfg.replicasPerShard; replica++) {
            const zoneIndex = zoneOf(shard, replica, zones);
            const subnet = existingSubnets ? nodeRangeOf(existingSubnets[zoneIndex].cidr) : planSubnet(cfg.vpcCidr, zoneIndex);
            const ip = ipToInt(subnet.firstNodeAddress)! + addressOffset(shard, replica, zones);
            nodes.push({
                name: nodeName(cfg.clusterName, shard, replica),
                shard,
                replica,
                zoneIndex,
                subnetCidr: subnet.cidr,
                privateIp: intToIp(ip),
            });
        }
    }
    return nodes;
}
