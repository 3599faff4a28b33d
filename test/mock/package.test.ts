/**
 * The component as a user's own Pulumi program gets it: `npm pack` this repository, install
 * the tarball into a separate TypeScript program in a temporary directory, type-check that
 * program against the package's declarations, and run it under Pulumi mocks.
 *
 * Offline: the program's dependencies are this repository's installed packages (symlinked
 * into its node_modules, as a registry install would put them there), so `npm install
 * --offline` only unpacks the tarball. One @pulumi/pulumi instance serves program and
 * component, as npm's dedupe gives a real user.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ROOT } from "./harness";

const run = (cmd: string, args: string[], cwd: string, timeout = 240_000) => {
    const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout, env: { ...process.env, npm_config_update_notifier: "false" } });
    assert.equal(r.status, 0, `${cmd} ${args.join(" ")} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
};

/** The user's program: their VPC's ids from their config, the cluster beside their app. */
const PROGRAM = `import * as pulumi from "@pulumi/pulumi";
import { RedisCluster, RedisClusterArgs, Topology } from "pulumi-redis-cluster";

const config = new pulumi.Config("app");
const args: RedisClusterArgs = {
    shards: 3,
    replicasPerShard: 1,
    instanceType: "t4g.medium",
    vpcId: config.require("vpcId"),
    subnetIds: config.requireObject<string[]>("subnetIds"),
    clientSecurityGroupIds: [config.require("appSecurityGroupId")],
    interfaceEndpoints: false,
};
export const cache = new RedisCluster("cache", args);
// Nested, as a program holding more than the cluster exports it: the tool reads it with --output redis.
export const redis = cache.outputs;
export const redisSecurityGroupId = cache.nodeSecurityGroupId;
export const topology: pulumi.Output<Topology> = cache.topology;
`;

/** Runs the program under mocks and prints what it registered and exported, as JSON. */
const DRIVER = `import * as pulumi from "@pulumi/pulumi";
const resources: { type: string; name: string; inputs: any }[] = [];
const VPC = "vpc-0a1b2c3d4e5f60718";
const SUBNETS: Record<string, [string, string]> = {
    "subnet-0aaaaaaaaaaaaaaa1": ["us-east-1a", "10.8.0.0/20"],
    "subnet-0bbbbbbbbbbbbbbb2": ["us-east-1b", "10.8.16.0/20"],
};
pulumi.runtime.setMocks({
    newResource(a) {
        resources.push({ type: a.type, name: a.name, inputs: a.inputs });
        const state: any = { ...a.inputs, arn: "arn:aws:mock:::" + a.name };
        if (a.type === "aws:lb/loadBalancer:LoadBalancer") { state.dnsName = a.inputs.name + ".elb.us-east-1.amazonaws.com"; state.arnSuffix = "net/x/1"; }
        if (a.type === "aws:lb/targetGroup:TargetGroup") state.arnSuffix = "targetgroup/x/1";
        if (a.type === "aws:s3/bucket:Bucket") state.bucket = a.name + "-b";
        if (a.type === "random:index/randomPassword:RandomPassword") state.result = "pw-" + a.name;
        return { id: a.name + "-id", state };
    },
    call(a) {
        switch (a.token) {
            case "aws:index/getRegion:getRegion": return { region: "us-east-1", name: "us-east-1" };
            case "aws:index/getCallerIdentity:getCallerIdentity": return { accountId: "123456789012" };
            case "aws:index/getPartition:getPartition": return { partition: "aws" };
            case "aws:index/getAvailabilityZones:getAvailabilityZones": return { names: ["us-east-1a", "us-east-1b", "us-east-1c"] };
            case "aws:ec2/getAmi:getAmi": return { id: "ami-0123456789abcdef0" };
            case "aws:ec2/getInstanceType:getInstanceType": return { instanceType: a.inputs.instanceType, ebsNvmeSupport: "required", hypervisor: "nitro" };
            case "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": return { locations: ["us-east-1a", "us-east-1b", "us-east-1c"] };
            case "aws:ec2/getVpcEndpointService:getVpcEndpointService": return { service: a.inputs.service, availabilityZones: ["us-east-1a", "us-east-1b", "us-east-1c"] };
            case "aws:ec2/getVpc:getVpc": return { id: VPC, cidrBlock: "10.8.0.0/16", enableDnsSupport: true, enableDnsHostnames: true };
            case "aws:ec2/getSubnet:getSubnet": return { id: a.inputs.id, vpcId: VPC, availabilityZone: SUBNETS[a.inputs.id][0], cidrBlock: SUBNETS[a.inputs.id][1] };
            case "aws:ec2/getPrefixList:getPrefixList": return { id: "pl-63a5400a" };
            case "aws:ec2/getRouteTables:getRouteTables": return { ids: ["rtb-main"] };
            case "aws:ec2/getRouteTable:getRouteTable": return { routes: [{ destinationPrefixListId: "pl-63a5400a", gatewayId: "vpce-s3" }] };
            case "aws:ec2/getVpcEndpoint:getVpcEndpoint": return { id: "vpce-ssm", privateDnsEnabled: true };
        }
        throw new Error("unmocked invoke " + a.token);
    },
}, "my-app", "dev", false, "organization").then(async () => {
    pulumi.runtime.setAllConfig({
        "app:vpcId": VPC,
        "app:subnetIds": JSON.stringify(Object.keys(SUBNETS)),
        "app:appSecurityGroupId": "sg-0123456789abcdef0",
    });
    const program = require("./index");
    // The stack config's rules, with its messages, for bad arguments too.
    const { RedisCluster } = require("pulumi-redis-cluster");
    let badArgs = "";
    try { new RedisCluster("bad", { shards: 2, vpcId: "vpc-0a1b2c3d4e5f60718" }); } catch (e) { badArgs = (e as Error).message; }
    const value = (o: any) => new Promise((r) => pulumi.output(o).apply((v) => { r(v); return v; }));
    const redis: any = await value(program.redis);
    const sg = await value(program.redisSecurityGroupId);
    let n = -1;
    while (n !== resources.length) { n = resources.length; await new Promise((r) => setTimeout(r, 50)); }
    const parts = Object.keys(require("pulumi-redis-cluster/parts")).sort();
    process.stdout.write(JSON.stringify({ resources, redis, sg, badArgs, parts }));
});
`;

test("npm pack -> a separate TypeScript Pulumi program installs it offline, type-checks and runs it under mocks", { timeout: 300_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), "redis-cluster-package-"));
    try {
        const pack = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", dir], ROOT))[0];
        const tarball = join(dir, pack.filename);
        const files: string[] = pack.files.map((f: { path: string }) => f.path);
        for (const f of ["dist/components/index.js", "dist/components/index.d.ts", "dist/components/bootstrap/bootstrap.sh", "dist/components/bootstrap/backup.sh", "package.json"]) {
            assert.ok(files.includes(f), `${f} not in the package`);
        }
        assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("node_modules/")), "tests or node_modules packed");

        const app = join(dir, "app");
        mkdirSync(join(app, "node_modules"), { recursive: true });
        const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
        for (const dep of Object.keys(pkg.dependencies)) {
            mkdirSync(dirname(join(app, "node_modules", dep)), { recursive: true });
            symlinkSync(join(ROOT, "node_modules", dep), join(app, "node_modules", dep));
        }
        writeFileSync(join(app, "package.json"), JSON.stringify({ name: "my-app", private: true, version: "1.0.0" }));
        writeFileSync(join(app, "Pulumi.yaml"), "name: my-app\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n");
        writeFileSync(join(app, "tsconfig.json"), JSON.stringify({ compilerOptions: { strict: true, target: "ES2022", module: "commonjs", moduleResolution: "node", esModuleInterop: true, skipLibCheck: true, types: ["node"], typeRoots: [join(ROOT, "node_modules", "@types")], noEmit: true }, files: ["index.ts", "driver.ts"] }));
        writeFileSync(join(app, "index.ts"), PROGRAM);
        writeFileSync(join(app, "driver.ts"), DRIVER);

        run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--no-package-lock", tarball], app);
        assert.ok(JSON.parse(readFileSync(join(app, "package.json"), "utf8")).dependencies["pulumi-redis-cluster"].endsWith(".tgz"));
        // The user's program compiles against the package's own declarations.
        run(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "."], app);
        const out = JSON.parse(run(process.execPath, ["--import", "tsx", "driver.ts"], app));

        const of = (type: string) => out.resources.filter((r: { type: string }) => r.type === type);
        assert.equal(of("rediscluster:index:RedisCluster").length, 1);
        assert.equal(of("aws:ec2/instance:Instance").length, 6);
        for (const t of ["aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/vpcEndpoint:VpcEndpoint", "aws:ec2/flowLog:FlowLog"]) assert.equal(of(t).length, 0, `${t} registered`);
        for (const eni of of("aws:ec2/networkInterface:NetworkInterface")) assert.match(eni.inputs.subnetId, /^subnet-0(a|b)/);
        // clusterName defaults to <name>-<stack>; the app's group is let in.
        assert.equal(out.redis.topology.clusterName, "cache-dev");
        assert.equal(out.redis.topology.nodes.length, 6);
        assert.match(out.redis.loadBalancerDnsName, /\.elb\.us-east-1\.amazonaws\.com$/);
        assert.equal(out.redis.networkMode, "existing");
        assert.equal(out.redis.adminCredentials.user, "admin");
        assert.equal(out.sg, out.redis.nodeSecurityGroupId);
        for (const part of ["Network", "SecurityGroups", "RedisNodes", "LoadBalancer", "BackupBucket"]) assert.ok(out.parts.includes(part), `parts lacks ${part}`);
        assert.match(out.badArgs, /^Invalid stack config:\n - redis-cluster:shards must be an integer from 3 to 500 .*\(got 2\)\n - redis-cluster:vpcId needs redis-cluster:subnetIds/);
        assert.ok(of("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").some((r: { inputs: any }) => r.inputs.referencedSecurityGroupId === "sg-0123456789abcdef0"));
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});
