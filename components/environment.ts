import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { ConfigError, CONFIG_NAMESPACE, StackConfig } from "./config";
import { al2023AmiNamePattern, architectureOf, engineAmiProblems } from "./plan/ami";
import { INTERFACE_ENDPOINT_SERVICES } from "./network";

/** What the program learns from the AWS account and region before creating anything. */
export interface Environment {
    region: string;
    accountId: string;
    partition: string;
    /** `zones` availability zones, sorted by name, among those that offer the instance type and every endpoint service. */
    availabilityZones: string[];
    amiId: string;
    /** true when the AMI came from config.amiId. */
    amiPinned: boolean;
    /**
     * The IAM role or user running `pulumi up` (an assumed role's role ARN, not its
     * session): the default key administrator (`keyAdministratorArns`).
     */
    deployerArn: string;
}

/** What a zone must offer; a zone missing anything is skipped, with the reason kept for the error. */
export interface ZoneRequirements {
    instanceType: string;
    /** Zones where EC2 offers the instance type (DescribeInstanceTypeOfferings). */
    offeredIn: string[];
    /** Interface endpoint service -> zones it is offered in (DescribeVpcEndpointServices). */
    endpointServices: Record<string, string[]>;
}

/**
 * Chooses the first `zones` zones by name among those that can host the
 * cluster, and throws a ConfigError naming the key, what each skipped zone
 * lacks, and what to change. AZ names map to different physical zones per
 * account, so "the first N" alone can pick one (us-east-1e) that rejects the
 * instance type with "Unsupported" at `pulumi up`.
 */
export function chooseZones(available: string[], zones: number, region: string, req?: ZoneRequirements): string[] {
    const sorted = [...available].sort();
    if (sorted.length < zones) {
        throw new ConfigError([
            `${CONFIG_NAMESPACE}:zones is ${zones}, but region ${region} offers ${sorted.length} availability zone${sorted.length === 1 ? "" : "s"}` +
            ` (${sorted.join(", ") || "none"}); set ${CONFIG_NAMESPACE}:zones to at most ${sorted.length} or choose another region (aws:region)`,
        ]);
    }
    if (!req) return sorted.slice(0, zones);
    const lacks = (az: string): string[] => [
        ...(req.offeredIn.includes(az) ? [] : [`instance type ${req.instanceType}`]),
        ...Object.entries(req.endpointServices).filter(([, azs]) => !azs.includes(az)).map(([svc]) => `the ${svc} endpoint service`),
    ];
    const usable = sorted.filter((az) => lacks(az).length === 0);
    if (usable.length < zones) {
        const skipped = sorted.filter((az) => lacks(az).length > 0).map((az) => `${az} lacks ${lacks(az).join(" and ")}`);
        throw new ConfigError([
            `${CONFIG_NAMESPACE}:zones is ${zones}, but only ${usable.length} of region ${region}'s zones can host the cluster` +
            ` (${usable.join(", ") || "none"}; ${skipped.join("; ")}); set ${CONFIG_NAMESPACE}:zones to at most ${usable.length},` +
            ` choose another ${CONFIG_NAMESPACE}:instanceType${Object.keys(req.endpointServices).length > 1 ? ` or set ${CONFIG_NAMESPACE}:interfaceEndpoints to false` : ""}, or choose another region (aws:region)`,
        ]);
    }
    return usable.slice(0, zones);
}

/** The role ARN behind an assumed-role session (with its path, from iam:GetSessionContext); other ARNs as they are. */
async function principalArn(callerArn: string): Promise<string> {
    if (!/:assumed-role\//.test(callerArn)) return callerArn;
    return (await aws.iam.getSessionContext({ arn: callerArn })).issuerArn;
}

/**
 * Looks up region, account, partition, the deploying principal, zones that can
 * host the cluster and (unless pinned) the newest Amazon Linux 2023 AMI for the
 * instance type's architecture. Fails before any resource is declared, with
 * the key to change, when the region, instance type, engine or AMI cannot work.
 */
export async function lookupEnvironment(cfg: StackConfig): Promise<Environment> {
    const services = cfg.interfaceEndpoints ? [...INTERFACE_ENDPOINT_SERVICES] : ["ssm"];
    const [region, identity, partition, azs, instanceType, offerings, ...endpointServices] = await Promise.all([
        aws.getRegion(),
        aws.getCallerIdentity(),
        aws.getPartition(),
        // Only regular zones: Local Zones and Wavelength Zones are opt-in and lack most instance types.
        aws.getAvailabilityZones({ state: "available", filters: [{ name: "opt-in-status", values: ["opt-in-not-required"] }] }),
        aws.ec2.getInstanceType({ instanceType: cfg.instanceType }),
        aws.ec2.getInstanceTypeOfferings({ locationType: "availability-zone", filters: [{ name: "instance-type", values: [cfg.instanceType] }] }),
        ...services.map((service) => aws.ec2.getVpcEndpointService({ service, serviceType: "Interface" })),
    ]);
    const problems: string[] = [];
    // The boot script finds the data volume as the NVMe device whose serial is the volume id.
    if (instanceType.ebsNvmeSupport === "unsupported") {
        problems.push(`${CONFIG_NAMESPACE}:instanceType ${cfg.instanceType} attaches EBS volumes without NVMe (${instanceType.hypervisor || "unknown"} hypervisor), and the nodes find their data volume by its NVMe serial; choose a Nitro type such as r7g.large, m7i.large or t4g.medium`);
    }
    if (cfg.engine === "redis") {
        problems.push(`${CONFIG_NAMESPACE}:engine is redis, but Amazon Linux 2023 has no redis package (it ships valkey, and redis6 for Redis 6.2); set it to valkey (or redis6). "redis" is for local mode only`);
    }
    const availabilityZones = chooseZones(azs.names, cfg.zones, region.region, {
        instanceType: cfg.instanceType,
        offeredIn: offerings.locations,
        endpointServices: Object.fromEntries(services.map((s, i) => [s, endpointServices[i].availabilityZones])),
    });

    let amiId = cfg.amiId;
    const arch = architectureOf(cfg.instanceType);
    if (amiId === undefined) {
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
    } else {
        const ami = await aws.ec2.getAmi({ filters: [{ name: "image-id", values: [amiId] }], includeDeprecated: true });
        const checked = engineAmiProblems({ engine: cfg.engine, amiId, amiName: ami.name, amiArchitecture: ami.architecture, instanceType: cfg.instanceType });
        problems.push(...checked.errors);
        for (const w of checked.warnings) void pulumi.log.warn(w);
    }
    if (problems.length > 0) throw new ConfigError(problems);
    if (cfg.engine === "redis6") {
        void pulumi.log.warn(`${CONFIG_NAMESPACE}:engine is redis6: Redis 6 on Amazon Linux 2023 left security support on 2025-08-31 (al2023 support_info.xml, eol_redis6); valkey is its successor there. Existing clusters keep it; a new one should use valkey`);
    }
    const deployerArn = await principalArn(identity.arn);
    if (cfg.keyAdministratorArns.length > 0 && !cfg.keyAdministratorArns.includes(deployerArn)) {
        void pulumi.log.warn(`${CONFIG_NAMESPACE}:keyAdministratorArns does not name ${deployerArn}, which runs this deployment: the key policy will not let it create encrypted volumes or read the SecureStrings back, so this and later updates fail once the policy is applied; add it to the list`);
    }
    return {
        region: region.region,
        accountId: identity.accountId,
        partition: partition.partition,
        availabilityZones,
        amiId,
        amiPinned: cfg.amiId !== undefined,
        deployerArn,
    };
}
