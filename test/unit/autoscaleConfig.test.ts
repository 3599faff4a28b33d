import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, parseStackConfig, parseStackYaml, RawValue } from "../../components/config";
import { inMaintenanceWindow, parseMaintenanceWindow, runnerConfigProblems, s3Backend } from "../../components/autoscaleConfig";

const ctx = { project: "redis-cluster", stack: "unit" };
const parse = (values: Record<string, RawValue>) => parseStackConfig((k) => values[k], ctx);
const problems = (values: Record<string, RawValue>): string[] => {
    try { parse(values); } catch (e) { if (e instanceof ConfigError) return e.problems; throw e; }
    assert.fail(`expected a ConfigError for ${JSON.stringify(values)}`);
};

test("autoscale config: defaults follow ElastiCache's and the stack's shape", () => {
    const a = parse({ shards: 4, replicasPerShard: 2 }).autoscale;
    assert.deepEqual(a, {
        enabled: false, intervalSeconds: 60, targetMemoryPercent: 70, targetMasterCpuPercent: undefined, targetReplicaCpuPercent: undefined,
        minShards: 3, maxShards: 8, minReplicas: 2, maxReplicas: 2, scaleOutDatapoints: 3, scaleOutCooldownSeconds: 300,
        scaleInCooldownSeconds: 900, scaleInWindowSeconds: 900, disableScaleIn: false, scaleInMaintenanceWindow: undefined,
        runnerBackendUrl: undefined, runnerSecretArn: undefined, runnerSecretsKmsKeyArn: undefined, runnerInstanceType: "t4g.small", runnerSubnetId: undefined,
    });
});

test("autoscale config: a YAML mapping and the JSON string `pulumi config` hands over read alike", () => {
    const block = { enabled: true, maxShards: 6, targetMasterCpuPercent: 60, scaleInMaintenanceWindow: "Sun:03:00-sun:05:00" };
    const fromYaml = parse({ autoscale: block }).autoscale;
    const fromCli = parse({ autoscale: JSON.stringify({ ...block, maxShards: "6", enabled: "true" }) }).autoscale;
    assert.deepEqual(fromCli, fromYaml);
    assert.equal(fromYaml.maxShards, 6);
    assert.equal(fromYaml.scaleInMaintenanceWindow, "sun:03:00-sun:05:00");
    const yaml = "config:\n  redis-cluster:autoscale:\n    enabled: true\n    maxShards: 5\n";
    assert.equal(parseStackYaml(yaml, "s").autoscale.maxShards, 5);
});

test("autoscale config: one message per mistake, naming key, value and what is valid", () => {
    const cases: Array<[unknown, string, Record<string, RawValue>?]> = [
        ["yes", `redis-cluster:autoscale must be a mapping such as {"enabled": true, "maxShards": 6} (got "yes")`],
        [[1], `redis-cluster:autoscale must be a mapping such as {"enabled": true, "maxShards": 6} (got [1])`],
        [{ maxShard: 6 }, `redis-cluster:autoscale.maxShard is not a known key (known: enabled, intervalSeconds, targetMemoryPercent, targetMasterCpuPercent, targetReplicaCpuPercent, minShards, maxShards, minReplicas, maxReplicas, scaleOutDatapoints, scaleOutCooldownSeconds, scaleInCooldownSeconds, scaleInWindowSeconds, disableScaleIn, scaleInMaintenanceWindow, runnerBackendUrl, runnerSecretArn, runnerSecretsKmsKeyArn, runnerInstanceType, runnerSubnetId)`],
        [{ enabled: "on" }, `redis-cluster:autoscale.enabled must be true or false (got "on")`],
        [{ disableScaleIn: 1 }, `redis-cluster:autoscale.disableScaleIn must be true or false (got 1)`],
        [{ intervalSeconds: 0 }, `redis-cluster:autoscale.intervalSeconds must be an integer from 1 to 3600 (got 0)`],
        [{ targetMemoryPercent: 95 }, `redis-cluster:autoscale.targetMemoryPercent must be an integer from 10 to 90 (ElastiCache allows 35–70 for memory; above 90 leaves no room to move slots) (got 95)`],
        [{ targetMasterCpuPercent: 5 }, `redis-cluster:autoscale.targetMasterCpuPercent must be an integer from 10 to 90 (percent of one core) (got 5)`],
        [{ targetReplicaCpuPercent: "high" }, `redis-cluster:autoscale.targetReplicaCpuPercent must be an integer from 10 to 90 (percent of one core) (got "high")`],
        [{ minShards: 2 }, `redis-cluster:autoscale.minShards must be an integer from 3 to 500 (Redis Cluster needs at least 3 masters) (got 2)`],
        [{ maxShards: 501 }, `redis-cluster:autoscale.maxShards must be an integer from 3 to 500 (got 501)`],
        [{ minReplicas: 6 }, `redis-cluster:autoscale.minReplicas must be an integer from 0 to 5 (got 6)`],
        [{ maxReplicas: -1 }, `redis-cluster:autoscale.maxReplicas must be an integer from 0 to 5 (got -1)`],
        [{ scaleOutDatapoints: 0 }, `redis-cluster:autoscale.scaleOutDatapoints must be an integer from 1 to 60 (got 0)`],
        [{ scaleOutCooldownSeconds: 1.5 }, `redis-cluster:autoscale.scaleOutCooldownSeconds must be an integer from 0 to 86400 (got 1.5)`],
        [{ scaleInCooldownSeconds: -1 }, `redis-cluster:autoscale.scaleInCooldownSeconds must be an integer from 0 to 86400 (got -1)`],
        [{ scaleInWindowSeconds: 0 }, `redis-cluster:autoscale.scaleInWindowSeconds must be an integer from 1 to 86400 (got 0)`],
        [{ scaleInMaintenanceWindow: "sunday 3am" }, `redis-cluster:autoscale.scaleInMaintenanceWindow must be a UTC window such as sun:03:00-sun:05:00 (weekly) or 03:00-05:00 (daily), start ≠ end (got "sunday 3am")`],
        [{ minShards: 6, maxShards: 4 }, `redis-cluster:autoscale.minShards (6) cannot exceed redis-cluster:autoscale.maxShards (4)`],
        [{ minShards: 4 }, `redis-cluster:shards (3) must lie within redis-cluster:autoscale.minShards–redis-cluster:autoscale.maxShards (4–6): the autoscaler keeps the cluster inside them`],
        [{ minReplicas: 2, maxReplicas: 1 }, `redis-cluster:autoscale.minReplicas (2) cannot exceed redis-cluster:autoscale.maxReplicas (1)`],
        [{ minReplicas: 0, maxReplicas: 1 }, `redis-cluster:replicasPerShard (2) must lie within redis-cluster:autoscale.minReplicas–redis-cluster:autoscale.maxReplicas (0–1)`, { replicasPerShard: 2 }],
        [{ minReplicas: 0 }, `redis-cluster:autoscale.minReplicas (0) is below redis-cluster:minReplicasToWrite (1): a scale-in to it would refuse every write`, { minReplicasToWrite: 1 }],
        [{ enabled: true, maxShards: 300 }, `redis-cluster:autoscale.maxShards/maxReplicas (300/1) do not fit: `, { vpcCidr: "10.42.0.0/24" }],
    ];
    for (const [block, msg, extra] of cases) {
        const got = problems({ ...extra, autoscale: block as RawValue });
        assert.ok(got.some((p) => p === msg || (msg.endsWith(": ") && p.startsWith(msg))), `for ${JSON.stringify(block)} expected\n  ${msg}\ngot\n  ${got.join("\n  ")}`);
    }
});

test("autoscale config: maintenance windows, weekly and daily, across midnight and the week's end", () => {
    const at = (iso: string) => Date.parse(iso);
    const w = parseMaintenanceWindow("sun:23:00-mon:01:00")!;
    assert.ok(inMaintenanceWindow(w, at("2026-11-29T23:30:00Z"))); // a Sunday
    assert.ok(inMaintenanceWindow(w, at("2026-11-30T00:59:00Z")));
    assert.ok(!inMaintenanceWindow(w, at("2026-11-30T01:00:00Z")));
    const wrap = parseMaintenanceWindow("sat:23:00-sun:01:00")!;
    assert.ok(inMaintenanceWindow(wrap, at("2026-11-29T00:30:00Z")));
    assert.ok(inMaintenanceWindow(wrap, at("2026-11-28T23:30:00Z")));
    const daily = parseMaintenanceWindow("22:00-02:00")!;
    assert.ok(inMaintenanceWindow(daily, at("2026-12-01T23:00:00Z")));
    assert.ok(inMaintenanceWindow(daily, at("2026-12-02T01:00:00Z")));
    assert.ok(!inMaintenanceWindow(daily, at("2026-12-02T03:00:00Z")));
    assert.equal(parseMaintenanceWindow("03:00-03:00"), undefined);
});

const SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-autoscale/prod-AbCdEf";
const KEY = "arn:aws:kms:us-east-1:123456789012:key/0123abcd-4567-89ab-cdef-0123456789ab";

test("autoscale config: the runner's keys, one message per bad value naming key, value and what is valid", () => {
    const bad = (runner: Record<string, unknown>) => problems({ autoscale: { ...runner } });
    assert.deepEqual(bad({ runnerBackendUrl: "file://~/.pulumi" }), [
        `redis-cluster:autoscale.runnerBackendUrl must be the state backend URL the runner logs in to: s3://bucket[/path][?region=…] (self-managed) or https://api.pulumi.com (Pulumi Cloud); ` +
        `file:// and local paths are on your machine, not the runner's, and azblob:// or gs:// cannot be granted by an AWS role (got "file://~/.pulumi")`,
    ]);
    assert.deepEqual(bad({ runnerBackendUrl: "s3://My_Bucket" }), [
        `redis-cluster:autoscale.runnerBackendUrl must name an S3 bucket as s3://bucket[/path][?region=…], the bucket 3–63 lowercase letters, digits, dots or hyphens (got "s3://My_Bucket")`,
    ]);
    assert.deepEqual(bad({ runnerSecretArn: "redis-autoscale/prod" }), [
        `redis-cluster:autoscale.runnerSecretArn must be the ARN of a Secrets Manager secret, arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters> (the full ARN: IAM grants the exact secret) (got "redis-autoscale/prod")`,
    ]);
    assert.deepEqual(bad({ runnerSecretsKmsKeyArn: "alias/pulumi" }), [
        `redis-cluster:autoscale.runnerSecretsKmsKeyArn must be a KMS key ARN, arn:aws:kms:<region>:<account>:key/<key id> (the key of an awskms:// secrets provider; an alias cannot be granted) (got "alias/pulumi")`,
    ]);
    assert.deepEqual(bad({ runnerInstanceType: "t3.small" }), [
        `redis-cluster:autoscale.runnerInstanceType must be a Graviton (arm64) instance type such as t4g.small or m7g.medium: the runner runs Amazon Linux 2023 for arm64 (got "t3.small")`,
    ]);
    assert.deepEqual(bad({ runnerSubnetId: "my-subnet" }), [
        `redis-cluster:autoscale.runnerSubnetId must be a subnet id such as subnet-0123456789abcdef0 (got "my-subnet")`,
    ]);
    const ok = parse({ autoscale: { runnerBackendUrl: "s3://state.example-1/redis?region=eu-west-1", runnerSecretArn: SECRET, runnerSecretsKmsKeyArn: KEY, runnerInstanceType: "m7g.medium" } }).autoscale;
    assert.deepEqual([ok.runnerBackendUrl, ok.runnerSecretArn, ok.runnerSecretsKmsKeyArn, ok.runnerInstanceType], ["s3://state.example-1/redis?region=eu-west-1", SECRET, KEY, "m7g.medium"]);
    assert.deepEqual(s3Backend("s3://state.example-1/redis/?region=eu-west-1"), { bucket: "state.example-1", prefix: "redis/", region: "eu-west-1" });
    assert.deepEqual(s3Backend("s3://state-bucket"), { bucket: "state-bucket", prefix: "" });
});

test("autoscale config: enabled refuses a runner without its backend and secret (the stack only; local mode acts without a runner)", () => {
    const policy = (a: Record<string, unknown>) => parse({ autoscale: { enabled: true, ...a } }).autoscale;
    // Local mode and the tool parse the same block without complaint.
    assert.deepEqual(runnerConfigProblems(policy({}), { ns: "redis-cluster" }), [
        `redis-cluster:autoscale.enabled is true, which creates the AWS runner, but redis-cluster:autoscale.runnerBackendUrl is not set: the runner runs pulumi up unattended and must find the stack's state. ` +
        `Set it to the URL you log in to (pulumi whoami -v shows it), e.g. pulumi config set --path autoscale.runnerBackendUrl s3://my-state-bucket`,
        `redis-cluster:autoscale.enabled is true, which creates the AWS runner, but redis-cluster:autoscale.runnerSecretArn is not set: the runner needs a Secrets Manager secret holding the stack's passphrase (PULUMI_CONFIG_PASSPHRASE) to read the stack's secrets; ` +
        `create it (aws secretsmanager create-secret --name redis-autoscale/<stack> --secret-string …) and set its full ARN, or, with an s3:// backend and an awskms:// secrets provider, set redis-cluster:autoscale.runnerSecretsKmsKeyArn`,
    ]);
    assert.match(runnerConfigProblems(policy({ runnerBackendUrl: "https://api.pulumi.com" }), { ns: "redis-cluster" })[0], /a Pulumi access token \(PULUMI_ACCESS_TOKEN\)/);
    assert.deepEqual(runnerConfigProblems(policy({ runnerBackendUrl: "s3://state-bucket", runnerSecretsKmsKeyArn: KEY }), { ns: "redis-cluster" }), [], "an awskms:// provider needs no secret");
    assert.deepEqual(runnerConfigProblems(policy({ runnerBackendUrl: "https://api.pulumi.com", runnerSecretsKmsKeyArn: KEY }), { ns: "redis-cluster" }).length, 1, "a token has no KMS alternative");
    const full = { runnerBackendUrl: "s3://state-bucket", runnerSecretArn: SECRET };
    assert.deepEqual(runnerConfigProblems(policy(full), { ns: "redis-cluster" }), []);
    assert.match(runnerConfigProblems(policy(full), { ns: "redis-cluster", vpcId: "vpc-0123456789abcdef0" })[0],
        /^redis-cluster:autoscale.enabled is true in an existing VPC \(redis-cluster:vpcId\), but redis-cluster:autoscale.runnerSubnetId is not set: name a private subnet of that VPC with a route to a NAT gateway/);
    assert.match(runnerConfigProblems(policy({ ...full, runnerSubnetId: "subnet-0123456789abcdef0" }), { ns: "redis-cluster" })[0],
        /^redis-cluster:autoscale.runnerSubnetId is for an existing VPC .*remove it \(got "subnet-0123456789abcdef0"\)$/);
    assert.deepEqual(runnerConfigProblems(policy({ ...full, runnerSubnetId: "subnet-0123456789abcdef0" }), { ns: "redis-cluster", vpcId: "vpc-0123456789abcdef0" }), []);
    assert.deepEqual(runnerConfigProblems(parse({ autoscale: {} }).autoscale, { ns: "redis-cluster" }), [], "disabled: no runner, nothing required");
});
