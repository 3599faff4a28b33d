/**
 * What a real `pulumi up` checks and mocks do not: preview-time refusals
 * (zones, instance type, engine x AMI) with the reason, the principal the key
 * policy names, and every name and description the program sends AWS checked
 * against the API's pattern and length limit.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { byType, DEFAULT_AZS, readStack, Registered, runProgram, RunOptions, T, yamlToConfig } from "./harness";

const NS = "redis-cluster";
const dev = yamlToConfig(readStack("dev"));
const prod = yamlToConfig(readStack("prod"));

async function refused(config: Record<string, string>, opts: RunOptions, ...expected: RegExp[]) {
    let registered = -1;
    await assert.rejects(
        runProgram(config, { stack: "dev", ...opts }).then((r) => { registered = r.resources.length; }),
        (e: Error) => {
            assert.ok(e instanceof pulumi.RunError, `expected a RunError, got ${e.constructor.name}: ${e.message}`);
            for (const m of expected) assert.match(e.message, m);
            return true;
        },
    );
    assert.equal(registered, -1, "resources were declared before the refusal");
}

test("zones: one that does not offer the instance type is skipped, the next one by name is used", async () => {
    const r = await runProgram(dev, { stack: "dev", availabilityZones: DEFAULT_AZS.slice(0, 5), instanceTypeZones: ["us-east-1a", "us-east-1c", "us-east-1d", "us-east-1e"] });
    assert.deepEqual(byType(r, T.subnet).map((s) => s.inputs.availabilityZone), ["us-east-1a", "us-east-1c", "us-east-1d"]);
    const offerings = r.invokes.find((i) => i.token === "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings")!.inputs;
    assert.deepEqual(offerings, { locationType: "availability-zone", filters: [{ name: "instance-type", values: ["t4g.medium"] }] });
});

test("zones: too few usable ones fail preview with what each skipped zone lacks", () => refused(
    prod,
    { availabilityZones: DEFAULT_AZS.slice(0, 4), instanceTypeZones: ["us-east-1a", "us-east-1b", "us-east-1d"], endpointServiceZones: { ssmmessages: ["us-east-1a", "us-east-1c", "us-east-1d"] } },
    new RegExp(`^Invalid stack config:\\n - ${NS}:zones is 3, but only 2 of region us-east-1's zones can host the cluster \\(us-east-1a, us-east-1d; ` +
        `us-east-1b lacks the ssmmessages endpoint service; us-east-1c lacks instance type r7g.xlarge\\); set ${NS}:zones to at most 2, choose another ${NS}:instanceType ` +
        `or set ${NS}:interfaceEndpoints to false, or choose another region \\(aws:region\\)$`),
));

test("instance type: EBS without NVMe (Xen) fails preview, also for a family the static list misses", () => refused(
    dev, { ebsNvmeSupport: "unsupported" },
    new RegExp(`${NS}:instanceType t4g.medium attaches EBS volumes without NVMe \\(xen hypervisor\\)`),
));

test("instance type: a known Xen family is refused by the config check", () => refused(
    { ...dev, [`${NS}:instanceType`]: "m4.large" }, {},
    new RegExp(`${NS}:instanceType m4.large is a Xen \\(non-Nitro\\) type: its EBS volumes have no NVMe serial`),
));

test("engine: redis has no package on Amazon Linux 2023", () => refused(
    { ...dev, [`${NS}:engine`]: "redis" }, {},
    new RegExp(`${NS}:engine is redis, but Amazon Linux 2023 has no redis package`),
));

test("engine: valkey with a pinned AMI released before valkey was added", () => refused(
    { ...dev, [`${NS}:amiId`]: "ami-0aaaaaaaaaaaaaaaa" },
    { pinnedAmi: { name: "al2023-ami-2023.6.20250115.0-kernel-6.1-arm64", architecture: "arm64" } },
    new RegExp(`${NS}:engine is valkey, but ${NS}:amiId ami-0aaaaaaaaaaaaaaaa \\(al2023-ami-2023.6.20250115.0-kernel-6.1-arm64\\) is an Amazon Linux 2023 release of 20250115, before valkey was added`),
));

test("engine: the same old AMI is fine for redis6, and an x86_64 AMI on Graviton is refused", async () => {
    const old = { name: "al2023-ami-2023.6.20250115.0-kernel-6.1-arm64", architecture: "arm64" };
    const r = await runProgram({ ...dev, [`${NS}:amiId`]: "ami-0aaaaaaaaaaaaaaaa", [`${NS}:engine`]: "redis6" }, { stack: "dev", pinnedAmi: old });
    assert.ok(byType(r, T.instance).length > 0);
    await refused({ ...dev, [`${NS}:amiId`]: "ami-0aaaaaaaaaaaaaaaa" }, { pinnedAmi: { name: "al2023-ami-2023.9.20251110.1-kernel-6.1-x86_64", architecture: "x86_64" } },
        /amiId ami-0aaaaaaaaaaaaaaaa \(al2023-ami-2023\.9\.20251110\.1-kernel-6\.1-x86_64\) is x86_64, but redis-cluster:instanceType t4g.medium is arm64/);
});

const keyPolicyOf = (r: { resources: Registered[] }) => JSON.parse(byType(r as any, "aws:kms/keyPolicy:KeyPolicy")[0].inputs.policy);
const admins = (p: any) => p.Statement.find((s: any) => s.Sid === "AdministratorsUseTheKeyThroughServices").Principal.AWS;

test("key policy: an assumed-role deployer is named by its role ARN (with path), not the session", async () => {
    const r = await runProgram(dev, { stack: "dev", callerArn: "arn:aws:sts::123456789012:assumed-role/Deployer/ci-run-42" });
    assert.deepEqual(admins(keyPolicyOf(r)), ["arn:aws:iam::123456789012:role/ops-path/Deployer"]);
});

test("key policy: keyAdministratorArns replaces the deployer", async () => {
    const list = ["arn:aws:iam::123456789012:role/ci", "arn:aws:iam::123456789012:user/alice"];
    const r = await runProgram({ ...dev, [`${NS}:keyAdministratorArns`]: JSON.stringify(list) }, { stack: "dev" });
    assert.deepEqual(admins(keyPolicyOf(r)), list);
    await refused({ ...dev, [`${NS}:keyAdministratorArns`]: '["alice"]' }, {}, /keyAdministratorArns entry must be an IAM role or user ARN/);
});

test("two clusters in one account and region: neither snapshot policy targets the other's volumes", async () => {
    const a = await runProgram({ ...dev, [`${NS}:clusterName`]: "alpha" }, { stack: "dev" });
    const b = await runProgram({ ...dev, [`${NS}:clusterName`]: "beta" }, { stack: "dev" });
    const targets = (r: typeof a) => byType(r, T.dlm)[0].inputs.policyDetails.targetTags as Record<string, string>;
    const hit = (tagsOf: Record<string, string> | undefined, t: Record<string, string>) => Object.entries(t).some(([k, v]) => tagsOf?.[k] === v);
    for (const v of byType(b, T.volume)) assert.ok(!hit(v.inputs.tags, targets(a)), `alpha's policy targets ${v.name}`);
    for (const v of byType(a, T.volume)) assert.ok(!hit(v.inputs.tags, targets(b)), `beta's policy targets ${v.name}`);
});

// ---- names: every name, description and tag the program sends, against the API's rules ----

/** Pulumi's default autoname: the resource name, a dash and 7 random characters. */
const autoname = (r: Registered) => `${r.name}-abcdefg`;
/** The tag alphabet every service here accepts (IAM, KMS, Logs, SNS, S3 and ELB are the strictest; EC2 allows more). */
const TAG_CHARS = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;
/** EC2 security group and rule descriptions (CreateSecurityGroup GroupDescription). */
const SG_DESCRIPTION = /^[a-zA-Z0-9. _\-:/()#,@[\]+=&;{}!$*]*$/;
/** DLM ScheduleName / PolicyDescription (botocore dlm/2018-01-12 service-2.json). */
const DLM_TEXT = /^[0-9A-Za-z _-]+$/;

function nameProblems(r: Registered): string[] {
    const p: string[] = [];
    const check = (what: string, value: unknown, max: number, re?: RegExp) => {
        if (value === undefined) return;
        const v = String(value);
        if (v.length > max) p.push(`${r.name} ${what} is ${v.length} characters, above ${max}: ${v}`);
        if (re && !re.test(v)) p.push(`${r.name} ${what} ${JSON.stringify(v)} does not match ${re}`);
    };
    const i = r.inputs;
    for (const [k, v] of Object.entries((i.tags ?? {}) as Record<string, string>)) {
        check("tag key", k, 128, TAG_CHARS);
        check(`tag ${k}`, v, 256, TAG_CHARS);
        if (k.startsWith("aws:")) p.push(`${r.name}: tag key ${k} uses the reserved aws: prefix`);
    }
    switch (r.type) {
        case T.dlm:
            check("description", i.description, 500, DLM_TEXT);
            for (const s of i.policyDetails.schedules) {
                check("schedule name", s.name, 120, DLM_TEXT);
                for (const [k, v] of Object.entries(s.tagsToAdd ?? {})) { check("tagsToAdd key", k, 500); check("tagsToAdd value", v, 500); }
            }
            for (const [k, v] of Object.entries(i.policyDetails.targetTags)) { check("target tag key", k, 500); check("target tag value", v, 500); }
            break;
        case T.sg: check("description", i.description, 255, SG_DESCRIPTION); check("name", i.name ?? autoname(r), 255); break;
        case T.ingress: case T.egress: check("description", i.description, 255, SG_DESCRIPTION); break;
        case T.reservation: check("description", i.description, 255); break;
        case T.eni: check("description", i.description, 255); break;
        case "aws:iam/role:Role":
            check("name", i.name ?? autoname(r), 64, /^[\w+=,.@-]+$/);
            check("description", i.description, 1000, /^[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*$/);
            break;
        case "aws:iam/instanceProfile:InstanceProfile": check("name", i.name ?? autoname(r), 128, /^[\w+=,.@-]+$/); break;
        case T.rolePolicy: check("name", i.name ?? autoname(r), 128, /^[\w+=,.@-]+$/); break;
        case T.bucket: check("bucket name", i.bucket ?? autoname(r), 63, /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/); break;
        case T.loadBalancer: case T.targetGroup: check("name", i.name, 32, /^(?!internal-)[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/); break;
        case "aws:kms/alias:Alias": check("name", i.name, 256, /^alias\/(?!aws\/)[a-zA-Z0-9/_-]+$/); break;
        case T.kmsKey: check("description", i.description, 8192); break;
        case T.param: check("name", i.name, 1011, /^[a-zA-Z0-9_.\-/]+$/); check("description", i.description, 1024); break;
        case "aws:cloudwatch/logGroup:LogGroup": check("name", i.name, 512, /^[.\-_/#A-Za-z0-9]+$/); break;
        case T.alarm: check("name", i.name ?? autoname(r), 255); check("description", i.alarmDescription, 1024); break;
        case "aws:sns/topic:Topic": check("name", i.name ?? autoname(r), 256, /^[A-Za-z0-9_-]+$/); break;
        case "aws:cloudwatch/dashboard:Dashboard": check("name", i.dashboardName, 255, /^[A-Za-z0-9_-]+$/); break;
        case "aws:s3/bucketObjectv2:BucketObjectv2": check("key", i.key, 1024); break;
    }
    return p;
}

for (const [label, config] of [
    ["committed prod stack", prod],
    // The longest cluster name config allows, every optional feature on, the largest snapshot numbers.
    ["32-character cluster name, TLS, hourly snapshots keeping 1000", { ...prod, [`${NS}:clusterName`]: "payments-sessions-eu-west-1-prod", [`${NS}:snapshotIntervalHours`]: "1", [`${NS}:snapshotRetentionCount`]: "1000", [`${NS}:alarmEmail`]: "ops@example.com" }],
] as const) {
    test(`AWS names: ${label}: every name, description and tag within the API's pattern and length`, async () => {
        const r = await runProgram(config, { stack: "prod" });
        const checked = new Set(r.resources.map((x) => x.type));
        for (const t of [T.dlm, T.sg, T.ingress, "aws:iam/role:Role", T.bucket, T.loadBalancer, T.param, T.alarm]) assert.ok(checked.has(t), `no ${t} registered`);
        assert.deepEqual(r.resources.flatMap(nameProblems), []);
    });
}

test("AWS names: the rules catch what the review found (a comma in a DLM schedule name)", () => {
    const fake = { type: T.dlm, name: "x", inputs: { description: "ok", policyDetails: { schedules: [{ name: "every 24h, keep 7" }], targetTags: {} } } } as unknown as Registered;
    assert.deepEqual(nameProblems(fake), [`x schedule name "every 24h, keep 7" does not match ${DLM_TEXT}`]);
});
