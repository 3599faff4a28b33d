/**
 * Deploying into an existing VPC (`vpcId` + `subnetIds`) under mocks, with a fake account
 * answering the VPC, subnet, route table, prefix list and endpoint lookups.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { nodeRangeOf, cidrContains } from "../../components/plan/subnets";
import { byType, MOCK_S3_PREFIX_LIST, readStack, Registered, RunResult, runProgram, T, yamlToConfig } from "./harness";

const NS = "redis-cluster";
const VPC = "vpc-0a1b2c3d4e5f60718";
const SUBNETS = [
    { id: "subnet-0aaaaaaaaaaaaaaa1", az: "us-east-1a", cidr: "10.8.0.0/20" },
    { id: "subnet-0bbbbbbbbbbbbbbb2", az: "us-east-1b", cidr: "10.8.16.0/20" },
    { id: "subnet-0ccccccccccccccc3", az: "us-east-1c", cidr: "10.8.32.0/20" },
];

interface Account {
    vpcs: Record<string, { cidrBlock: string; enableDnsSupport: boolean; enableDnsHostnames: boolean }>;
    subnets: Record<string, { vpcId: string; cidrBlock: string; availabilityZone: string }>;
    /** subnet id -> explicitly associated route table; others use "rtb-main". */
    associations: Record<string, string>;
    routes: Record<string, Record<string, string>[]>;
    endpoints: Record<string, { privateDnsEnabled: boolean }>;
}

function account(): Account {
    return {
        vpcs: { [VPC]: { cidrBlock: "10.8.0.0/16", enableDnsSupport: true, enableDnsHostnames: true } },
        subnets: Object.fromEntries(SUBNETS.map((s) => [s.id, { vpcId: VPC, cidrBlock: s.cidr, availabilityZone: s.az }])),
        associations: { [SUBNETS[0].id]: "rtb-0private000000001" },
        routes: {
            "rtb-0private000000001": [{ cidrBlock: "10.8.0.0/16", gatewayId: "local" }, { destinationPrefixListId: MOCK_S3_PREFIX_LIST, gatewayId: "vpce-0s3" }],
            "rtb-main": [{ cidrBlock: "10.8.0.0/16", gatewayId: "local" }, { cidrBlock: "0.0.0.0/0", natGatewayId: "nat-0123" }],
        },
        endpoints: Object.fromEntries(["ssm", "ssmmessages", "ec2messages", "logs", "monitoring"].map((s) => [`com.amazonaws.us-east-1.${s}`, { privateDnsEnabled: true }])),
    };
}

/** A failed invoke as the engine reports it: a gRPC error whose `details` the SDK turns into the message. */
const providerError = (msg: string) => Object.assign(new Error(msg), { details: `invocation returned an error: ${msg}` });

/** The invoke answers of an account; "no matching" errors as the provider gives them. */
function invokes(a: Account): Record<string, (inputs: any) => any> {
    return {
        "aws:ec2/getVpc:getVpc": ({ id }) => {
            const v = a.vpcs[id];
            if (!v) throw providerError("no matching EC2 VPC found");
            return { id, ...v };
        },
        "aws:ec2/getSubnet:getSubnet": ({ id }) => {
            const s = a.subnets[id];
            if (!s) throw providerError("no matching EC2 Subnet found");
            return { id, ...s, mapPublicIpOnLaunch: false };
        },
        "aws:ec2/getPrefixList:getPrefixList": ({ name }) => ({ id: MOCK_S3_PREFIX_LIST, name, cidrBlocks: ["52.216.0.0/15"] }),
        "aws:ec2/getRouteTables:getRouteTables": ({ filters }) => {
            const f = filters[0];
            if (f.name === "association.main") return { id: "x", ids: ["rtb-main"] };
            const rt = a.associations[f.values[0]];
            return { id: "x", ids: rt ? [rt] : [] };
        },
        "aws:ec2/getRouteTable:getRouteTable": ({ routeTableId }) => ({ id: routeTableId, routeTableId, routes: a.routes[routeTableId] ?? [], associations: [] }),
        "aws:ec2/getVpcEndpoint:getVpcEndpoint": ({ serviceName }) => {
            const e = a.endpoints[serviceName];
            if (!e) throw providerError("no matching EC2 VPC Endpoint found");
            return { id: `vpce-${serviceName.split(".").pop()}`, serviceName, state: "available", ...e };
        },
    };
}

const base = yamlToConfig(readStack("prod"));
/** prod's config in the existing VPC: without vpcCidr (the subnets have theirs) and zones (the subnets are the zones). */
function inVpc(subnets = SUBNETS.map((s) => s.id)): Record<string, string> {
    const { [`${NS}:vpcCidr`]: _cidr, [`${NS}:zones`]: _zones, ...rest } = base;
    return { ...rest, [`${NS}:vpcId`]: VPC, [`${NS}:subnetIds`]: JSON.stringify(subnets) };
}
const run = (config: Record<string, string>, a = account(), previousOutputs?: Record<string, unknown>) =>
    runProgram(config, { stack: "prod", invokes: invokes(a), previousOutputs });

async function refused(config: Record<string, string>, a: Account, expected: (RegExp | string)[], previousOutputs?: Record<string, unknown>) {
    let registered = -1;
    await assert.rejects(run(config, a, previousOutputs).then((r) => { registered = r.resources.length; }), (e: Error) => {
        assert.ok(e instanceof pulumi.RunError, `expected a RunError, got ${e.constructor.name}: ${e.message}`);
        for (const x of expected) {
            if (typeof x === "string") assert.ok(e.message.includes(x), `message lacks ${JSON.stringify(x)}:\n${e.message}`);
            else assert.match(e.message, x);
        }
        return true;
    });
    assert.equal(registered, -1);
}

const NETWORK_TYPES = [
    "aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/routeTable:RouteTable", "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/vpcEndpoint:VpcEndpoint", "aws:ec2/flowLog:FlowLog", "aws:ec2/subnetCidrReservation:SubnetCidrReservation",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "aws:ec2/internetGateway:InternetGateway", "aws:ec2/natGateway:NatGateway",
    "aws:ec2/route:Route", "rediscluster:index:Network",
];

let own: RunResult;
let existing: RunResult;
test("prod in an existing VPC: no network resource registered, everything else as in its own VPC", async () => {
    own = await runProgram(base, { stack: "prod" });
    existing = await run(inVpc());
    for (const t of NETWORK_TYPES) assert.equal(byType(existing, t).length, 0, `${t} registered in an existing VPC`);
    assert.ok(!existing.resources.some((r) => /-net-/.test(r.name)), "a child of the network component was registered");
    // Everything that is not the network is there, under the same names.
    const key = (r: Registered) => `${r.type}::${r.name}`;
    const expected = own.resources.filter((r) => !NETWORK_TYPES.includes(r.type) && !/-net-/.test(r.name) && !/-net$/.test(r.name)).map(key).sort();
    assert.deepEqual(existing.resources.map(key).sort(), expected);
    assert.equal(existing.outputs.networkMode, "existing");
    assert.equal(existing.outputs.vpcId, VPC);
    assert.deepEqual(existing.outputs.privateSubnetIds, SUBNETS.map((s) => s.id));
    assert.equal(own.outputs.networkMode, "created");
});

test("existing VPC: security groups in that VPC with the same rules; HTTPS only to its CIDR and the S3 prefix list", () => {
    for (const sg of byType(existing, T.sg)) assert.equal(sg.inputs.vpcId, VPC);
    const rules = (r: RunResult, type: string) => byType(r, type).map((x) => ({ name: x.name, proto: x.inputs.ipProtocol, from: x.inputs.fromPort, to: x.inputs.toPort, cidr: x.inputs.cidrIpv4, pl: x.inputs.prefixListId, ref: x.inputs.referencedSecurityGroupId }));
    for (const type of [T.ingress, T.egress]) {
        const a = rules(own, type).filter((x) => !x.name.includes("-net-"));
        const b = rules(existing, type);
        assert.deepEqual(b.map((x) => x.name).sort(), a.map((x) => x.name).sort());
        for (const x of b) {
            const y = a.find((z) => z.name === x.name)!;
            assert.deepEqual({ ...x, cidr: undefined }, { ...y, cidr: undefined }, x.name);
            assert.notEqual(x.cidr, "0.0.0.0/0");
            if (x.name.endsWith("https-to-vpc")) assert.equal(x.cidr, "10.8.0.0/16");
            else assert.equal(x.cidr, y.cidr, x.name);
        }
    }
    assert.equal(existing.resources.find((x) => x.name.endsWith("https-to-s3"))!.inputs.prefixListId, MOCK_S3_PREFIX_LIST);
});

test("existing VPC: each node in its zone's subnet, at a fixed address in the subnet's upper half, replicas off their master's zone", () => {
    const enis = byType(existing, T.eni);
    assert.equal(enis.length, 9);
    const seen = new Set<string>();
    const zoneOfNode = new Map<string, string>();
    for (const eni of enis) {
        const subnet = SUBNETS.find((s) => s.id === eni.inputs.subnetId);
        assert.ok(subnet, `${eni.name} is in ${eni.inputs.subnetId}, not a given subnet`);
        const [ip] = eni.inputs.privateIps;
        assert.ok(cidrContains(nodeRangeOf(subnet.cidr).nodeRangeCidr, ip), `${eni.name} ${ip} outside ${subnet.cidr}'s node range`);
        assert.notEqual(ip, nodeRangeOf(subnet.cidr).nodeRangeCidr.split("/")[0]);
        assert.ok(!seen.has(ip), `${ip} used twice`);
        seen.add(ip);
        zoneOfNode.set(eni.name.replace(/-eni$/, ""), subnet.az);
        const vol = existing.resources.find((x) => x.type === T.volume && x.name === eni.name.replace(/-eni$/, "-data"))!;
        assert.equal(vol.inputs.availabilityZone, subnet.az, `${vol.name} not in its node's zone`);
        assert.equal(vol.inputs.encrypted, true);
    }
    for (let shard = 0; shard < 3; shard++) {
        const azs = [0, 1, 2].map((r) => [...zoneOfNode].find(([n]) => n.endsWith(`-s${shard}-r${r}`))![1]);
        assert.equal(new Set(azs).size, 3, `shard ${shard} nodes share a zone: ${azs}`);
    }
    // The instances themselves are configured exactly as in the stack's own VPC (IMDSv2, no public IP, encryption, …).
    for (const i of byType(existing, T.instance)) {
        const o = own.resources.find((x) => x.type === T.instance && x.name === i.name)!;
        const strip = (x: Registered) => ({ ...x.inputs, userDataBase64: undefined, primaryNetworkInterface: undefined });
        assert.deepEqual(strip(i), strip(o), i.name);
        assert.equal(i.protect, o.protect);
    }
    const lb = byType(existing, T.loadBalancer)[0];
    assert.equal(lb.inputs.internal, true);
    assert.deepEqual(lb.inputs.subnets, SUBNETS.map((s) => s.id));
    assert.equal(byType(existing, T.targetGroup)[0].inputs.vpcId, VPC);
});

test("existing VPC config errors, before asking AWS", async () => {
    await refused({ ...base, [`${NS}:vpcId`]: VPC }, account(), [`${NS}:vpcId needs ${NS}:subnetIds`]);
    await refused({ ...base, [`${NS}:subnetIds`]: JSON.stringify([SUBNETS[0].id]) }, account(), [`${NS}:subnetIds is set but ${NS}:vpcId is not`]);
    await refused(inVpc(SUBNETS.slice(0, 2).map((s) => s.id)), account(),
        [`${NS}:subnetIds lists 2 subnets, but ${NS}:replicasPerShard 2 needs 3 (a master and each of its replicas in its own zone`]);
    await refused({ ...inVpc(), [`${NS}:vpcCidr`]: "10.50.0.0/16", [`${NS}:zones`]: "2" }, account(), [
        `${NS}:vpcCidr only applies when the stack creates its VPC`,
        `${NS}:zones is 2 but ${NS}:subnetIds lists 3 subnets`,
    ]);
});

test("existing VPC problems found through the lookups, all in one message", async () => {
    const a = account();
    a.vpcs[VPC].enableDnsHostnames = false;
    a.subnets[SUBNETS[1].id].availabilityZone = "us-east-1a"; // two subnets in one zone
    a.subnets["subnet-0ddddddddddddddd4"] = { vpcId: "vpc-0ffffffffffffffff", cidrBlock: "10.9.0.0/24", availabilityZone: "us-east-1d" };
    a.associations[SUBNETS[2].id] = "rtb-0public0000000001";
    a.routes["rtb-0public0000000001"] = [{ cidrBlock: "0.0.0.0/0", gatewayId: "igw-0123" }];
    delete a.endpoints["com.amazonaws.us-east-1.ssm"];
    await refused(inVpc([...SUBNETS.map((s) => s.id), "subnet-0ddddddddddddddd4"]), a, [
        /^Invalid stack config:\n/,
        `${NS}:vpcId ${VPC} has enableDnsSupport=true, enableDnsHostnames=false`,
        `subnets ${SUBNETS[0].id} and ${SUBNETS[1].id} are both in us-east-1a`,
        `subnet subnet-0ddddddddddddddd4 belongs to vpc-0ffffffffffffffff, not to ${NS}:vpcId ${VPC}`,
        `subnet ${SUBNETS[2].id} is public (route table rtb-0public0000000001 sends 0.0.0.0/0 to an internet gateway)`,
        `subnet ${SUBNETS[2].id} has no way to S3`,
        `has no interface endpoint for com.amazonaws.us-east-1.ssm`,
        "could not read their passwords from SSM at boot",
    ]);
});

test("existing VPC: a missing VPC, a missing subnet, and subnets too small for the fixed addresses", async () => {
    await refused({ ...inVpc(), [`${NS}:vpcId`]: "vpc-0999999999999999a" }, account(), [`${NS}:vpcId "vpc-0999999999999999a" does not exist in region us-east-1`]);
    const small = account();
    small.subnets[SUBNETS[0].id].cidrBlock = "10.8.0.0/28";
    await refused({ ...inVpc(), [`${NS}:shards`]: "6" }, small, [
        `subnet ${SUBNETS[0].id} (10.8.0.0/28, us-east-1a) is too small for 6 nodes: their fixed addresses are taken from its upper half 10.8.0.8/29`,
        "use a larger subnet (a /27 or larger)",
    ]);
    const gone = account();
    delete gone.subnets[SUBNETS[1].id];
    await refused(inVpc(), gone, [`subnet ${SUBNETS[1].id} does not exist in region us-east-1`]);
    const noSessionManager = account();
    delete noSessionManager.endpoints["com.amazonaws.us-east-1.logs"];
    await refused(inVpc(), noSessionManager, [`no interface endpoint for com.amazonaws.us-east-1.logs`, `or set ${NS}:interfaceEndpoints false`]);
    // Without Session Manager and CloudWatch only ssm is needed.
    await run({ ...inVpc(), [`${NS}:interfaceEndpoints`]: "false" }, noSessionManager);
});

test("a running stack does not switch networks", async () => {
    const ownOutputs = { networkMode: "created", vpcId: "vpc-0000000000000own1", privateSubnetIds: ["subnet-0own"] };
    await refused(inVpc(), account(), [
        `${NS}:vpcId is set, but this stack runs its cluster in the VPC it created (vpc-0000000000000own1)`,
        "would replace every node and data volume at once", "Refused.", "deploy a new stack in the target network",
    ], ownOutputs);
    // A stack deployed before networkMode existed created its VPC.
    await refused(inVpc(), account(), ["runs its cluster in the VPC it created"], { vpcId: "vpc-0000000000000own1" });
    const inVpcOutputs = { networkMode: "existing", vpcId: VPC, privateSubnetIds: SUBNETS.map((s) => s.id) };
    await refused(base, account(), [`${NS}:vpcId is not set, but this stack runs its cluster in the existing VPC ${VPC}`], inVpcOutputs);
    await refused(inVpc([SUBNETS[1].id, SUBNETS[0].id, SUBNETS[2].id]), account(), [`${NS}:subnetIds changed from`], inVpcOutputs);
    // The same network again is an ordinary update, and so is the own-VPC stack's.
    await run(inVpc(), account(), inVpcOutputs);
    await runProgram(base, { stack: "prod", previousOutputs: ownOutputs });
});

test("existing VPC: the autoscale runner goes into autoscale.runnerSubnetId, creating no subnet, gateway or route; refused without it", async () => {
    const autoscale = { enabled: true, runnerBackendUrl: "s3://acme-pulumi-state", runnerSecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-autoscale/prod-AbCdEf" };
    await refused({ ...inVpc(), [`${NS}:autoscale`]: JSON.stringify(autoscale) }, account(),
        [/redis-cluster:autoscale\.enabled is true in an existing VPC \(redis-cluster:vpcId\), but redis-cluster:autoscale\.runnerSubnetId is not set/]);
    const runnerSubnet = "subnet-0ddddddddddddddd4";
    const r = await run({ ...inVpc(), [`${NS}:autoscale`]: JSON.stringify({ ...autoscale, runnerSubnetId: runnerSubnet }) });
    const instance = byType(r, T.instance).find((i) => /autoscaler/.test(i.name))!;
    assert.equal(instance.inputs.subnetId, runnerSubnet);
    for (const t of NETWORK_TYPES) assert.equal(byType(r, t).length, 0, `${t} registered in an existing VPC`);
    assert.equal(byType(r, T.sg).find((s) => /autoscaler/.test(s.name))!.inputs.vpcId, VPC);
    assert.equal(byType(r, "aws:ec2/vpcEndpointRouteTableAssociation:VpcEndpointRouteTableAssociation").length, 0);
});
