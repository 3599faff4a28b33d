/**
 * Every committed stack config, run through the program (index.ts) under
 * mocks. Security and placement properties are asserted from what was
 * REGISTERED, not from the config.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStackYaml, StackConfig } from "../../components/config";
import { ssmParameterNames } from "../../components/bootstrap/contract";
import { validateTopology } from "../../components/topology";
import { INTERFACE_ENDPOINT_SERVICES } from "../../components/network";
import { SSM_AGENT_ACTIONS } from "../../components/nodeRole";
import { KEY_ADMIN_ACTIONS } from "../../components/encryptionKey";
import { byType, MOCK_AMI, MOCK_S3_PREFIX_LIST, readStack, Registered, REGION, RunResult, runStack, T, userDataOf } from "./harness";

const STACKS = ["dev", "staging", "prod"] as const;
const runs = new Map<string, { cfg: StackConfig; r: RunResult }>();

async function get(stack: string) {
    if (!runs.has(stack)) {
        const cfg = parseStackYaml(readStack(stack), stack);
        runs.set(stack, { cfg, r: await runStack(stack) });
    }
    return runs.get(stack)!;
}

const one = (r: RunResult, type: string): Registered => {
    const all = byType(r, type);
    assert.equal(all.length, 1, `expected exactly one ${type}, got ${all.length}`);
    return all[0];
};
/** The backup bucket's own resource of a type (the access-log bucket has the same kinds; securityControls.test.ts checks it). */
const backup = (r: RunResult, type: string): Registered => {
    const all = byType(r, type).filter((x) => !x.name.includes("-access-logs"));
    assert.equal(all.length, 1, `expected exactly one backup-bucket ${type}, got ${all.length}`);
    return all[0];
};
const idOf = (r: RunResult, type: string, name: string) => r.resources.find((x) => x.type === type && x.name === name)!.id;

for (const stack of STACKS) {
    test(`${stack}: runs and exports the agreed outputs`, async () => {
        const { cfg, r } = await get(stack);
        const o = r.outputs;
        const expected = ["topology", "loadBalancerDnsName", "backupBucketName", "adminCredentials", ...(cfg.tls ? ["tlsCaCertificate"] : [])];
        for (const k of expected) assert.ok(k in o, `output ${k} missing`);
        assert.equal("tlsCaCertificate" in o, cfg.tls);
        assert.deepEqual(Object.keys(o.topology).sort(), ["clusterName", "nodes", "port", "tls"]);
        assert.equal(o.topology.clusterName, cfg.clusterName);
        assert.equal(o.topology.port, cfg.port);
        assert.equal(o.topology.tls, cfg.tls);
        assert.equal(o.topology.nodes.length, cfg.shards * (1 + cfg.replicasPerShard));
        for (const n of o.topology.nodes) assert.deepEqual(Object.keys(n).sort(), ["az", "host", "instanceId", "name", "port", "shard"]);
        validateTopology(o.topology, `${stack} topology output`);
        assert.match(o.loadBalancerDnsName, /\.elb\.us-east-1\.amazonaws\.com$/);
        assert.equal(o.backupBucketName, backup(r, T.bucket).state.bucket);
        assert.deepEqual(Object.keys(o.adminCredentials).sort(), ["password", "user"]);
        assert.equal(o.adminCredentials.user, "admin");
        assert.ok(r.secretOutputs.includes("adminCredentials"), "adminCredentials must be a secret output");
        if (cfg.tls) assert.match(o.tlsCaCertificate, /^-----BEGIN CERTIFICATE-----/);
        // Topology instance ids and hosts are the registered instances and network interfaces.
        for (const n of o.topology.nodes) {
            const eni = r.resources.find((x) => x.type === T.eni && x.name.endsWith(`${n.name.slice(cfg.clusterName.length)}-eni`))!;
            assert.deepEqual(eni.inputs.privateIps, [n.host]);
            assert.equal(idOf(r, T.instance, eni.name.replace(/-eni$/, "-instance")), n.instanceId);
        }
    });

    test(`${stack}: no public address anywhere`, async () => {
        const { r } = await get(stack);
        for (const s of byType(r, T.subnet)) assert.equal(s.inputs.mapPublicIpOnLaunch, false, `${s.name} maps public IPs`);
        for (const i of byType(r, T.instance)) {
            assert.notEqual(i.inputs.associatePublicIpAddress, true, `${i.name} has a public IP`);
            assert.equal(i.inputs.subnetId, undefined, `${i.name} must use its own network interface`);
            assert.ok(i.inputs.primaryNetworkInterface?.networkInterfaceId, `${i.name} has no fixed network interface`);
            // deleteOnTermination is read-only upstream (terraform-provider-aws docs/r/instance): setting it fails at Check.
            assert.deepEqual(Object.keys(i.inputs.primaryNetworkInterface), ["networkInterfaceId"]);
        }
        for (const forbidden of ["aws:ec2/eip:Eip", "aws:ec2/internetGateway:InternetGateway", "aws:ec2/natGateway:NatGateway", "aws:ec2/route:Route"]) {
            assert.equal(byType(r, forbidden).length, 0, `${forbidden} registered`);
        }
        assert.equal(one(r, T.loadBalancer).inputs.internal, true);
    });

    test(`${stack}: no ingress from the internet, cluster bus only between nodes, egress only to the VPC and S3`, async () => {
        const { cfg, r } = await get(stack);
        const nodeSg = r.resources.find((x) => x.type === T.sg && x.name.endsWith("-sg-nodes"))!;
        const stackSgs = new Set(byType(r, T.sg).map((s) => s.id));
        const bus = cfg.port + 10000;
        for (const sg of byType(r, T.sg)) {
            assert.equal(sg.inputs.ingress, undefined, `${sg.name} has inline ingress`);
            assert.equal(sg.inputs.egress, undefined, `${sg.name} has inline egress`);
        }
        const dsg = one(r, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup");
        assert.ok(!dsg.inputs.ingress?.length && !dsg.inputs.egress?.length, "default security group keeps rules");
        const ingress = byType(r, T.ingress);
        assert.ok(ingress.length > 0);
        for (const rule of ingress) {
            const i = rule.inputs;
            assert.notEqual(i.cidrIpv4, "0.0.0.0/0", `${rule.name} is open to the internet`);
            assert.equal(i.cidrIpv6, undefined, `${rule.name} admits IPv6`);
            assert.notEqual(i.ipProtocol, "-1", `${rule.name} admits every protocol`);
            if (i.fromPort <= bus && bus <= i.toPort) {
                assert.equal(i.securityGroupId, nodeSg.id, `${rule.name}: bus port open on another group`);
                assert.equal(i.referencedSecurityGroupId, nodeSg.id, `${rule.name}: bus port open to something other than the nodes`);
                assert.equal(i.cidrIpv4, undefined, `${rule.name}: bus port open to a CIDR`);
            }
        }
        // The bus port rule exists, and only one.
        assert.equal(ingress.filter((x) => x.inputs.fromPort === bus).length, 1);
        // Clients reach the client port from each configured CIDR, on nodes and load balancer.
        for (const cidr of cfg.clientCidrs) {
            assert.equal(ingress.filter((x) => x.inputs.cidrIpv4 === cidr && x.inputs.fromPort === cfg.port && x.inputs.toPort === cfg.port).length, 2);
        }
        for (const rule of byType(r, T.egress)) {
            const i = rule.inputs;
            const ok = i.cidrIpv4 === cfg.vpcCidr || i.prefixListId === MOCK_S3_PREFIX_LIST || stackSgs.has(i.referencedSecurityGroupId);
            assert.ok(ok, `${rule.name} egress leaves the VPC: ${JSON.stringify(i)}`);
            assert.notEqual(i.ipProtocol, "-1", `${rule.name} allows every protocol`);
        }
    });

    test(`${stack}: IMDSv2, detailed monitoring, encryption on every volume, bucket and secret`, async () => {
        const { cfg, r } = await get(stack);
        const keyArn = one(r, T.kmsKey).state.arn;
        assert.equal(one(r, T.kmsKey).inputs.enableKeyRotation, true);
        for (const i of byType(r, T.instance)) {
            assert.equal(i.inputs.metadataOptions?.httpTokens, "required", `${i.name} allows IMDSv1`);
            assert.equal(i.inputs.metadataOptions?.httpPutResponseHopLimit, 1);
            assert.equal(i.inputs.monitoring, true);
            assert.equal(i.inputs.rootBlockDevice?.encrypted, true, `${i.name} root volume unencrypted`);
            assert.equal(i.inputs.rootBlockDevice?.kmsKeyId, keyArn);
            assert.equal(i.inputs.instanceType, cfg.instanceType);
        }
        const volumes = byType(r, T.volume);
        assert.equal(volumes.length, cfg.shards * (1 + cfg.replicasPerShard));
        for (const v of volumes) {
            assert.equal(v.inputs.encrypted, true, `${v.name} unencrypted`);
            assert.equal(v.inputs.kmsKeyId, keyArn);
            assert.equal(v.inputs.type, "gp3");
            assert.equal(v.inputs.size, cfg.dataVolumeSizeGiB);
            assert.equal(v.inputs.iops, cfg.dataVolumeIops);
            assert.equal(v.inputs.throughput, cfg.dataVolumeThroughputMiBps);
        }
        const sse = backup(r, T.sse).inputs.rules[0];
        assert.equal(sse.applyServerSideEncryptionByDefault.sseAlgorithm, "aws:kms");
        assert.equal(sse.applyServerSideEncryptionByDefault.kmsMasterKeyId, keyArn);
        assert.equal(backup(r, T.versioning).inputs.versioningConfiguration.status, "Enabled");
        const names = ssmParameterNames(cfg.clusterName);
        const params = new Map(byType(r, T.param).map((p) => [p.inputs.name, p.inputs]));
        const expected = cfg.tls ? Object.values(names) : [names.adminPassword, names.appPassword, names.replicationPassword, names.nodeSettings];
        assert.deepEqual([...params.keys()].sort(), [...expected].sort());
        for (const name of [names.adminPassword, names.appPassword, names.replicationPassword, ...(cfg.tls ? [names.tlsKey] : [])]) {
            assert.equal(params.get(name)!.type, "SecureString", `${name} not a SecureString`);
            assert.equal(params.get(name)!.keyId, keyArn);
        }
    });

    test(`${stack}: backup bucket blocks public access and refuses non-TLS requests`, async () => {
        const { cfg, r } = await get(stack);
        const bucket = backup(r, T.bucket);
        const pab = backup(r, T.publicAccess).inputs;
        assert.equal(pab.bucket, bucket.id);
        for (const k of ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"]) assert.equal(pab[k], true, k);
        const policy = JSON.parse(backup(r, T.bucketPolicy).inputs.policy);
        const deny = policy.Statement.find((s: any) => s.Effect === "Deny" && s.Condition?.Bool?.["aws:SecureTransport"] === "false");
        assert.ok(deny, "no statement denying aws:SecureTransport=false");
        assert.equal(deny.Action, "s3:*");
        assert.deepEqual(deny.Resource, [bucket.state.arn, `${bucket.state.arn}/*`]);
        const rule = backup(r, T.lifecycle).inputs.rules[0];
        assert.equal(rule.expiration.days, cfg.backupExpirationDays);
        assert.deepEqual(rule.transitions ?? [], cfg.backupTransitionDays > 0 ? [{ days: cfg.backupTransitionDays, storageClass: "STANDARD_IA" }] : []);
        assert.equal(bucket.inputs.forceDestroy, cfg.backupBucketForceDestroy);
        assert.equal(bucket.protect, cfg.protectData);
        assert.equal(bucket.retainOnDelete, cfg.protectData);
        // A retained bucket keeps what secures it: nothing of it is deleted while the bucket stays.
        for (const t of [T.publicAccess, T.versioning, T.sse, T.bucketPolicy, T.lifecycle, "aws:s3/bucketOwnershipControls:BucketOwnershipControls"]) {
            assert.equal(backup(r, t).retainOnDelete, cfg.protectData, `${t} retainOnDelete`);
        }
        assert.ok(backup(r, T.lifecycle).dependencies.includes(backup(r, T.versioning).ref), "lifecycle rules before versioning is on");
        for (const v of byType(r, T.volume)) {
            assert.equal(v.protect, cfg.protectData, `${v.name} protect`);
            assert.equal(v.retainOnDelete, cfg.protectData, `${v.name} retainOnDelete`);
        }
        const dlm = one(r, T.dlm).inputs.policyDetails;
        // DLM ORs target tags: one tag, whose value only this cluster's data volumes carry.
        assert.deepEqual(dlm.targetTags, { "redis-cluster:snapshot": cfg.clusterName });
        assert.equal(dlm.schedules[0].retainRule.count, cfg.snapshotRetentionCount);
        const targeted = (tagsOf: Record<string, string> | undefined) => Object.entries(dlm.targetTags).some(([k, v]) => tagsOf?.[k] === v);
        for (const v of byType(r, T.volume)) assert.ok(targeted(v.inputs.tags), `${v.name} not picked up by the snapshot policy`);
        for (const i of byType(r, T.instance)) assert.ok(!targeted(i.inputs.rootBlockDevice.tags), `${i.name}: root volume targeted by the snapshot policy`);
    });

    test(`${stack}: each shard's nodes in distinct zones, masters spread, volumes beside their instance`, async () => {
        const { cfg, r } = await get(stack);
        const subnetAz = new Map(byType(r, T.subnet).map((s) => [s.id, s.inputs.availabilityZone as string]));
        const eniAz = new Map(byType(r, T.eni).map((e) => [e.name.replace(/-eni$/, ""), subnetAz.get(e.inputs.subnetId)!]));
        const nodes = [...eniAz.keys()].map((n) => {
            const m = /-s(\d+)-r(\d+)$/.exec(n)!;
            return { name: n, shard: Number(m[1]), replica: Number(m[2]), az: eniAz.get(n)! };
        });
        assert.equal(nodes.length, cfg.shards * (1 + cfg.replicasPerShard));
        for (let s = 0; s < cfg.shards; s++) {
            const azs = nodes.filter((n) => n.shard === s).map((n) => n.az);
            assert.equal(new Set(azs).size, azs.length, `shard ${s} has two nodes in one zone: ${azs}`);
        }
        const masters = nodes.filter((n) => n.replica === 0).map((n) => n.az);
        const counts = [...new Set(subnetAz.values())].map((az) => masters.filter((m) => m === az).length);
        assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `masters not spread: ${counts}`);
        for (const v of byType(r, T.volume)) {
            assert.equal(v.inputs.availabilityZone, eniAz.get(v.name.replace(/-data$/, "")), `${v.name} in another zone than its node`);
        }
        for (const a of byType(r, T.attachment)) {
            const base = a.name.replace(/-data-attachment$/, "");
            assert.equal(a.inputs.volumeId, idOf(r, T.volume, `${base}-data`));
            assert.equal(a.inputs.instanceId, idOf(r, T.instance, `${base}-instance`));
        }
        // Fixed node addresses are reserved so AWS never hands them to the load balancer or an endpoint.
        assert.equal(byType(r, T.reservation).length, cfg.zones);
        for (const res of byType(r, T.reservation)) assert.equal(res.inputs.reservationType, "explicit");
    });

    test(`${stack}: nodes survive replacement: fixed interface, AMI drift ignored, no secret in user data`, async () => {
        const { cfg, r } = await get(stack);
        const secrets = byType(r, "random:index/randomPassword:RandomPassword").map((p) => p.state.result as string);
        assert.equal(secrets.length, 3);
        for (const i of byType(r, T.instance)) {
            assert.equal(i.deleteBeforeReplace, true, `${i.name}: the interface can't be attached to two instances`);
            // Existing instances hold type, AMI and user data until `roll` names them (test/mock/rollout.test.ts).
            assert.deepEqual(i.ignoreChanges, ["instanceType", "creditSpecification", "userDataBase64", "ami"]);
            assert.equal(i.inputs.ami, cfg.amiId ?? MOCK_AMI);
            assert.equal(i.inputs.userData, undefined);
            const sent = Buffer.from(String(i.inputs.userDataBase64), "base64").length;
            assert.ok(sent > 0 && sent <= 16384, `${i.name}: user data of ${sent} bytes exceeds EC2's 16 KB`);
            const ud = userDataOf(i);
            assert.match(ud, /^#!/, "user data is a script");
            const node = i.name.replace(/-instance$/, "");
            assert.ok(ud.includes(node) && ud.includes(r.outputs.topology.nodes.find((n: any) => n.name === node).host), `${i.name}: user data is not this node's`);
            for (const s of secrets) assert.ok(!ud.includes(s), `${i.name}: a password is in the user data`);
        }
        const arch = r.invokes.find((x) => x.token === "aws:ec2/getAmi:getAmi")!.inputs.filters.find((f: any) => f.name === "architecture").values[0];
        assert.equal(arch, "arm64", `${cfg.instanceType} is Graviton`);
    });

    test(`${stack}: endpoints, load balancer and alarms`, async () => {
        const { cfg, r } = await get(stack);
        const endpoints = byType(r, T.endpoint);
        const gateway = endpoints.filter((e) => e.inputs.vpcEndpointType === "Gateway");
        assert.deepEqual(gateway.map((e) => e.inputs.serviceName), [`com.amazonaws.${REGION}.s3`]);
        const iface = endpoints.filter((e) => e.inputs.vpcEndpointType === "Interface");
        if (cfg.interfaceEndpoints) {
            assert.deepEqual(iface.map((e) => e.inputs.serviceName).sort(), INTERFACE_ENDPOINT_SERVICES.map((s) => `com.amazonaws.${REGION}.${s}`).sort());
            for (const e of iface) assert.equal(e.inputs.subnetIds.length, cfg.zones);
        } else {
            assert.deepEqual(iface.map((e) => [e.inputs.serviceName, e.inputs.subnetIds.length]), [[`com.amazonaws.${REGION}.ssm`, 1], [`com.amazonaws.${REGION}.logs`, 1]]);
        }
        const tg = one(r, T.targetGroup).inputs;
        assert.equal(tg.targetType, "ip");
        assert.equal(tg.preserveClientIp, "true");
        assert.equal(tg.port, cfg.port);
        assert.equal(one(r, T.loadBalancer).inputs.enableCrossZoneLoadBalancing, true);
        assert.deepEqual(byType(r, T.targetAttachment).map((a) => a.inputs.targetId).sort(), r.outputs.topology.nodes.map((n: any) => n.host).sort());

        // The Redis alarms (namespace RedisCluster) are asserted in monitoring.test.ts.
        const alarms = byType(r, T.alarm).filter((a) => a.inputs.namespace !== "RedisCluster");
        const nodeCount = cfg.shards * (1 + cfg.replicasPerShard);
        assert.equal(alarms.length, 3 * nodeCount + 1);
        const system = alarms.filter((a) => a.inputs.metricName === "StatusCheckFailed_System");
        assert.equal(system.length, nodeCount);
        for (const a of system) assert.ok(a.inputs.alarmActions.includes(`arn:aws:automate:${REGION}:ec2:recover`), `${a.name} lacks the recover action`);
        assert.equal(alarms.filter((a) => a.inputs.metricName === "StatusCheckFailed_Instance").length, nodeCount);
        assert.equal(alarms.filter((a) => a.inputs.metricName === "CPUUtilization" && a.inputs.threshold === cfg.cpuAlarmThresholdPercent).length, nodeCount);
        assert.equal(alarms.filter((a) => a.inputs.namespace === "AWS/NetworkELB" && a.inputs.metricName === "UnHealthyHostCount").length, 1);
    });

    test(`${stack}: node role reads only this cluster's parameters and writes only the backup prefix`, async () => {
        const { cfg, r } = await get(stack);
        const policy = JSON.parse(r.resources.find((x) => x.type === T.rolePolicy && x.name.endsWith("-node-policy"))!.inputs.policy);
        const ssm = policy.Statement.find((s: any) => s.Sid === "ReadClusterParameters");
        assert.deepEqual(ssm.Resource, [
            `arn:aws:ssm:${REGION}:123456789012:parameter/redis-cluster/${cfg.clusterName}`,
            `arn:aws:ssm:${REGION}:123456789012:parameter/redis-cluster/${cfg.clusterName}/*`,
        ]);
        for (const s of policy.Statement) {
            assert.equal(s.Effect, "Allow");
            const actions = [s.Action].flat();
            assert.ok(!actions.some((a: string) => a.endsWith(":*") || a === "*"), `wildcard action in ${s.Sid}`);
            assert.ok(!actions.includes("s3:DeleteObject"), "nodes may not delete backups");
            if (s.Sid !== "ReadClusterParameters") assert.ok(!actions.some((a: string) => /^ssm:GetParameter/.test(a)), `${s.Sid} reads parameters outside the cluster's path`);
            // Only the SSM agent's own calls, which AWS grants on "*" in AmazonSSMManagedInstanceCore, go unconditioned.
            if (s.Resource === "*" && !s.Condition) assert.deepEqual(actions, SSM_AGENT_ACTIONS, `${s.Sid} on every resource without a condition`);
        }
        // The flow-log service may assume its role only on behalf of this account (confused deputy).
        const flowTrust = JSON.parse(r.resources.find((x) => x.type === "aws:iam/role:Role" && x.name.endsWith("-flow-logs-role"))!.inputs.assumeRolePolicy);
        assert.deepEqual(flowTrust.Statement[0].Condition, { StringEquals: { "aws:SourceAccount": "123456789012" } });
        // Nor through a managed policy: AmazonSSMManagedInstanceCore grants ssm:GetParameter(s) on "*".
        assert.deepEqual(byType(r, "aws:iam/rolePolicyAttachment:RolePolicyAttachment").map((a) => a.inputs.policyArn),
            ["arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"]);
    });

    test(`${stack}: the key policy names who may use the key; the account only administers it`, async () => {
        const { r } = await get(stack);
        const kp = one(r, "aws:kms/keyPolicy:KeyPolicy");
        assert.equal(kp.inputs.keyId, one(r, T.kmsKey).state.keyId);
        const policy = JSON.parse(kp.inputs.policy);
        const roleArn = (suffix: string) => r.resources.find((x) => x.type === "aws:iam/role:Role" && x.name.endsWith(suffix))!.state.arn;
        const decrypters = new Set<string>();
        for (const s of policy.Statement) {
            assert.equal(s.Effect, "Allow");
            const actions = [s.Action].flat() as string[];
            const principals = [s.Principal.AWS].flat() as string[];
            if (principals.includes("arn:aws:iam::123456789012:root")) {
                assert.deepEqual(actions, KEY_ADMIN_ACTIONS, "the account gets more than key administration");
                assert.ok(!actions.some((a) => /Decrypt|Encrypt|GenerateDataKey|CreateGrant|\*/.test(a)), `${s.Sid}: the account may use the key`);
            }
            if (actions.includes("kms:Decrypt")) principals.forEach((p) => decrypters.add(p));
        }
        assert.deepEqual([...decrypters].sort(), [roleArn("-node-role"), roleArn("-dlm-role"), "arn:aws:iam::123456789012:user/test"].sort());
        const admins = policy.Statement.find((s: any) => s.Sid === "AdministratorsUseTheKeyThroughServices");
        assert.deepEqual(admins.Condition.StringEquals["kms:ViaService"], ["ssm", "ec2", "s3"].map((x) => `${x}.${REGION}.amazonaws.com`));
    });

    test(`${stack}: instances wait for their paths: endpoints, S3 route, egress rules, node and key policies`, async () => {
        const { r } = await get(stack);
        const must = [
            ...byType(r, T.endpoint), ...byType(r, "aws:ec2/routeTableAssociation:RouteTableAssociation"), ...byType(r, T.egress),
            one(r, "aws:kms/keyPolicy:KeyPolicy"), r.resources.find((x) => x.type === T.rolePolicy && x.name.endsWith("-node-policy"))!,
            ...byType(r, T.param), ...byType(r, "aws:s3/bucketObjectv2:BucketObjectv2"),
        ];
        assert.ok(byType(r, "aws:s3/bucketObjectv2:BucketObjectv2").length > 0, "no metrics collector object registered");
        for (const i of byType(r, T.instance)) {
            for (const m of must) assert.ok(i.dependencies.includes(m.ref), `${i.name} does not wait for ${m.name}`);
        }
    });
}
