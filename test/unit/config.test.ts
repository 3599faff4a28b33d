import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, KNOWN_KEYS, parseStackConfig, parseStackYaml, RawValue, unknownKeyProblems } from "../../components/config";
import { chooseZones } from "../../components/environment";
import { architectureOf, isBurstable } from "../../components/plan/ami";
import { awsName32 } from "../../components/naming";

const ctx = { project: "redis-cluster", stack: "unit" };
const parse = (values: Record<string, RawValue>) => parseStackConfig((k) => values[k], ctx);
const problems = (values: Record<string, RawValue>): string[] => {
    try { parse(values); } catch (e) { if (e instanceof ConfigError) return e.problems; throw e; }
    assert.fail(`expected a ConfigError for ${JSON.stringify(values)}`);
};

test("config: defaults", () => {
    const c = parse({});
    assert.equal(c.clusterName, "redis-cluster-unit");
    assert.equal(c.shards, 3);
    assert.equal(c.replicasPerShard, 1);
    assert.equal(c.zones, 3);
    assert.equal(c.port, 6379);
    assert.equal(c.tls, false);
    assert.equal(c.vpcCidr, "10.42.0.0/16");
    assert.deepEqual(c.clientCidrs, []);
    assert.equal(c.interfaceEndpoints, true);
    assert.equal(c.protectData, false);
});

test("config: strings from `pulumi config` and typed YAML values are read alike", () => {
    const fromCli = parse({ shards: "4", tls: "true", clientCidrs: '["10.0.0.0/8","192.168.0.0/16"]' });
    const fromYaml = parse({ shards: 4, tls: true, clientCidrs: ["10.0.0.0/8", "192.168.0.0/16"] });
    assert.deepEqual(fromCli, fromYaml);
    assert.deepEqual(parse({ clientCidrs: "10.0.0.0/8, 192.168.0.0/16" }).clientCidrs, ["10.0.0.0/8", "192.168.0.0/16"]);
});

test("config: every committed stack file parses, with the differences real teams make", () => {
    const read = (s: string) => parseStackYaml(readFileSync(join(__dirname, "..", "..", `Pulumi.${s}.yaml`), "utf8"), s);
    const dev = read("dev"), staging = read("staging"), prod = read("prod");
    assert.ok(dev.replicasPerShard <= 1 && dev.backupBucketForceDestroy && !dev.interfaceEndpoints && !dev.protectData);
    assert.equal(staging.tls, true);
    assert.ok(prod.shards >= 3 && prod.replicasPerShard >= 2 && prod.protectData && prod.tls && !prod.backupBucketForceDestroy);
    assert.ok(prod.dataVolumeSizeGiB > dev.dataVolumeSizeGiB && prod.backupExpirationDays > dev.backupExpirationDays);
    assert.equal(prod.amiId, undefined, "no invented AMI id in a committed config");
    for (const c of [dev, staging, prod]) assert.ok(!c.clientCidrs.includes("0.0.0.0/0"));
});

test("config: a `secure:` alarm e-mail in a stack file is accepted and stays opaque", () => {
    const yaml = "config:\n  redis-cluster:alarmEmail:\n    secure: AAABAKx1c2VjcmV0\n  redis-cluster:shards: 3\n";
    assert.equal(parseStackYaml(yaml, "s").alarmEmail, "<secret>");
    const bad = "config:\n  redis-cluster:shards:\n    secure: AAABAKx1c2VjcmV0\n";
    assert.throws(() => parseStackYaml(bad, "s"), /redis-cluster:shards must be an integer from 3 to 500/);
});

test("config: one message per mistake, naming key, value and what is valid", () => {
    const cases: Array<[Record<string, RawValue>, string]> = [
        [{ shards: 2 }, `redis-cluster:shards must be an integer from 3 to 500 (Redis Cluster needs at least 3 masters to keep a majority through one failure) (got 2)`],
        [{ replicasPerShard: -1 }, `redis-cluster:replicasPerShard must be an integer from 0 to 5 (got -1)`],
        [{ zones: 7 }, `redis-cluster:zones must be an integer from 1 to 6 (got 7)`],
        [{ vpcCidr: "10.32.0.0/12" }, `redis-cluster:vpcCidr prefix must be /16 to /24, as AWS allows for a VPC that holds 3 subnets (got "10.32.0.0/12")`],
        [{ vpcCidr: "10.42.0.1/16" }, `redis-cluster:vpcCidr must be an IPv4 CIDR such as 10.42.0.0/16 (got "10.42.0.1/16")`],
        [{ clientCidrs: ["10.0.0.0/8", "10.0.0.0/8"] }, `redis-cluster:clientCidrs lists "10.0.0.0/8" more than once`],
        [{ clientSecurityGroupIds: ["sg-0123456789abcdef0", "sg-0123456789abcdef0"] }, `redis-cluster:clientSecurityGroupIds lists "sg-0123456789abcdef0" more than once`],
        [{ dataVolumeSizeGiB: 10, dataVolumeIops: 6000 }, `redis-cluster:dataVolumeIops may be at most 500 per GiB on gp3: 10 GiB allows 5000 (got 6000); raise redis-cluster:dataVolumeSizeGiB or lower the IOPS`],
        [{ shards: 40, replicasPerShard: 5, vpcCidr: "10.9.0.0/22" }, `redis-cluster:shards × (1 + redis-cluster:replicasPerShard) = 40 × 6 nodes do not fit the fixed node addresses of redis-cluster:vpcCidr "10.9.0.0/22" over redis-cluster:zones 3 (each zone's subnet holds 62 node addresses, 6 reserved per shard): at most 30 shards fit with 5 replicas per shard, or use a vpcCidr of /21 or larger (e.g. "10.9.0.0/21"), or more redis-cluster:zones`],
        [{ protectData: true, backupBucketForceDestroy: true }, `redis-cluster:protectData and redis-cluster:backupBucketForceDestroy are both true: a protected bucket cannot be force-destroyed; set one of them to false`],
    ];
    for (const [values, message] of cases) assert.deepEqual(problems(values), [message], JSON.stringify(values));
});

test("config: the placement check waits until the shape keys are valid on their own", () => {
    // An invalid vpcCidr is reported once, not also as "does not fit".
    assert.equal(problems({ vpcCidr: "10.32.0.0/12", shards: 400 }).length, 1);
});

test("zones: a region with too few zones fails with the key and what would fit", () => {
    assert.deepEqual(chooseZones(["eu-west-3c", "eu-west-3a", "eu-west-3b"], 2, "eu-west-3"), ["eu-west-3a", "eu-west-3b"]);
    assert.throws(() => chooseZones(["us-west-1a", "us-west-1c"], 3, "us-west-1"),
        (e: ConfigError) => e.problems[0] === "redis-cluster:zones is 3, but region us-west-1 offers 2 availability zones (us-west-1a, us-west-1c); set redis-cluster:zones to at most 2 or choose another region (aws:region)");
});

test("ami: architecture follows the instance family", () => {
    const cases: Array<[string, string]> = [
        ["t4g.medium", "arm64"], ["r7g.large", "arm64"], ["m7gd.xlarge", "arm64"], ["c7gn.large", "arm64"], ["x2gd.large", "arm64"],
        ["is4gen.large", "arm64"], ["a1.large", "arm64"], ["r8g.large", "arm64"],
        ["m7i.large", "x86_64"], ["r7a.large", "x86_64"], ["g4dn.xlarge", "x86_64"], ["c6in.large", "x86_64"], ["t3.medium", "x86_64"], ["r7iz.large", "x86_64"],
    ];
    for (const [type, arch] of cases) assert.equal(architectureOf(type), arch, type);
    assert.equal(isBurstable("t4g.medium"), true);
    assert.equal(isBurstable("r7g.large"), false);
});

test("naming: AWS 32-character names keep their suffix", () => {
    assert.equal(awsName32("redis-cluster-dev", "nlb"), "redis-cluster-dev-nlb");
    const long = awsName32("a-very-long-cluster-name-of-32ch", "nlb");
    assert.ok(long.length <= 32, long);
    assert.ok(long.endsWith("-nlb"));
    assert.ok(!/--/.test(awsName32("abcdefghijklmnopqrstuvwxyz-b-cdefg", "tg")));
});

test("config: alarm thresholds default to AWS's guidance and are checked", () => {
    const c = parse({});
    assert.deepEqual([c.alarmMemoryWarningPercent, c.alarmMemoryCriticalPercent, c.alarmEngineCpuPercent, c.alarmReplicationLagSeconds, c.alarmDataVolumePercent, c.alarmBackupMaxAgeHours, c.backupVerifyMaxAgeDays], [80, 90, 90, 30, 80, 26, 7]);
    assert.deepEqual(problems({ alarmMemoryWarningPercent: 90, alarmMemoryCriticalPercent: 85 }), ["redis-cluster:alarmMemoryCriticalPercent (85) must be above redis-cluster:alarmMemoryWarningPercent (90)"]);
    assert.deepEqual(problems({ alarmEngineCpuPercent: 150 }), ["redis-cluster:alarmEngineCpuPercent must be an integer from 1 to 100 (percent of one core: the engine runs commands on one thread) (got 150)"]);
});

test("KNOWN_KEYS is exactly the keys parseStackConfig reads into StackConfig", () => {
    // The compiler ties the list to the StackConfig type (satisfies, EVERY_KEY_LISTED); this ties it to what the parser returns.
    assert.deepEqual(Object.keys(parse({})).sort(), [...KNOWN_KEYS].sort());
});

test("unknownKeyProblems: a key of our namespace the parser does not read, and nothing else", () => {
    assert.deepEqual(unknownKeyProblems(["redis-cluster:shards", "aws:region", "redis-cluster:shard"]).map((p) => p.split(" (known")[0]), ["redis-cluster:shard is not a known key"]);
    assert.throws(() => parseStackYaml("config:\n  redis-cluster:shards: 2\n  redis-cluster:shard: 4\n", "dev"),
        (e: ConfigError) => e.problems.length === 2 && /shards/.test(e.problems[0]) && /^redis-cluster:shard is not a known key \(known: clusterName,/.test(e.problems[1]));
});
