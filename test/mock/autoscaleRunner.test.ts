/**
 * The AWS autoscale runner as the program registers it (issue 14): none while
 * `autoscale.enabled` is false; with it, one Graviton instance in a private subnet of its
 * own routed through a NAT gateway, no public address, IMDSv2 only, encrypted root volume;
 * its security group reaching the nodes' client port only, and the nodes admitting it;
 * its role's policy, least privilege resource by resource; its user data (shellcheck,
 * the timer's interval from the policy); the project bundle it runs.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import * as pulumi from "@pulumi/pulumi";
import { unzipSync } from "fflate";
import { parseStackYaml } from "../../components/config";
import { RUNNER_BUNDLE_KEY, runnerRunScript } from "../../components/bootstrap/runner";
import { COLLECTOR_KEY } from "../../components/bootstrap/metricsHook";
import { SSM_AGENT_ACTIONS } from "../../components/nodeRole";
import { ACCOUNT, byType, MOCK_AMI, readStack, Registered, REGION, runProgram, RunResult, T, yamlToConfig } from "./harness";

const NS = "redis-cluster";
const CLUSTER = parseStackYaml(readStack("dev"), "dev").clusterName;
const base = yamlToConfig(readStack("dev"));
const SECRET = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:redis-autoscale/dev-AbCdEf`;
const enabled = (a: Record<string, unknown>) => ({ ...base, [`${NS}:autoscale`]: JSON.stringify({ enabled: true, ...a }) });
const S3_RUNNER = { runnerBackendUrl: "s3://acme-pulumi-state/redis?region=us-east-1", runnerSecretArn: SECRET, intervalSeconds: 45 };

const isRunner = (x: Registered) => x.name.includes("-autoscaler");
const one = (r: RunResult, type: string, pred: (x: Registered) => boolean = () => true) => {
    const found = byType(r, type).filter(pred);
    assert.equal(found.length, 1, `one ${type}: ${found.map((x) => x.name).join(", ")}`);
    return found[0];
};
const runnerInstance = (r: RunResult) => one(r, T.instance, isRunner);
const runnerUserData = (r: RunResult) => gunzipSync(Buffer.from(runnerInstance(r).inputs.userDataBase64, "base64")).toString("utf8");

let s3Run: RunResult;
const s3 = async () => (s3Run ??= await runProgram(enabled(S3_RUNNER), { stack: "dev" }));

test("autoscale runner: none while autoscale.enabled is false", async () => {
    const r = await runProgram(base, { stack: "dev" });
    assert.deepEqual(r.resources.filter(isRunner).map((x) => `${x.type} ${x.name}`), []);
    assert.equal(byType(r, T.instance).length, 6, "the nodes only");
    assert.equal(byType(r, "aws:ec2/natGateway:NatGateway").length, 0);
    assert.ok(!byType(r, T.ingress).some((x) => /autoscaler/.test(x.name)));
});

test("autoscale runner: enabled without its backend and secret refuses, naming the keys, before anything is declared", async () => {
    let registered = -1;
    await assert.rejects(runProgram(enabled({}), { stack: "dev" }).then((r) => { registered = r.resources.length; }), (e: Error) => {
        assert.ok(e instanceof pulumi.RunError, e.constructor.name);
        assert.match(e.message, /^Invalid stack config:\n - redis-cluster:autoscale.enabled is true, which creates the AWS runner, but redis-cluster:autoscale.runnerBackendUrl is not set/);
        assert.match(e.message, /\n - redis-cluster:autoscale.enabled is true, which creates the AWS runner, but redis-cluster:autoscale.runnerSecretArn is not set/);
        return true;
    });
    assert.equal(registered, -1);
});

test("autoscale runner: a t4g.small on Amazon Linux 2023 arm64, private subnet, no public address, IMDSv2, encrypted root", async () => {
    const r = await s3();
    const i = runnerInstance(r);
    assert.equal(i.inputs.instanceType, "t4g.small");
    assert.equal(i.inputs.ami, MOCK_AMI);
    const lookup = r.invokes.filter((x) => x.token === "aws:ec2/getAmi:getAmi").map((x) => JSON.stringify(x.inputs.filters));
    assert.ok(lookup.some((f) => f.includes("al2023-ami-2023.*-kernel-*-arm64") && f.includes("\"architecture\",\"values\":[\"arm64\"]")), lookup.join("\n"));
    assert.equal(i.inputs.associatePublicIpAddress, false);
    assert.deepEqual(i.inputs.metadataOptions, { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 });
    const key = one(r, T.kmsKey);
    assert.equal(i.inputs.rootBlockDevice.encrypted, true);
    assert.equal(i.inputs.rootBlockDevice.kmsKeyId, key.state.arn);
    assert.equal(i.inputs.rootBlockDevice.volumeType, "gp3");
    assert.equal(i.inputs.rootBlockDevice.volumeSize, 20);
    assert.deepEqual(i.inputs.creditSpecification, { cpuCredits: "standard" });
    assert.ok(i.ignoreChanges.includes("ami"), "its own pulumi up never replaces it for a newer AMI");
    assert.equal(i.inputs.userDataReplaceOnChange, true);
    const profile = one(r, "aws:iam/instanceProfile:InstanceProfile", isRunner);
    assert.equal(i.inputs.iamInstanceProfile, profile.state.name);

    // Its subnet: private, routed out through a NAT gateway in a public subnet; the nodes' subnets keep no route out.
    const subnet = byType(r, T.subnet).find((s) => s.id === i.inputs.subnetId)!;
    assert.equal(subnet.inputs.cidrBlock, "10.42.240.0/20");
    assert.equal(subnet.inputs.mapPublicIpOnLaunch, false);
    const nat = one(r, "aws:ec2/natGateway:NatGateway");
    const natSubnet = byType(r, T.subnet).find((s) => s.id === nat.inputs.subnetId)!;
    assert.equal(natSubnet.inputs.cidrBlock, "10.42.224.0/20");
    const tables = byType(r, "aws:ec2/routeTable:RouteTable");
    const assoc = byType(r, "aws:ec2/routeTableAssociation:RouteTableAssociation");
    const routesOf = (subnetId: string) => tables.find((t) => t.id === assoc.find((a) => a.inputs.subnetId === subnetId)!.inputs.routeTableId)!.inputs.routes ?? [];
    assert.deepEqual(routesOf(subnet.id), [{ cidrBlock: "0.0.0.0/0", natGatewayId: nat.id }]);
    assert.deepEqual(routesOf(natSubnet.id), [{ cidrBlock: "0.0.0.0/0", gatewayId: one(r, "aws:ec2/internetGateway:InternetGateway").id }]);
    for (const s of byType(r, T.subnet).filter((x) => !isRunner(x))) assert.deepEqual(routesOf(s.id), [], `${s.name} keeps no route out`);
    // S3 (the project every interval, packages) through the free gateway endpoint, not the NAT.
    const s3Endpoint = byType(r, T.endpoint).find((e) => e.inputs.vpcEndpointType === "Gateway")!;
    const s3Assoc = one(r, "aws:ec2/vpcEndpointRouteTableAssociation:VpcEndpointRouteTableAssociation");
    assert.deepEqual([s3Assoc.inputs.vpcEndpointId, s3Assoc.inputs.routeTableId], [s3Endpoint.id, assoc.find((a) => a.inputs.subnetId === subnet.id)!.inputs.routeTableId]);
    assert.equal(r.outputs.autoscaleRunnerInstanceId, runnerInstance(r).id, "the stack output names the runner");
});

test("autoscale runner: its security group reaches only the nodes' client port (and HTTPS out); the nodes admit it on that port only", async () => {
    const r = await s3();
    const sg = one(r, T.sg, isRunner);
    const nodesSg = byType(r, T.sg).find((s) => s.name.endsWith("-sg-nodes"))!;
    assert.deepEqual(runnerInstance(r).inputs.vpcSecurityGroupIds, [sg.id]);
    assert.deepEqual(byType(r, T.ingress).filter((x) => x.inputs.securityGroupId === sg.id), [], "no ingress at all");
    const egress = byType(r, T.egress).filter((x) => x.inputs.securityGroupId === sg.id).map((x): Record<string, any> => ({ ...x.inputs, description: undefined, securityGroupId: undefined }));
    assert.deepEqual(egress.sort((a, b) => a.fromPort - b.fromPort), [
        { ipProtocol: "tcp", fromPort: 443, toPort: 443, cidrIpv4: "0.0.0.0/0", description: undefined, securityGroupId: undefined },
        { ipProtocol: "tcp", fromPort: 6379, toPort: 6379, referencedSecurityGroupId: nodesSg.id, description: undefined, securityGroupId: undefined },
    ]);
    const admitted = byType(r, T.ingress).filter((x) => x.inputs.referencedSecurityGroupId === sg.id);
    assert.deepEqual(admitted.map((x) => [x.inputs.securityGroupId, x.inputs.fromPort, x.inputs.toPort]), [[nodesSg.id, 6379, 6379]], "the client port, never the bus (16379)");
});

test("autoscale runner: the role's policy, least privilege resource by resource", async () => {
    const r = await s3();
    const role = one(r, "aws:iam/role:Role", isRunner);
    const pol = byType(r, T.rolePolicy).find((x) => x.inputs.role === role.id)!;
    const doc = JSON.parse(pol.inputs.policy) as { Statement: { Sid: string; Action: string | string[]; Resource: string | string[]; Condition?: any }[] };
    const by = new Map(doc.Statement.map((s) => [s.Sid, s]));
    const list = (v: string | string[]) => (Array.isArray(v) ? v : [v]);
    const bucket = byType(r, T.bucket).find((b) => /backup/.test(b.name) && !/log/.test(b.name))!;
    const key = one(r, T.kmsKey);
    const nodeRole = byType(r, "aws:iam/role:Role").find((x) => /node-role/.test(x.name))!;
    const tg = one(r, T.targetGroup);
    assert.deepEqual([...by.keys()].sort(), [
        "AlarmsAndDashboardOfThisCluster", "ChangeNodesOfThisClusterOnly", "CreateOnlyTaggedWithThisCluster", "FinalSnapshotsOfRemovedNodes",
        "LaunchIntoTheStacksNetwork", "LaunchWithAmazonImages", "ListTheStateBackend", "PassTheNodeRoleOnly", "PublishTheProject", "ReadForPlanning",
        "ReadTheProject", "ReadTheStacksSecret", "ReadWriteTheStateBackend", "RootVolumesOfNewNodes", "SessionManagerAgent", "TargetsOfThisCluster",
        "UseTheClusterKeyThroughEc2AndS3",
    ]);
    assert.deepEqual([by.get("RootVolumesOfNewNodes")!.Action, by.get("RootVolumesOfNewNodes")!.Resource], ["ec2:RunInstances", `arn:aws:ec2:${REGION}:${ACCOUNT}:volume/*`]);
    assert.deepEqual(by.get("FinalSnapshotsOfRemovedNodes")!.Resource, `arn:aws:ec2:${REGION}::snapshot/*`);
    // Access: Session Manager, without AmazonSSMManagedInstanceCore's GetParameter(s) on "*".
    assert.deepEqual(list(by.get("SessionManagerAgent")!.Action), SSM_AGENT_ACTIONS);
    // The secret that unlocks the stack: that one secret, read only.
    assert.deepEqual([by.get("ReadTheStacksSecret")!.Action, by.get("ReadTheStacksSecret")!.Resource], ["secretsmanager:GetSecretValue", SECRET]);
    // The state backend: its path's .pulumi/ only.
    assert.deepEqual(by.get("ListTheStateBackend"), { Sid: "ListTheStateBackend", Effect: "Allow", Action: "s3:ListBucket", Resource: "arn:aws:s3:::acme-pulumi-state", Condition: { StringLike: { "s3:prefix": ["redis/.pulumi/*"] } } });
    assert.deepEqual(list(by.get("ReadWriteTheStateBackend")!.Resource), ["arn:aws:s3:::acme-pulumi-state/redis/.pulumi/*"]);
    assert.deepEqual(list(by.get("ReadWriteTheStateBackend")!.Action).sort(), ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]);
    // The project bundle (and the collector the program publishes): read; the bundle: rewrite.
    assert.deepEqual(list(by.get("ReadTheProject")!.Resource), [`${bucket.state.arn}/${RUNNER_BUNDLE_KEY}`, `${bucket.state.arn}/${COLLECTOR_KEY}`]);
    assert.deepEqual(list(by.get("PublishTheProject")!.Resource), [`${bucket.state.arn}/${RUNNER_BUNDLE_KEY}`]);
    // Nodes of this cluster: tag-conditioned, the node role only, the cluster key through EC2/S3 only, its target group, alarms, dashboard.
    assert.deepEqual(by.get("ChangeNodesOfThisClusterOnly")!.Condition, { StringEquals: { "aws:ResourceTag/redis-cluster:cluster": CLUSTER } });
    assert.deepEqual(by.get("CreateOnlyTaggedWithThisCluster")!.Condition, { StringEquals: { "aws:RequestTag/redis-cluster:cluster": CLUSTER } });
    assert.deepEqual(by.get("LaunchWithAmazonImages")!.Condition, { StringEquals: { "ec2:Owner": "amazon" } });
    const vpc = one(r, "aws:ec2/vpc:Vpc");
    assert.deepEqual(by.get("LaunchIntoTheStacksNetwork")!.Condition, { StringEquals: { "ec2:Vpc": `arn:aws:ec2:${REGION}:${ACCOUNT}:vpc/${vpc.id}` } });
    assert.deepEqual([by.get("PassTheNodeRoleOnly")!.Resource, by.get("PassTheNodeRoleOnly")!.Condition], [nodeRole.state.arn, { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } }]);
    assert.deepEqual([by.get("UseTheClusterKeyThroughEc2AndS3")!.Resource, by.get("UseTheClusterKeyThroughEc2AndS3")!.Condition],
        [key.state.arn, { StringEquals: { "kms:ViaService": [`ec2.${REGION}.amazonaws.com`, `s3.${REGION}.amazonaws.com`] } }]);
    assert.deepEqual(by.get("TargetsOfThisCluster")!.Resource, tg.state.arn);
    assert.deepEqual(list(by.get("AlarmsAndDashboardOfThisCluster")!.Resource), [`arn:aws:cloudwatch:${REGION}:${ACCOUNT}:alarm:${CLUSTER}*`, `arn:aws:cloudwatch::${ACCOUNT}:dashboard/${CLUSTER}`]);
    // Every alarm the program registers is inside the granted prefix (a new node's alarms included);
    // alarms without a name are auto-named after their resource name plus a suffix.
    const alarmNames = [...byType(r, T.alarm), ...byType(r, "aws:cloudwatch/compositeAlarm:CompositeAlarm")].map((x) => x.inputs.name ?? x.inputs.alarmName ?? x.name);
    assert.ok(alarmNames.length > 20 && alarmNames.every((n) => typeof n === "string" && n.startsWith(CLUSTER)), alarmNames.filter((n) => !String(n).startsWith(CLUSTER)).join(", "));
    // "*" only for what takes no narrower resource: the SSM agent, Describe*/List* reads, and the tag-conditioned EC2 statements.
    for (const s of doc.Statement.filter((x) => list(x.Resource).includes("*"))) {
        const reads = list(s.Action).every((a) => /^(ec2|elasticloadbalancing|cloudwatch):(Describe|List)/.test(a));
        assert.ok(s.Sid === "SessionManagerAgent" || reads || s.Condition?.StringEquals?.[`aws:ResourceTag/redis-cluster:cluster`] || s.Condition?.StringEquals?.[`aws:RequestTag/redis-cluster:cluster`], `${s.Sid} on "*"`);
    }
    const actions = doc.Statement.flatMap((s) => list(s.Action));
    assert.deepEqual(actions.filter((a) => /^iam:/.test(a)), ["iam:PassRole"], "no IAM change at all");
    assert.deepEqual(actions.filter((a) => /^cloudwatch:(GetMetric|ListMetrics)/.test(a)), [], "no CloudWatch metric reads: the autoscaler reads the nodes");
    assert.deepEqual(actions.filter((a) => /^(secretsmanager|ssm:GetParameter)/.test(a)), ["secretsmanager:GetSecretValue"]);
    assert.ok(!actions.some((a) => /^(ec2:(CreateSecurityGroup|Authorize|Revoke|CreateVpc|CreateSubnet|CreateRoute)|s3:\*|kms:\*|ec2:\*)/.test(a)), "nothing on the network or wildcards");
    // The cluster key's policy lets it use the key through EC2 and S3 only.
    const keyPolicy = JSON.parse(one(r, "aws:kms/keyPolicy:KeyPolicy").inputs.policy);
    const kst = keyPolicy.Statement.find((s: any) => s.Sid === "AutoscalerUsesTheKeyThroughEc2AndS3");
    assert.equal(kst.Principal.AWS, role.state.arn);
    assert.deepEqual(kst.Condition, { StringEquals: { "kms:ViaService": [`ec2.${REGION}.amazonaws.com`, `s3.${REGION}.amazonaws.com`] } });
});

test("autoscale runner: Pulumi Cloud takes an access token, and no state bucket is granted; an awskms:// provider's key is", async () => {
    const cloud = await runProgram(enabled({ runnerBackendUrl: "https://api.pulumi.com", runnerSecretArn: SECRET }), { stack: "dev" });
    const doc = JSON.parse(byType(cloud, T.rolePolicy).find((x) => x.inputs.role === one(cloud, "aws:iam/role:Role", isRunner).id)!.inputs.policy);
    assert.ok(!doc.Statement.some((s: any) => /StateBackend/.test(s.Sid)));
    assert.match(runnerUserData(cloud), /^RUNNER_SECRET_ENV=PULUMI_ACCESS_TOKEN$/m);
    assert.match(runnerUserData(cloud), /^PULUMI_BACKEND_URL=https:\/\/api\.pulumi\.com$/m);
    const key = `arn:aws:kms:${REGION}:${ACCOUNT}:key/0123abcd-4567-89ab-cdef-0123456789ab`;
    const kms = await runProgram(enabled({ runnerBackendUrl: "s3://acme-pulumi-state", runnerSecretsKmsKeyArn: key, runnerInstanceType: "t4g.micro" }), { stack: "dev" });
    const kdoc = JSON.parse(byType(kms, T.rolePolicy).find((x) => x.inputs.role === one(kms, "aws:iam/role:Role", isRunner).id)!.inputs.policy);
    assert.deepEqual(kdoc.Statement.find((s: any) => s.Sid === "SecretsProviderKey"), { Sid: "SecretsProviderKey", Effect: "Allow", Action: ["kms:Encrypt", "kms:Decrypt"], Resource: key });
    assert.ok(!kdoc.Statement.some((s: any) => s.Sid === "ReadTheStacksSecret"), "no secret to read");
    assert.deepEqual(kdoc.Statement.find((s: any) => s.Sid === "ReadWriteTheStateBackend").Resource, "arn:aws:s3:::acme-pulumi-state/.pulumi/*");
    assert.match(runnerUserData(kms), /^RUNNER_SECRET_ARN=$/m);
    assert.equal(runnerInstance(kms).inputs.instanceType, "t4g.micro");
});

test("autoscale runner: user data installs Node.js, the Pulumi CLI and the timer with the policy's interval; shellcheck passes", async () => {
    const r = await s3();
    const ud = runnerUserData(r);
    const version = (require("@pulumi/pulumi/package.json") as { version: string }).version;
    assert.match(ud, /^dnf -y -q install nodejs22 nodejs22-npm python3 tar gzip$/m);
    assert.match(ud, /^alternatives --set node \/usr\/bin\/node-22$/m);
    assert.ok(ud.includes(`https://github.com/pulumi/pulumi/releases/download/v${version}/pulumi-v${version}-linux-arm64.tar.gz`), "the SDK's CLI version, arm64");
    assert.match(ud, /sha256sum -c --quiet -/);
    assert.ok(ud.includes(`\nPATH=/opt/pulumi-${version}:/usr/local/bin:/usr/bin:/bin\n`), "the CLI and its language host on the service's PATH");
    assert.match(ud, /^OnUnitInactiveSec=45s$/m, "the timer's interval is autoscale.intervalSeconds");
    assert.match(ud, /^ExecStart=\/usr\/local\/libexec\/redis-autoscale-run %i$/m);
    assert.match(ud, /^systemctl enable -q --now redis-autoscale@dev\.timer$/m);
    const bucket = byType(r, T.bucket).find((b) => /backup/.test(b.name) && !/log/.test(b.name))!;
    assert.match(ud, new RegExp(`^RUNNER_BUNDLE_URI=s3://${bucket.state.bucket}/tools/autoscale-project\\.zip$`, "m"));
    assert.match(ud, /^PULUMI_BACKEND_URL=s3:\/\/acme-pulumi-state\/redis\?region=us-east-1$/m);
    assert.match(ud, new RegExp(`^RUNNER_SECRET_ARN=${SECRET}$`, "m"));
    assert.match(ud, /^RUNNER_SECRET_ENV=PULUMI_CONFIG_PASSPHRASE$/m);
    assert.ok(ud.includes(runnerRunScript().trimEnd()), "the run script as rendered");
    assert.match(runnerRunScript(), /exec npm-22 run --silent cluster -- autoscale --stack "\$stack" --once --json --state-file "\/var\/lib\/redis-autoscale\/\$stack\.json"/);
    assert.ok(!/PULUMI_CONFIG_PASSPHRASE=|PULUMI_ACCESS_TOKEN=/.test(ud), "the secret itself never in user data");
    const dir = mkdtempSync(join(tmpdir(), "runner-ud-"));
    try {
        writeFileSync(join(dir, "user-data.sh"), ud);
        writeFileSync(join(dir, "run.sh"), runnerRunScript());
        const sc = spawnSync("shellcheck", ["--severity=style", "--shell=bash", join(dir, "user-data.sh"), join(dir, "run.sh")], { encoding: "utf8" });
        assert.equal(sc.error, undefined, "shellcheck is missing: apt-get install shellcheck");
        assert.equal(sc.status, 0, sc.stdout + sc.stderr);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test("autoscale runner: the project it runs is published to the bucket after the nodes, with the stack's config", async () => {
    const r = await s3();
    const obj = one(r, "aws:s3/bucketObjectv2:BucketObjectv2", (x) => x.inputs.key === RUNNER_BUNDLE_KEY);
    assert.equal(obj.inputs.serverSideEncryption, "aws:kms");
    assert.equal(obj.inputs.kmsKeyId, one(r, T.kmsKey).state.arn);
    // A FileAsset's path (a promise in the asset object the mocks see).
    const path = await (obj.inputs.source as { path: string | Promise<string> }).path;
    const files = unzipSync(readFileSync(path));
    for (const f of ["Pulumi.yaml", "Pulumi.dev.yaml", "package.json", "package-lock.json", "tsconfig.json", "index.ts", "scripts/cli.ts", "components/autoscaleRunner.ts"]) {
        assert.ok(files[f], `${f} in the bundle`);
    }
    assert.ok(!Object.keys(files).some((f) => /^(test|bench|node_modules)\//.test(f)), "no tests, benches or node_modules");
    assert.equal(Buffer.from(files["Pulumi.dev.yaml"]).toString(), readStack("dev"));
    const nodeInstances = byType(r, T.instance).filter((x) => !isRunner(x)).map((x) => x.ref);
    for (const n of nodeInstances) assert.ok(obj.dependencies.includes(n), `published after ${n}`);
    assert.ok(runnerInstance(r).dependencies.includes(obj.ref), "the runner boots once its project is there");
});
