/**
 * Runs the Pulumi program under `pulumi.runtime.setMocks` and records what it
 * registers: type, name, inputs, and the resource options the engine would see
 * (protect, retainOnDelete, ignoreChanges, deleteBeforeReplace, parent).
 *
 * Invokes the program makes are answered here; any other invoke THROWS (as
 * pulumi-awsx's tests do), so a new lookup can't slip in unmocked.
 *
 * Runs happen one after another in one process: each run calls setMocks with
 * a fresh monitor and waits until registrations stop before returning.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { StackConfig } from "../../components/config";
import { CONFIG_NAMESPACE } from "../../components/config";

export const ROOT = join(__dirname, "..", "..");
export const REGION = "us-east-1";
export const ACCOUNT = "123456789012";
export const DEFAULT_AZS = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"];
export const MOCK_AMI = "ami-0123456789abcdef0";
export const MOCK_S3_PREFIX_LIST = "pl-63a5400a";

export interface Registered {
    type: string;
    name: string;
    inputs: Record<string, any>;
    /**
     * The inputs the engine would send the provider: with `previous` (RunOptions), every
     * property named in ignoreChanges takes the previous run's value, as Pulumi takes the
     * state's value (https://www.pulumi.com/docs/iac/concepts/options/ignorechanges/);
     * a resource the previous run did not have is created with the program's inputs.
     */
    effectiveInputs: Record<string, any>;
    id: string;
    state: Record<string, any>;
    parent: string;
    protect: boolean;
    retainOnDelete: boolean;
    deleteBeforeReplace: boolean;
    ignoreChanges: string[];
    /** `type::name` of the resources this one waits for (explicit dependsOn, expanded from components). */
    dependencies: string[];
    /** `type::name`, as in other resources' dependencies. */
    ref: string;
}

export interface RunResult {
    resources: Registered[];
    invokes: { token: string; inputs: any }[];
    outputs: Record<string, any>;
    /** Names of outputs that were marked secret. */
    secretOutputs: string[];
}

export interface RunOptions {
    stack?: string;
    /** Zones the mocked region offers. */
    availabilityZones?: string[];
    /** Zones that offer the instance type (default: all of availabilityZones). */
    instanceTypeZones?: string[];
    /** Interface endpoint service -> zones that offer it (default: all of availabilityZones). */
    endpointServiceZones?: Record<string, string[]>;
    /** EbsInfo.NvmeSupport of the instance type. @default "required" */
    ebsNvmeSupport?: string;
    /** Name and architecture of a pinned AMI (getAmi by image-id). */
    pinnedAmi?: { name: string; architecture: string };
    /** ARN getCallerIdentity returns. @default an IAM user of ACCOUNT */
    callerArn?: string;
    /** Config keys (full, e.g. "redis-cluster:alarmEmail") set as secrets, as `pulumi config set --secret` does. */
    secretKeys?: string[];
    /** Extra invoke answers by token (an account with an existing VPC, say); return undefined to fall through. */
    invokes?: Record<string, (inputs: any) => any>;
    /** The outputs of the stack's last update, as a StackReference to the stack itself reads them. @default none (a new stack) */
    previousOutputs?: Record<string, unknown>;
    /** The previous deployment: its effective inputs are the "state" ignoreChanges falls back to. */
    previous?: RunResult;
}

const hex = (s: string, n: number) => createHash("sha256").update(s).digest("hex").slice(0, n);

/** Deterministic ids: the same resource name gets the same id in every run. */
function mockId(type: string, name: string): string {
    const prefix: Record<string, string> = {
        "aws:ec2/instance:Instance": "i-",
        "aws:ebs/volume:Volume": "vol-",
        "aws:ec2/networkInterface:NetworkInterface": "eni-",
        "aws:ec2/securityGroup:SecurityGroup": "sg-",
        "aws:ec2/subnet:Subnet": "subnet-",
        "aws:ec2/vpc:Vpc": "vpc-",
        "aws:ec2/routeTable:RouteTable": "rtb-",
        "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce-",
    };
    return `${prefix[type] ?? `${name}-id-`}${hex(`${type}/${name}`, 17)}`;
}

function mockState(type: string, name: string, id: string, inputs: Record<string, any>): Record<string, any> {
    const arn = `arn:aws:mock:${REGION}:${ACCOUNT}:${type.split(":")[1]}/${name}`;
    const s: Record<string, any> = { ...inputs, arn };
    switch (type) {
        case "aws:ec2/vpcEndpoint:VpcEndpoint": s.prefixListId = MOCK_S3_PREFIX_LIST; break;
        case "aws:lb/loadBalancer:LoadBalancer":
            s.dnsName = `${inputs.name}-${hex(name, 8)}.elb.${REGION}.amazonaws.com`;
            s.arnSuffix = `net/${inputs.name}/${hex(name, 16)}`;
            break;
        case "aws:lb/targetGroup:TargetGroup": s.arnSuffix = `targetgroup/${inputs.name}/${hex(name, 16)}`; break;
        case "aws:s3/bucket:Bucket":
            s.bucket = `${name}-${hex(name, 7)}`;
            s.arn = `arn:aws:s3:::${s.bucket}`;
            break;
        case "aws:kms/key:Key": s.keyId = hex(name, 32); s.arn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/${s.keyId}`; break;
        case "aws:iam/role:Role": s.name = name; s.arn = `arn:aws:iam::${ACCOUNT}:role/${name}`; break;
        case "aws:iam/instanceProfile:InstanceProfile": s.name = name; break;
        case "aws:cloudwatch/logGroup:LogGroup": s.arn = `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:${inputs.name}`; break;
        case "random:index/randomPassword:RandomPassword": s.result = `pw${hex(name, 38)}`; break;
        case "tls:index/privateKey:PrivateKey": s.privateKeyPem = `-----BEGIN PRIVATE KEY-----\n${hex(name, 40)}\n-----END PRIVATE KEY-----\n`; break;
        case "tls:index/certRequest:CertRequest": s.certRequestPem = `-----BEGIN CERTIFICATE REQUEST-----\n${hex(name, 40)}\n-----END CERTIFICATE REQUEST-----\n`; break;
        case "tls:index/selfSignedCert:SelfSignedCert":
        case "tls:index/locallySignedCert:LocallySignedCert":
            s.certPem = `-----BEGIN CERTIFICATE-----\n${hex(name, 40)}\n-----END CERTIFICATE-----\n`;
            break;
        case "aws:ec2/instance:Instance": s.privateIp = undefined; break;
    }
    void id;
    return s;
}

/** Stack YAML -> the string map Pulumi hands the program (objects and lists as JSON). */
export function yamlToConfig(text: string): Record<string, string> {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const YAML = require("yaml") as typeof import("yaml");
    const doc = (YAML.parse(text) ?? {}) as { config?: Record<string, unknown> };
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(doc.config ?? {})) {
        out[k] = typeof v === "string" ? v : JSON.stringify(v);
    }
    return out;
}

export function readStack(stack: string): string {
    return readFileSync(join(ROOT, `Pulumi.${stack}.yaml`), "utf8");
}

/** A StackConfig as config strings under the namespace (for runs that start from a typed config). */
export function configToMap(cfg: Partial<StackConfig>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(cfg)) {
        if (v === undefined) continue;
        out[`${CONFIG_NAMESPACE}:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
    }
    return out;
}

async function settle(count: () => number): Promise<void> {
    let last = -1;
    let stable = 0;
    while (stable < 3) {
        await new Promise((r) => setTimeout(r, 5));
        const n = count();
        stable = n === last ? stable + 1 : 0;
        last = n;
    }
}

async function resolve(v: unknown): Promise<{ value: any; secret: boolean }> {
    if (pulumi.Output.isInstance(v)) {
        const o = v as pulumi.Output<unknown>;
        const secret = await (o as unknown as { isSecret: Promise<boolean> }).isSecret;
        const value = await new Promise((r) => o.apply((x) => { r(x); return x; }));
        return { value, secret };
    }
    return { value: v, secret: false };
}

/**
 * Runs index.ts (loadConfig -> lookupEnvironment -> RedisCluster) with the given
 * config map. Rejects with the program's error.
 */
export async function runProgram(config: Record<string, string>, opts: RunOptions = {}): Promise<RunResult> {
    const stack = opts.stack ?? "test";
    const azs = opts.availabilityZones ?? DEFAULT_AZS.slice(0, 3);
    const resources: Registered[] = [];
    const invokes: { token: string; inputs: any }[] = [];
    const options = new Map<string, Pick<Registered, "parent" | "protect" | "retainOnDelete" | "deleteBeforeReplace" | "ignoreChanges" | "dependencies">>();

    await pulumi.runtime.setMocks({
        newResource(args) {
            if (args.type === "pulumi:pulumi:StackReference") {
                return { id: args.inputs.name, state: { name: args.inputs.name, outputs: opts.previousOutputs ?? {}, secretOutputNames: [] } };
            }
            const id = mockId(args.type, args.name);
            const o = options.get(`${args.type}::${args.name}`)!;
            const old = opts.previous?.resources.find((x) => x.type === args.type && x.name === args.name);
            const effectiveInputs = { ...args.inputs };
            if (old) {
                for (const path of o.ignoreChanges) {
                    if (path.includes(".") || path.includes("[")) throw new Error(`harness: nested ignoreChanges path ${path} is not modelled`);
                    if (path in old.effectiveInputs) effectiveInputs[path] = old.effectiveInputs[path];
                    else delete effectiveInputs[path];
                }
            }
            const state = mockState(args.type, args.name, id, effectiveInputs);
            resources.push({ type: args.type, name: args.name, inputs: args.inputs, effectiveInputs, id, state, ref: `${args.type}::${args.name}`, ...o });
            return { id, state };
        },
        call(args) {
            invokes.push({ token: args.token, inputs: args.inputs });
            const extra = opts.invokes?.[args.token]?.(args.inputs);
            if (extra !== undefined) return extra;
            switch (args.token) {
                case "aws:index/getRegion:getRegion": return { region: REGION, name: REGION, id: REGION, endpoint: `ec2.${REGION}.amazonaws.com`, description: "US East (N. Virginia)" };
                case "aws:index/getCallerIdentity:getCallerIdentity": return { accountId: ACCOUNT, arn: opts.callerArn ?? `arn:aws:iam::${ACCOUNT}:user/test`, userId: "AIDATEST", id: ACCOUNT };
                case "aws:iam/getSessionContext:getSessionContext": {
                    const m = /^arn:aws:sts::(\d+):assumed-role\/([^/]+)\/(.+)$/.exec(args.inputs.arn)!;
                    return { arn: args.inputs.arn, issuerArn: `arn:aws:iam::${m[1]}:role/ops-path/${m[2]}`, issuerName: m[2], sessionName: m[3], issuerId: "AROATEST", id: args.inputs.arn };
                }
                case "aws:ec2/getInstanceType:getInstanceType":
                    return { instanceType: args.inputs.instanceType, ebsNvmeSupport: opts.ebsNvmeSupport ?? "required", hypervisor: opts.ebsNvmeSupport === "unsupported" ? "xen" : "nitro", id: args.inputs.instanceType };
                case "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": {
                    const type = args.inputs.filters[0].values[0];
                    const locs = opts.instanceTypeZones ?? azs;
                    return { locations: locs, instanceTypes: locs.map(() => type), locationTypes: locs.map(() => "availability-zone"), id: REGION };
                }
                case "aws:ec2/getVpcEndpointService:getVpcEndpointService": {
                    const svc = args.inputs.service as string;
                    return { service: svc, serviceName: `com.amazonaws.${REGION}.${svc}`, serviceType: "Interface", availabilityZones: opts.endpointServiceZones?.[svc] ?? azs, id: svc };
                }
                case "aws:index/getPartition:getPartition": return { partition: "aws", dnsSuffix: "amazonaws.com", reverseDnsPrefix: "com.amazonaws", id: "aws" };
                case "aws:index/getAvailabilityZones:getAvailabilityZones": return { names: azs, zoneIds: azs.map((_, i) => `use1-az${i + 1}`), id: REGION };
                case "aws:ec2/getAmi:getAmi": {
                    const filters = args.inputs.filters as { name: string; values: string[] }[];
                    const byId = filters.find((f) => f.name === "image-id")?.values[0];
                    if (byId) {
                        const p = opts.pinnedAmi ?? { name: "al2023-ami-2023.9.20251110.1-kernel-6.1-arm64", architecture: "arm64" };
                        return { id: byId, name: p.name, architecture: p.architecture };
                    }
                    const arch = filters.find((f) => f.name === "architecture")?.values[0];
                    return { id: MOCK_AMI, architecture: arch, name: `al2023-ami-2023.6.20250101.0-kernel-6.1-${arch}` };
                }
            }
            throw new Error(`unmocked invoke ${args.token}(${JSON.stringify(args.inputs)})`);
        },
    }, "redis-cluster", stack, false, "organization");

    // Record the options of every registration, as the engine receives them.
    const monitor = pulumi.runtime.getMonitor() as any;
    const original = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, cb: any) => {
        options.set(`${req.getType()}::${req.getName()}`, {
            parent: req.getParent(),
            protect: req.getProtect() === true,
            retainOnDelete: req.getRetainondelete() === true,
            deleteBeforeReplace: req.getDeletebeforereplace() === true,
            ignoreChanges: req.getIgnorechangesList(),
            // urn:pulumi:<stack>::<project>::<parent types$>type::name -> type::name
            dependencies: (req.getDependenciesList() as string[]).map((u) => { const [, , t, n] = u.split("::"); return `${t.split("$").at(-1)}::${n}`; }),
        });
        return original(req, cb);
    };

    pulumi.runtime.setAllConfig(config, opts.secretKeys ?? []);
    // A fresh copy of the program per run; the components themselves hold no module state.
    const programPath = require.resolve(join(ROOT, "index.ts"));
    delete require.cache[programPath];
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const program = require(programPath) as () => Promise<Record<string, unknown>>;
    const raw = await program();
    const outputs: Record<string, any> = {};
    const secretOutputs: string[] = [];
    for (const [k, v] of Object.entries(raw)) {
        const r = await resolve(v);
        outputs[k] = r.value;
        if (r.secret) secretOutputs.push(k);
    }
    await settle(() => resources.length);
    return { resources, invokes, outputs, secretOutputs };
}

/** Runs one committed stack file. */
export function runStack(stack: string, extra: Record<string, string> = {}, opts: RunOptions = {}): Promise<RunResult> {
    return runProgram({ ...yamlToConfig(readStack(stack)), ...extra }, { stack, ...opts });
}

export const byType = (r: RunResult, type: string) => r.resources.filter((x) => x.type === type);

/** The script an instance boots with: its `userDataBase64`, gunzipped. */
export function userDataOf(instance: Registered): string {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { gunzipSync } = require("node:zlib") as typeof import("node:zlib");
    return gunzipSync(Buffer.from(String(instance.inputs.userDataBase64), "base64")).toString("utf8");
}
export const T = {
    instance: "aws:ec2/instance:Instance",
    eni: "aws:ec2/networkInterface:NetworkInterface",
    volume: "aws:ebs/volume:Volume",
    attachment: "aws:ec2/volumeAttachment:VolumeAttachment",
    subnet: "aws:ec2/subnet:Subnet",
    sg: "aws:ec2/securityGroup:SecurityGroup",
    ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    bucket: "aws:s3/bucket:Bucket",
    bucketPolicy: "aws:s3/bucketPolicy:BucketPolicy",
    publicAccess: "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    sse: "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    versioning: "aws:s3/bucketVersioning:BucketVersioning",
    lifecycle: "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    endpoint: "aws:ec2/vpcEndpoint:VpcEndpoint",
    alarm: "aws:cloudwatch/metricAlarm:MetricAlarm",
    param: "aws:ssm/parameter:Parameter",
    kmsKey: "aws:kms/key:Key",
    targetAttachment: "aws:lb/targetGroupAttachment:TargetGroupAttachment",
    targetGroup: "aws:lb/targetGroup:TargetGroup",
    loadBalancer: "aws:lb/loadBalancer:LoadBalancer",
    dlm: "aws:dlm/lifecyclePolicy:LifecyclePolicy",
    rolePolicy: "aws:iam/rolePolicy:RolePolicy",
    topicSubscription: "aws:sns/topicSubscription:TopicSubscription",
    reservation: "aws:ec2/subnetCidrReservation:SubnetCidrReservation",
} as const;
