/**
 * Deploying into an existing VPC (`vpcId` + `subnetIds`): what the account says about that
 * VPC, and whether nodes placed there can work. Looked up with invokes before any resource is
 * declared; every problem is gathered into one ConfigError naming the key, the resource and
 * the fix.
 *
 * What the nodes need from a VPC they don't own (the stack creates none of it there):
 * - S3 (packages: Amazon Linux 2023's repositories are in S3; backups): an S3 gateway
 *   endpoint on the subnets' route tables (free), or a NAT/transit gateway default route.
 *   The node security group allows HTTPS to the S3 prefix list only, which covers both.
 * - SSM Parameter Store at every boot (passwords, node settings): an `ssm` interface
 *   endpoint with private DNS. The node group allows HTTPS only to the VPC's CIDR, so a NAT
 *   gateway does not reach SSM or CloudWatch.
 * - Session Manager and the CloudWatch agent, with `interfaceEndpoints: true`: `ssmmessages`,
 *   `ec2messages`, `logs` and `monitoring` interface endpoints with private DNS.
 * - Private DNS of interface endpoints needs the VPC's enableDnsSupport and enableDnsHostnames.
 * - The endpoints' own security group must admit HTTPS from the nodes (the output
 *   `nodeSecurityGroupId`, or the subnets' CIDRs): that is not checked, as the rules can
 *   name groups the program cannot see through.
 */
import * as aws from "@pulumi/aws";
import { CONFIG_NAMESPACE, ConfigError, StackConfig } from "./config";
import { ExistingSubnet, existingSubnetPlacementProblems } from "./plan/placement";
import { INTERFACE_ENDPOINT_SERVICES } from "./network";

/** The existing VPC as the stack uses it. */
export interface ExistingVpc {
    vpcId: string;
    /** The VPC's primary CIDR: node egress to interface endpoints is allowed to it. */
    cidrBlock: string;
    /** subnetIds[i] described; zone i of the placement. */
    subnets: ExistingSubnet[];
    /** The region's S3 prefix list (node egress to S3). */
    s3PrefixListId: string;
}

/** A route as the judge needs it (from getRouteTable). */
export interface RouteFact {
    cidrBlock?: string;
    destinationPrefixListId?: string;
    gatewayId?: string;
    natGatewayId?: string;
    transitGatewayId?: string;
}

/** Everything looked up, as plain data, so the judgement is a pure function. */
export interface ExistingVpcFacts {
    region: string;
    vpc?: { id: string; cidrBlock: string; enableDnsSupport: boolean; enableDnsHostnames: boolean };
    /** Per configured subnet id: its description, or undefined when AWS has no such subnet. */
    subnets: { id: string; subnet?: { vpcId: string; cidrBlock: string; availabilityZone: string }; routeTableId?: string; routes: RouteFact[] }[];
    s3PrefixListId: string;
    /** Interface endpoint service -> found in the VPC (available), with its private DNS flag. */
    endpoints: Record<string, { privateDnsEnabled: boolean } | undefined>;
}

const key = (k: string) => `${CONFIG_NAMESPACE}:${k}`;

/** Which interface endpoints the nodes need, by config. */
export function neededInterfaceEndpoints(cfg: Pick<StackConfig, "interfaceEndpoints">): string[] {
    return cfg.interfaceEndpoints ? [...INTERFACE_ENDPOINT_SERVICES] : ["ssm"];
}

/** Judges the looked-up facts; empty when nodes can be placed and will work. */
export function existingVpcProblems(cfg: Pick<StackConfig, "vpcId" | "shards" | "replicasPerShard" | "interfaceEndpoints">, facts: ExistingVpcFacts): string[] {
    const problems: string[] = [];
    const vpcId = cfg.vpcId!;
    if (!facts.vpc) {
        return [`${key("vpcId")} ${JSON.stringify(vpcId)} does not exist in region ${facts.region} for these credentials: check the id and aws:region`];
    }
    if (!facts.vpc.enableDnsSupport || !facts.vpc.enableDnsHostnames) {
        problems.push(`${key("vpcId")} ${vpcId} has enableDnsSupport=${facts.vpc.enableDnsSupport}, enableDnsHostnames=${facts.vpc.enableDnsHostnames}: ` +
            `the nodes reach SSM and CloudWatch through interface endpoints' private DNS, which needs both: turn them on (aws ec2 modify-vpc-attribute)`);
    }
    const placed: ExistingSubnet[] = [];
    const zonesSeen = new Map<string, string>();
    for (const s of facts.subnets) {
        if (!s.subnet) {
            problems.push(`${key("subnetIds")}: subnet ${s.id} does not exist in region ${facts.region}`);
            continue;
        }
        if (s.subnet.vpcId !== vpcId) {
            problems.push(`${key("subnetIds")}: subnet ${s.id} belongs to ${s.subnet.vpcId}, not to ${key("vpcId")} ${vpcId}`);
            continue;
        }
        const other = zonesSeen.get(s.subnet.availabilityZone);
        if (other) {
            problems.push(`${key("subnetIds")}: subnets ${other} and ${s.id} are both in ${s.subnet.availabilityZone}; give one subnet per availability zone (replicas go to other zones than their master)`);
        }
        zonesSeen.set(s.subnet.availabilityZone, s.id);
        placed.push({ id: s.id, cidr: s.subnet.cidrBlock, availabilityZone: s.subnet.availabilityZone });

        const rt = s.routeTableId ? `route table ${s.routeTableId}` : "its route table";
        const defaultRoutes = s.routes.filter((r) => r.cidrBlock === "0.0.0.0/0");
        if (defaultRoutes.some((r) => r.gatewayId?.startsWith("igw-"))) {
            problems.push(`${key("subnetIds")}: subnet ${s.id} is public (${rt} sends 0.0.0.0/0 to an internet gateway); Redis nodes belong in private subnets: give the VPC's private subnets`);
        }
        const viaGatewayEndpoint = s.routes.some((r) => r.destinationPrefixListId === facts.s3PrefixListId);
        const viaNat = defaultRoutes.some((r) => r.natGatewayId || r.transitGatewayId);
        if (!viaGatewayEndpoint && !viaNat) {
            problems.push(`${key("subnetIds")}: subnet ${s.id} has no way to S3 (${rt} has neither an S3 gateway endpoint route nor a NAT/transit gateway default route); ` +
                `nodes install packages and write backups through S3: add a gateway endpoint for com.amazonaws.${facts.region}.s3 to ${rt} (free)`);
        }
    }
    const missing = neededInterfaceEndpoints(cfg).filter((svc) => !facts.endpoints[svc]);
    if (missing.length > 0) {
        problems.push(`${key("vpcId")} ${vpcId} has no interface endpoint for ${missing.map((m) => `com.amazonaws.${facts.region}.${m}`).join(", ")}: ` +
            `the nodes' security group allows HTTPS only inside the VPC, so ${missing.includes("ssm") ? "they could not read their passwords from SSM at boot" : "Session Manager and the CloudWatch agent would not work"}; ` +
            `create ${missing.length === 1 ? "it" : "them"} with private DNS` + (cfg.interfaceEndpoints && !missing.includes("ssm") ? `, or set ${key("interfaceEndpoints")} false to go without Session Manager and CloudWatch` : ""));
    }
    const noDns = neededInterfaceEndpoints(cfg).filter((svc) => facts.endpoints[svc] && !facts.endpoints[svc]!.privateDnsEnabled);
    if (noDns.length > 0) {
        problems.push(`the interface endpoint${noDns.length === 1 ? "" : "s"} for ${noDns.join(", ")} in ${vpcId} ${noDns.length === 1 ? "has" : "have"} private DNS off: the nodes call the services' default names; turn private DNS on`);
    }
    if (placed.length === facts.subnets.length) problems.push(...existingSubnetPlacementProblems(cfg, placed, CONFIG_NAMESPACE));
    return problems;
}

/** Whether an invoke failed because the thing looked up does not exist (the provider's "no matching …" error). */
function notFound(e: unknown): boolean {
    return /no matching|not found|does not exist|NotFound/i.test(e instanceof Error ? e.message : String(e));
}

async function orMissing<T>(p: Promise<T>): Promise<T | undefined> {
    try {
        return await p;
    } catch (e) {
        if (notFound(e)) return undefined;
        throw e;
    }
}

/** Looks the VPC, its subnets, their routes and its endpoints up; throws one ConfigError listing every problem. */
export async function lookupExistingVpc(cfg: StackConfig, region: string): Promise<ExistingVpc> {
    const vpcId = cfg.vpcId!;
    const [vpc, prefixList] = await Promise.all([
        orMissing(aws.ec2.getVpc({ id: vpcId })),
        aws.ec2.getPrefixList({ name: `com.amazonaws.${region}.s3` }),
    ]);
    const facts: ExistingVpcFacts = { region, subnets: [], s3PrefixListId: prefixList.id, endpoints: {} };
    if (vpc) {
        facts.vpc = { id: vpc.id, cidrBlock: vpc.cidrBlock, enableDnsSupport: vpc.enableDnsSupport, enableDnsHostnames: vpc.enableDnsHostnames };
        // A subnet without an explicit association uses the VPC's main route table, which
        // association.subnet-id filters never return.
        const main = await aws.ec2.getRouteTables({ vpcId, filters: [{ name: "association.main", values: ["true"] }] });
        facts.subnets = await Promise.all(cfg.subnetIds.map(async (id) => {
            const subnet = await orMissing(aws.ec2.getSubnet({ id }));
            if (!subnet) return { id, routes: [] };
            const explicit = await aws.ec2.getRouteTables({ vpcId: subnet.vpcId, filters: [{ name: "association.subnet-id", values: [id] }] });
            const routeTableId = explicit.ids[0] ?? (subnet.vpcId === vpcId ? main.ids[0] : undefined);
            const routes = routeTableId ? (await aws.ec2.getRouteTable({ routeTableId })).routes : [];
            return { id, subnet: { vpcId: subnet.vpcId, cidrBlock: subnet.cidrBlock, availabilityZone: subnet.availabilityZone }, routeTableId, routes };
        }));
        const found = await Promise.all(neededInterfaceEndpoints(cfg).map(async (svc) =>
            [svc, await orMissing(aws.ec2.getVpcEndpoint({ vpcId, serviceName: `com.amazonaws.${region}.${svc}`, state: "available" }))] as const));
        for (const [svc, ep] of found) facts.endpoints[svc] = ep ? { privateDnsEnabled: ep.privateDnsEnabled } : undefined;
    }
    const problems = existingVpcProblems(cfg, facts);
    if (problems.length > 0) throw new ConfigError(problems);
    return {
        vpcId,
        cidrBlock: facts.vpc!.cidrBlock,
        subnets: facts.subnets.map((s) => ({ id: s.id, cidr: s.subnet!.cidrBlock, availabilityZone: s.subnet!.availabilityZone })),
        s3PrefixListId: prefixList.id,
    };
}
