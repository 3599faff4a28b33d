/**
 * Stack configs the bootstrap tests run against: every committed
 * `Pulumi.<stack>.yaml`, plus a TLS variant when none of them has TLS on, so
 * both paths are always exercised. Before any stack file is committed, the
 * defaults of parseStackConfig stand in.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { parseStackConfig, parseStackYaml, StackConfig } from "../../components/config";

export const REPO_ROOT = join(__dirname, "..", "..");

export interface TestStack {
    /** Stack name, with "+tls" when TLS was switched on for the test. */
    name: string;
    config: StackConfig;
    /** `aws:region` of the stack file, when set. */
    region?: string;
}

/** Names of committed stack files (`Pulumi.<stack>.yaml`, not Pulumi.yaml). */
export function committedStackNames(root = REPO_ROOT): string[] {
    return readdirSync(root)
        .map((f) => /^Pulumi\.(.+)\.ya?ml$/.exec(f)?.[1])
        .filter((s): s is string => s !== undefined)
        .sort();
}

export function loadStack(stack: string, root = REPO_ROOT): TestStack {
    const file = ["yaml", "yml"].map((e) => join(root, `Pulumi.${stack}.${e}`)).find((f) => {
        try { readFileSync(f); return true; } catch { return false; }
    });
    if (!file) throw new Error(`no Pulumi.${stack}.yaml in ${root}`);
    const text = readFileSync(file, "utf8");
    const config = parseStackYaml(text, stack);
    const region = /^\s*aws:region:\s*["']?([a-z0-9-]+)/m.exec(text)?.[1];
    return { name: stack, config, region };
}

export function testStacks(): TestStack[] {
    const stacks = committedStackNames().map((s) => loadStack(s));
    if (stacks.length === 0) {
        stacks.push({ name: "defaults", config: parseStackConfig(() => undefined, { project: "redis-cluster", stack: "test" }) });
    }
    if (!stacks.some((s) => s.config.tls)) {
        const base = stacks[0];
        stacks.push({ ...base, name: `${base.name}+tls`, config: { ...base.config, tls: true } });
    }
    return stacks;
}

/** A test CA and one certificate signed by it (EC P-256), valid for server and client use, named like the stack's. */
export interface TestPki {
    dir: string;
    caFile: string;
    certFile: string;
    keyFile: string;
    ca: string;
    cert: string;
    key: string;
}

/**
 * Like the stack's @pulumi/tls material (components/secrets.ts): one CA, one
 * cluster certificate with extendedKeyUsage serverAuth + clientAuth (nodes
 * present it to each other on the cluster bus and for replication) whose only
 * name is the cluster name, no IP: clients verify it with `servername`.
 */
export function makeTestPki(dnsName: string, dir = mkdtempSync(join(tmpdir(), "rct-pki-"))): TestPki {
    mkdirSync(dir, { recursive: true });
    const run = (args: string[]) => {
        const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
        if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr}`);
    };
    writeFileSync(join(dir, "ext.cnf"), [
        "basicConstraints=CA:FALSE",
        "keyUsage=digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth,clientAuth",
        `subjectAltName=DNS:${dnsName}`,
    ].join("\n") + "\n");
    run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=redis-cluster test CA"]);
    run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "redis.key", "-out", "redis.csr", "-subj", "/CN=redis-cluster node"]);
    run(["x509", "-req", "-in", "redis.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "redis.crt", "-days", "2", "-extfile", "ext.cnf"]);
    const f = (n: string) => join(dir, n);
    return {
        dir, caFile: f("ca.crt"), certFile: f("redis.crt"), keyFile: f("redis.key"),
        ca: readFileSync(f("ca.crt"), "utf8"), cert: readFileSync(f("redis.crt"), "utf8"), key: readFileSync(f("redis.key"), "utf8"),
    };
}

/** maxmemory the bootstrap computes on this machine: percent of MemTotal. */
export function maxmemoryForThisMachine(percent: number): number {
    const kb = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync("/proc/meminfo", "utf8"))![1]);
    return Math.floor((kb * 1024 * percent) / 100);
}
