/**
 * Pure pieces of the AWS readiness work: byte-stable user data, zone choice,
 * instance-type and engine x AMI checks, engine detection from INFO.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { gzipUserData } from "../../components/bootstrap/userData";
import { chooseZones } from "../../components/environment";
import { ConfigError, parseStackConfig } from "../../components/config";
import { al2023ReleaseDate, engineAmiProblems, isXenInstanceType } from "../../components/plan/ami";
import { dlmScheduleName } from "../../components/naming";
import { engineOf, engineLabel } from "../../scripts/plan/engine";

/** A fixed 36 KB script-like text: the same on every machine, so its compressed bytes can be pinned. */
const CORPUS = Array.from({ length: 600 }, (_, i) => `  [[ -n \${VAR_${i % 37}:-} ]] && log "step ${i}: value ${(i * 7919) % 100003}" || true`).join("\n") + "\n";
/** gzipUserData(CORPUS), measured once with fflate 0.8.2 (see the first test). */
const PINNED_SHA256 = "bb7f0920ebcb93664407af18fddd875df34382b6f4b34785f2ae889871a8894b";
const PINNED_LENGTH = 5388;

describe("user data bytes are a pure function of the script", () => {
    test("pinned: the same bytes on every OS and Node version (fflate, fixed gzip header)", () => {
        const gz = Buffer.from(gzipUserData(CORPUS), "base64");
        // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=2 (level 9) OS=3: no byte depends on the machine or the clock.
        assert.equal(gz.subarray(0, 10).toString("hex"), "1f8b0800000000000203");
        // Changing this hash means the compressor's output changed: every running node would be
        // stopped and started by the next `pulumi up`. Only update it together with a planned roll.
        assert.equal(createHash("sha256").update(gz).digest("hex"), PINNED_SHA256);
        assert.equal(gz.length, PINNED_LENGTH);
        assert.equal(gunzipSync(gz).toString("utf8"), CORPUS, "cloud-init (zlib) inflates it to the script");
    });
    test("the same script gives the same bytes; one character more does not", () => {
        assert.equal(gzipUserData(CORPUS), gzipUserData(CORPUS));
        assert.notEqual(gzipUserData(CORPUS + "#"), gzipUserData(CORPUS));
    });
});

describe("zones", () => {
    const req = (offeredIn: string[], endpointServices: Record<string, string[]> = {}) => ({ instanceType: "r7g.large", offeredIn, endpointServices });
    test("the first zones by name that offer the instance type and every endpoint service", () => {
        assert.deepEqual(chooseZones(["us-east-1e", "us-east-1a", "us-east-1b", "us-east-1c"], 3, "us-east-1", req(["us-east-1a", "us-east-1c", "us-east-1e"], { ssm: ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"] })),
            ["us-east-1a", "us-east-1c", "us-east-1e"]);
    });
    test("too few: the error names each skipped zone and what it lacks", () => {
        assert.throws(() => chooseZones(["a1", "a2", "a3"], 3, "r", req(["a1", "a2"], { ssm: ["a1", "a3"], logs: ["a1", "a2", "a3"] })),
            (e: ConfigError) => e.problems[0] === "redis-cluster:zones is 3, but only 1 of region r's zones can host the cluster (a1; a2 lacks the ssm endpoint service; a3 lacks instance type r7g.large); " +
                "set redis-cluster:zones to at most 1, choose another redis-cluster:instanceType or set redis-cluster:interfaceEndpoints to false, or choose another region (aws:region)");
    });
});

describe("instance types and AMIs", () => {
    test("Xen families are known; Nitro ones and .metal are not Xen", () => {
        for (const t of ["t2.micro", "m4.large", "r4.xlarge", "i3.large", "c4.2xlarge", "x1e.xlarge"]) assert.ok(isXenInstanceType(t), t);
        for (const t of ["t3.micro", "t4g.medium", "r7g.large", "i3en.large", "i3.metal", "m5.large", "p3dn.24xlarge"]) assert.ok(!isXenInstanceType(t), t);
    });
    test("config refuses a Xen type with the reason and a way out", () => {
        assert.throws(() => parseStackConfig((k) => ({ instanceType: "t2.medium" } as Record<string, string>)[k], { project: "p", stack: "s" }),
            (e: ConfigError) => e.problems[0].startsWith("redis-cluster:instanceType t2.medium is a Xen (non-Nitro) type: its EBS volumes have no NVMe serial"));
    });
    test("a new stack runs valkey", () => assert.equal(parseStackConfig(() => undefined, { project: "p", stack: "s" }).engine, "valkey"));
    test("AL2023 release dates from AMI names", () => {
        assert.equal(al2023ReleaseDate("al2023-ami-2023.6.20250203.1-kernel-6.1-arm64"), "20250203");
        assert.equal(al2023ReleaseDate("al2023-ami-minimal-2023.5.20240624.0-kernel-6.1-x86_64"), "20240624");
        assert.equal(al2023ReleaseDate("amzn2-ami-kernel-5.10-hvm-2.0.20240620.0-x86_64-gp2"), undefined);
    });
    test("valkey needs an AMI from 2023.6.20250203 on; a custom image is a warning, not a refusal", () => {
        const base = { engine: "valkey", amiId: "ami-1", amiArchitecture: "arm64", instanceType: "r7g.large" };
        assert.deepEqual(engineAmiProblems({ ...base, amiName: "al2023-ami-2023.6.20250203.1-kernel-6.1-arm64" }), { errors: [], warnings: [] });
        assert.equal(engineAmiProblems({ ...base, amiName: "al2023-ami-2023.6.20250128.0-kernel-6.1-arm64" }).errors.length, 1);
        assert.equal(engineAmiProblems({ ...base, engine: "redis6", amiName: "al2023-ami-2023.3.20240219.0-kernel-6.1-arm64" }).errors.length, 0);
        const custom = engineAmiProblems({ ...base, amiName: "golden-image-7" });
        assert.deepEqual(custom.errors, []);
        assert.match(custom.warnings[0], /not an Amazon Linux 2023 image/);
    });
    test("DLM schedule names stay within [0-9A-Za-z _-]", () => {
        for (const [h, n] of [[24, 7], [1, 1000], [12, 14]]) assert.match(dlmScheduleName(h, n), /^[0-9A-Za-z _-]{1,120}$/);
    });
});

describe("engineOf: which engine a node runs, from INFO server", () => {
    test("Valkey 8 reports redis_version 7.2.4; its own release is valkey_version", () => {
        const e = engineOf({ redis_version: "7.2.4", server_name: "valkey", valkey_version: "8.0.2", redis_mode: "cluster" });
        assert.deepEqual(e, { name: "valkey", version: "8.0.2", compatVersion: "7.2.4" });
        assert.equal(engineLabel(e), "valkey 8.0.2");
    });
    test("Redis 6.2 and 7.0 have neither field", () => {
        assert.deepEqual(engineOf({ redis_version: "6.2.14", redis_mode: "cluster" }), { name: "redis", version: "6.2.14", compatVersion: "6.2.14" });
        assert.equal(engineLabel(engineOf({ redis_version: "7.0.15" })), "redis 7.0.15");
    });
});
