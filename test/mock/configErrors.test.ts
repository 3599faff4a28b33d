/**
 * Bad config values fail the program (as `pulumi preview` would) before any
 * resource is declared, with a message naming the key, the value and what is
 * valid. Plus config variants the committed stacks don't cover.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { byType, DEFAULT_AZS, MOCK_AMI, readStack, runProgram, T, userDataOf, yamlToConfig } from "./harness";

const base = yamlToConfig(readStack("dev"));
const NS = "redis-cluster";

async function failsWith(extra: Record<string, string>, message: string, opts: { availabilityZones?: string[] } = {}) {
    let registered = -1;
    await assert.rejects(
        runProgram({ ...base, ...extra }, { stack: "dev", ...opts }).then((r) => { registered = r.resources.length; }),
        (e: Error) => {
            assert.ok(e instanceof pulumi.RunError, `expected a RunError (no stack trace for users), got ${e.constructor.name}`);
            assert.equal(e.message, message);
            return true;
        },
    );
    assert.equal(registered, -1);
}

test("config error: fewer than 3 shards", () => failsWith({ [`${NS}:shards`]: "2" },
    `Invalid stack config:\n - ${NS}:shards must be an integer from 3 to 500 (Redis Cluster needs at least 3 masters to keep a majority through one failure) (got "2")`));

test("config error: replicas outside 0-5", () => failsWith({ [`${NS}:replicasPerShard`]: "6" },
    `Invalid stack config:\n - ${NS}:replicasPerShard must be an integer from 0 to 5 (got "6")`));

test("config error: a VPC CIDR that can't hold the nodes' fixed addresses", () => failsWith({ [`${NS}:shards`]: "12", [`${NS}:vpcCidr`]: "10.1.2.0/24" },
    `Invalid stack config:\n - ${NS}:shards × (1 + ${NS}:replicasPerShard) = 12 × 2 nodes do not fit the fixed node addresses of ${NS}:vpcCidr "10.1.2.0/24" over ${NS}:zones 3 ` +
    `(each zone's subnet holds 14 node addresses, 6 reserved per shard): at most 9 shards fit with 1 replica per shard, or use a vpcCidr of /23 or larger (e.g. "10.1.2.0/23"), or more ${NS}:zones`));

test("config error: more zones than the region offers (checked against the region, in the program)", () => failsWith({ [`${NS}:zones`]: "4" },
    `Invalid stack config:\n - ${NS}:zones is 4, but region us-east-1 offers 3 availability zones (us-east-1a, us-east-1b, us-east-1c); set ${NS}:zones to at most 3 or choose another region (aws:region)`,
    { availabilityZones: DEFAULT_AZS.slice(0, 3) }));

test("config error: gp3 IOPS and throughput limits", async () => {
    await failsWith({ [`${NS}:dataVolumeIops`]: "20000" },
        `Invalid stack config:\n - ${NS}:dataVolumeIops must be an integer from 3000 to 16000 (gp3 limits) (got "20000")`);
    await failsWith({ [`${NS}:dataVolumeThroughputMiBps`]: "1000" },
        `Invalid stack config:\n - ${NS}:dataVolumeThroughputMiBps may be at most IOPS/4 on gp3: 3000 IOPS allow 750 MiB/s (got 1000)`);
});

test("config error: Redis open to the internet", () => failsWith({ [`${NS}:clientCidrs`]: '["10.0.0.0/8","0.0.0.0/0"]' },
    `Invalid stack config:\n - ${NS}:clientCidrs must not open Redis to the whole internet (got "0.0.0.0/0"); name the networks of your clients`));

test("config error: a misspelt key is not silently ignored", async () => {
    await assert.rejects(runProgram({ ...base, [`${NS}:shard`]: "4" }, { stack: "dev" }), /redis-cluster:shard is not a known key \(known: clusterName, shards, /);
});

test("config error: every problem at once", () => failsWith({ [`${NS}:shards`]: "two", [`${NS}:tls`]: "yes" },
    `Invalid stack config:\n - ${NS}:shards must be an integer from 3 to 500 (Redis Cluster needs at least 3 masters to keep a majority through one failure) (got "two")\n - ${NS}:tls must be true or false (got "yes")`));

test("alarm e-mail set with --secret: subscribed, kept secret, and out of every node's user data", async () => {
    const email = "oncall@example.com";
    const r = await runProgram({ ...base, [`${NS}:alarmEmail`]: email }, { stack: "dev", secretKeys: [`${NS}:alarmEmail`] });
    const subs = byType(r, T.topicSubscription);
    assert.equal(subs.length, 1);
    // Registered as a secret value (Pulumi's secret signature), so state and previews mask it.
    assert.deepEqual(subs[0].inputs.endpoint, { [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig, value: email });
    assert.equal(subs[0].inputs.protocol, "email");
    for (const i of byType(r, T.instance)) assert.ok(!userDataOf(i).includes(email), `${i.name} user data holds the e-mail`);
    const dev = await runProgram(base, { stack: "dev" });
    assert.equal(byType(dev, T.topicSubscription).length, 0);
});

test("pinned AMI is used, and rolled with the node named in rollout; x86 instance types look up an x86_64 AMI", async () => {
    const pinned = await runProgram({ ...base, [`${NS}:amiId`]: "ami-0fedcba9876543210" }, { stack: "dev" });
    // Looked up by id only, to check it against the engine and architecture; never replaced by the newest.
    const amiCalls = pinned.invokes.filter((x) => x.token === "aws:ec2/getAmi:getAmi");
    assert.deepEqual(amiCalls.map((c) => c.inputs.filters), [[{ name: "image-id", values: ["ami-0fedcba9876543210"] }]]);
    for (const i of byType(pinned, T.instance)) {
        assert.equal(i.inputs.ami, "ami-0fedcba9876543210");
        assert.ok(i.ignoreChanges.includes("ami"), "held at the deployed AMI until roll names the node");
    }
    const rolling = await runProgram({ ...base, [`${NS}:amiId`]: "ami-0fedcba9876543210", [`${NS}:rollout`]: "redis-cluster-dev-s1-r0" }, { stack: "dev" });
    for (const i of byType(rolling, T.instance)) {
        assert.deepEqual(i.ignoreChanges, i.name.endsWith("-s1-r0-instance") ? [] : ["instanceType", "creditSpecification", "userDataBase64", "ami"], i.name);
    }
    const unpinned = await runProgram({ ...base, [`${NS}:rollout`]: "redis-cluster-dev-s1-r0" }, { stack: "dev" });
    const rolled = byType(unpinned, T.instance).find((i) => i.name.endsWith("-s1-r0-instance"))!;
    assert.deepEqual(rolled.ignoreChanges, ["ami"], "a looked-up AMI is never rolled");
    const x86 = await runProgram({ ...base, [`${NS}:instanceType`]: "m7i.large" }, { stack: "dev" });
    const filters = x86.invokes.find((x) => x.token === "aws:ec2/getAmi:getAmi")!.inputs.filters;
    assert.deepEqual(filters.find((f: any) => f.name === "architecture").values, ["x86_64"]);
    for (const i of byType(x86, T.instance)) {
        assert.equal(i.inputs.ami, MOCK_AMI);
        assert.equal(i.inputs.creditSpecification, undefined, "credit specification only on burstable types");
    }
});

test("two zones, one replica: each shard still spans both zones", async () => {
    const r = await runProgram({ ...base, [`${NS}:zones`]: "2" }, { stack: "dev", availabilityZones: ["us-east-1a", "us-east-1b"] });
    assert.equal(byType(r, T.subnet).length, 2);
    const byShard = new Map<number, Set<string>>();
    for (const n of r.outputs.topology.nodes) byShard.set(n.shard, (byShard.get(n.shard) ?? new Set()).add(n.az));
    for (const [s, azs] of byShard) assert.equal(azs.size, 2, `shard ${s} in ${[...azs]}`);
});

test("harness: an invoke the program does not mock throws instead of answering", async () => {
    const r = await runProgram(base, { stack: "dev" });
    const aws = await import("@pulumi/aws");
    // The mock monitor drops the message on the way back; the recorded call shows it was this one that failed.
    await assert.rejects(aws.ec2.getVpc({ default: true }));
    assert.deepEqual(r.invokes.at(-1), { token: "aws:ec2/getVpc:getVpc", inputs: { default: true } });
    // The program itself made only the invokes the harness answers.
    assert.deepEqual([...new Set(r.invokes.slice(0, -1).map((i) => i.token))].sort(), [
        "aws:ec2/getAmi:getAmi", "aws:ec2/getInstanceType:getInstanceType", "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings",
        "aws:ec2/getVpcEndpointService:getVpcEndpointService",
        "aws:index/getAvailabilityZones:getAvailabilityZones", "aws:index/getCallerIdentity:getCallerIdentity",
        "aws:index/getPartition:getPartition", "aws:index/getRegion:getRegion",
    ]);
});

