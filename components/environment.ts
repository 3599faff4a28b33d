import * as aws from "@pulumi/aws";
import { ConfigError, CONFIG_NAMESPACE, StackConfig } from "./config";
import { al2023AmiNamePattern, architectureOf } from "./plan/ami";
import { ExistingVpc, lookupExistingVpc } from "./existingVpc";

/** What the program learns from the AWS account and region before creating anything. */
export interface Environment {
    region: string;
    accountId: string;
    partition: string;
    /** The first `zones` availability zones of the region, sorted by name. */
    availabilityZones: string[];
    amiId: string;
    /** true when the AMI came from config.amiId. */
    amiPinned: boolean;
    /** With config.vpcId: the existing VPC and its subnets (zone i = subnets[i]); the stack then creates no network. */
    existingVpc?: ExistingVpc;
}

/** Checks the zone count against what the region offers; throws a ConfigError naming the key. */
export function chooseZones(available: string[], zones: number, region: string): string[] {
    const sorted = [...available].sort();
    if (sorted.length < zones) {
        throw new ConfigError([
            `${CONFIG_NAMESPACE}:zones is ${zones}, but region ${region} offers ${sorted.length} availability zone${sorted.length === 1 ? "" : "s"}` +
            ` (${sorted.join(", ") || "none"}); set ${CONFIG_NAMESPACE}:zones to at most ${sorted.length} or choose another region (aws:region)`,
        ]);
    }
    return sorted.slice(0, zones);
}

/**
 * Looks up region, account, partition, zones and (unless pinned) the newest
 * Amazon Linux 2023 AMI for the instance type's architecture. Fails before any
 * resource is declared when the region cannot give the zones asked for.
 */
export async function lookupEnvironment(cfg: StackConfig): Promise<Environment> {
    const [region, identity, partition, azs] = await Promise.all([
        aws.getRegion(),
        aws.getCallerIdentity(),
        aws.getPartition(),
        // Only regular zones: Local Zones and Wavelength Zones are opt-in and lack most instance types.
        aws.getAvailabilityZones({ state: "available", filters: [{ name: "opt-in-status", values: ["opt-in-not-required"] }] }),
    ]);
    // In an existing VPC the zones are those of its subnets, in the order given.
    const existingVpc = cfg.vpcId !== undefined ? await lookupExistingVpc(cfg, region.region) : undefined;
    const availabilityZones = existingVpc ? existingVpc.subnets.map((s) => s.availabilityZone) : chooseZones(azs.names, cfg.zones, region.region);
    let amiId = cfg.amiId;
    if (amiId === undefined) {
        const arch = architectureOf(cfg.instanceType);
        const ami = await aws.ec2.getAmi({
            owners: ["amazon"],
            mostRecent: true,
            filters: [
                { name: "name", values: [al2023AmiNamePattern(arch)] },
                { name: "architecture", values: [arch] },
                { name: "state", values: ["available"] },
            ],
        });
        amiId = ami.id;
    }
    return {
        region: region.region,
        accountId: identity.accountId,
        partition: partition.partition,
        availabilityZones,
        amiId,
        amiPinned: cfg.amiId !== undefined,
        ...(existingVpc ? { existingVpc } : {}),
    };
}
