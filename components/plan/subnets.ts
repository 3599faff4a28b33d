/**
 * Pure subnet planning: VPC CIDR + zone count -> one private subnet per zone.
 *
 * The VPC is always cut into SUBNET_SLOTS equal slices and zone i takes slice i,
 * whatever the zone count, so a subnet's CIDR depends only on the VPC CIDR and
 * its zone index. Each subnet's upper half is the node range: the stack reserves
 * it with an explicit subnet CIDR reservation, so AWS never hands one of those
 * addresses to the load balancer or an interface endpoint (which are placed in
 * the lower half) and a node added later always finds its fixed address free.
 *
 * No `@pulumi/*` import: data in, data out.
 */

/** Slices the VPC is cut into; one per zone, at most this many zones. */
export const SUBNET_SLOTS = 8;
/** Bits needed to address SUBNET_SLOTS slices. */
const SLOT_BITS = 3;

export interface SubnetPlan {
    /** Index of the zone (into the region's sorted available zones). */
    zoneIndex: number;
    /** The subnet, e.g. "10.42.0.0/19". */
    cidr: string;
    /** Upper half of the subnet, reserved for the nodes' fixed addresses, e.g. "10.42.16.0/20". */
    nodeRangeCidr: string;
    /** First node address: the node range's second address (a ".0" host address confuses some tools). */
    firstNodeAddress: string;
    /** Addresses usable by nodes: the node range without its first address and the subnet's last (AWS-reserved) one. */
    nodeCapacity: number;
}

/** "10.0.0.1" -> 167772161; undefined when malformed. */
export function ipToInt(ip: string): number | undefined {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip.trim());
    if (!m) return undefined;
    const o = m.slice(1, 5).map(Number);
    if (o.some((x) => x > 255)) return undefined;
    return ((o[0] << 24) >>> 0) + (o[1] << 16) + (o[2] << 8) + o[3];
}

/** 167772161 -> "10.0.0.1". */
export function intToIp(n: number): string {
    return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** Splits "a.b.c.d/p" into its network address (as integer) and prefix; throws on malformed input or host bits set. */
export function splitCidr(cidr: string): { base: number; prefix: number } {
    const [ip, p] = cidr.trim().split("/");
    const base = ipToInt(ip ?? "");
    const prefix = Number(p);
    if (base === undefined || p === undefined || !/^\d{1,2}$/.test(p) || prefix > 32) {
        throw new Error(`Invalid CIDR ${JSON.stringify(cidr)}: expected an IPv4 CIDR such as 10.42.0.0/16`);
    }
    const size = 2 ** (32 - prefix);
    if (base % size !== 0) throw new Error(`Invalid CIDR ${JSON.stringify(cidr)}: host bits are set (the network is ${intToIp(base - (base % size))}/${prefix})`);
    return { base, prefix };
}

/** Whether `ip` lies inside `cidr`. */
export function cidrContains(cidr: string, ip: string): boolean {
    const { base, prefix } = splitCidr(cidr);
    const n = ipToInt(ip);
    return n !== undefined && n >= base && n < base + 2 ** (32 - prefix);
}

/** Usable node addresses per subnet for a VPC CIDR: half a slice, minus its first address and the subnet's broadcast address. */
export function nodeCapacityPerSubnet(vpcCidr: string): number {
    const { prefix } = splitCidr(vpcCidr);
    return 2 ** (32 - prefix - SLOT_BITS - 1) - 2;
}

/** The subnet of one zone. Independent of how many zones there are. */
export function planSubnet(vpcCidr: string, zoneIndex: number): SubnetPlan {
    if (!Number.isInteger(zoneIndex) || zoneIndex < 0 || zoneIndex >= SUBNET_SLOTS) {
        throw new Error(`zone index must be an integer from 0 to ${SUBNET_SLOTS - 1} (got ${zoneIndex})`);
    }
    const { base, prefix } = splitCidr(vpcCidr);
    const subnetPrefix = prefix + SLOT_BITS;
    if (subnetPrefix > 28) {
        throw new Error(`VPC CIDR ${vpcCidr} is too small: ${SUBNET_SLOTS} subnets of at least /28 need a /25 or larger VPC`);
    }
    const size = 2 ** (32 - subnetPrefix);
    return { zoneIndex, ...nodeRangeOf(`${intToIp(base + zoneIndex * size)}/${subnetPrefix}`) };
}

/**
 * The node range of any subnet: its upper half, without that half's first address and the
 * subnet's last one. AWS reserves the first four addresses of a subnet and its last
 * (https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html), so the range is
 * clear of them for any subnet AWS allows (/16 to /28). Used for the stack's own subnets and
 * for the subnets of an existing VPC alike.
 */
export function nodeRangeOf(subnetCidr: string): Omit<SubnetPlan, "zoneIndex"> {
    const { base, prefix } = splitCidr(subnetCidr);
    if (prefix > 28) throw new Error(`subnet ${subnetCidr} is smaller than /28, the smallest AWS allows`);
    const size = 2 ** (32 - prefix);
    const nodeStart = base + size / 2;
    return {
        cidr: `${intToIp(base)}/${prefix}`,
        nodeRangeCidr: `${intToIp(nodeStart)}/${prefix + 1}`,
        firstNodeAddress: intToIp(nodeStart + 1),
        nodeCapacity: size / 2 - 2,
    };
}

/** One private subnet per zone, zone i in slice i of the VPC. */
export function planSubnets(vpcCidr: string, zones: number): SubnetPlan[] {
    if (!Number.isInteger(zones) || zones < 1 || zones > SUBNET_SLOTS) {
        throw new Error(`zones must be an integer from 1 to ${SUBNET_SLOTS} (got ${zones})`);
    }
    return Array.from({ length: zones }, (_, i) => planSubnet(vpcCidr, i));
}

/**
 * The autoscale runner's two subnets in a VPC the stack creates, in the last slice (zones
 * use slices 0–5, so slice SUBNET_SLOTS − 1 is never a zone's): its lower half public, for
 * the NAT gateway, its upper half private, for the runner. The nodes' subnets keep no route
 * out; only the runner's reaches the internet, through the NAT.
 */
export function planRunnerSubnets(vpcCidr: string): { publicCidr: string; privateCidr: string } {
    const slice = planSubnet(vpcCidr, SUBNET_SLOTS - 1).cidr;
    const { base, prefix } = splitCidr(slice);
    const half = 2 ** (32 - prefix - 1);
    return { publicCidr: `${intToIp(base)}/${prefix + 1}`, privateCidr: `${intToIp(base + half)}/${prefix + 1}` };
}
