/**
 * Changing a cluster-wide node setting must not touch a node: run the program
 * with maxmemoryPercent, maxmemoryPolicy, clusterNodeTimeoutMs (and the other
 * settings) changed, and compare what both runs register. Only the SSM
 * node-settings parameter may differ; every instance (user data included),
 * volume and network interface is registered with identical inputs, so
 * `pulumi up` updates one parameter and stops no instance.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseNodeSettings } from "../../components/bootstrap/nodeSettings";
import { ssmParameterNames } from "../../components/bootstrap/contract";
import { byType, readStack, Registered, RunResult, runProgram, T, userDataOf, yamlToConfig } from "./harness";

const base = yamlToConfig(readStack("prod")); // TLS, 3 x 2, minReplicasToWrite 1
const CHANGED = {
    "redis-cluster:maxmemoryPercent": "50",
    "redis-cluster:maxmemoryPolicy": "allkeys-lru",
    "redis-cluster:clusterNodeTimeoutMs": "8000",
    "redis-cluster:clusterReplicaValidityFactor": "5",
    "redis-cluster:minReplicasToWrite": "2",
    "redis-cluster:minReplicasMaxLagSec": "20",
};
const key = (x: Registered) => `${x.type}::${x.name}`;
const index = (r: RunResult) => new Map(r.resources.map((x) => [key(x), x]));
const settingsParam = (r: RunResult) => {
    const all = byType(r, T.param).filter((p) => p.inputs.name === ssmParameterNames("redis-cluster-prod").nodeSettings);
    assert.equal(all.length, 1, "exactly one node-settings parameter");
    return all[0];
};

let before: RunResult;
let after: RunResult;

test("settings change: run prod as committed and with every node setting changed", async () => {
    before = await runProgram(base, { stack: "prod" });
    after = await runProgram({ ...base, ...CHANGED }, { stack: "prod" });
    assert.equal(byType(before, T.instance).length, 9);
});

test("settings change: only the SSM node-settings parameter changes; instances (user data too), volumes and interfaces keep every input", () => {
    const now = index(after);
    assert.deepEqual([...now.keys()].sort(), before.resources.map(key).sort(), "resources added or removed");
    const changed = before.resources.filter((x) => JSON.stringify(now.get(key(x))!.inputs) !== JSON.stringify(x.inputs)).map(key);
    assert.deepEqual(changed, [key(settingsParam(before))]);
    for (const type of [T.instance, T.volume, T.eni, T.attachment]) {
        const nodes = byType(before, type);
        assert.ok(nodes.length >= 9, `${type}: ${nodes.length}`);
        for (const x of nodes) {
            const y = now.get(key(x))!;
            assert.deepEqual(y.inputs, x.inputs, `${key(x)} inputs changed`);
            assert.equal(y.parent, x.parent);
            assert.deepEqual(y.ignoreChanges, x.ignoreChanges);
            if (type === T.instance) assert.equal(y.inputs.userDataBase64, x.inputs.userDataBase64, `${x.name}: user data changed (EC2 would stop and start it)`);
        }
    }
    assert.deepEqual(after.outputs.topology, before.outputs.topology);
});

test("settings change: the parameter holds the new settings, Standard tier String, readable by the node role", () => {
    const p0 = settingsParam(before).inputs;
    const p1 = settingsParam(after).inputs;
    assert.equal(p1.type, "String");
    assert.equal(p1.tier, "Standard");
    assert.equal(p1.value, undefined, "the settings are no secret: insecureValue shows the diff in pulumi preview");
    assert.ok(Buffer.byteLength(p1.insecureValue) <= 4096);
    assert.deepEqual(parseNodeSettings(p0.insecureValue), { maxmemoryPercent: 70, maxmemoryPolicy: "noeviction", clusterNodeTimeoutMs: 5000, clusterReplicaValidityFactor: 10, minReplicasToWrite: 1, minReplicasMaxLagSec: 10 });
    assert.deepEqual(parseNodeSettings(p1.insecureValue), { maxmemoryPercent: 50, maxmemoryPolicy: "allkeys-lru", clusterNodeTimeoutMs: 8000, clusterReplicaValidityFactor: 5, minReplicasToWrite: 2, minReplicasMaxLagSec: 20 });
    // No node setting is left in the user data: the script names the parameter instead.
    for (const i of byType(after, T.instance)) {
        const ud = userDataOf(i);
        assert.match(ud, /^SSM_NODE_SETTINGS="\$SSM_PREFIX\/config\/node-settings"$/m);
        assert.match(ud, /^maxmemory-policy @@MAXMEMORY_POLICY@@$/m);
        assert.doesNotMatch(ud, /allkeys-lru|noeviction|MAXMEMORY_PERCENT=/);
    }
    // The node role may read it: the policy's parameter ARNs cover the name.
    const policy = JSON.parse(byType(after, T.rolePolicy).find((x) => x.name.includes("node-policy"))!.inputs.policy);
    const read = policy.Statement.find((s: { Sid: string }) => s.Sid === "ReadClusterParameters");
    assert.ok(read.Action.includes("ssm:GetParameter"));
    const arn = `arn:aws:ssm:us-east-1:123456789012:parameter${p1.name}`;
    assert.ok((read.Resource as string[]).some((r) => new RegExp(`^${r.replace(/[.]/g, "\\.").replace(/\*/g, ".*")}$`).test(arn)), `${arn} not covered by ${read.Resource}`);
    assert.deepEqual(after.outputs.nodeSettings.settings, parseNodeSettings(p1.insecureValue));
    assert.equal(after.outputs.nodeSettings.parameterName, p1.name);
    assert.deepEqual(after.outputs.nodeSettings.fixed, { port: 6379, tls: true, engine: "valkey" });
});

test("settings change: what cannot change in place (port, engine) still changes the user data, as the docs say", async () => {
    const engine = await runProgram({ ...base, "redis-cluster:engine": "redis6" }, { stack: "prod" });
    const port = await runProgram({ ...base, "redis-cluster:port": "6380" }, { stack: "prod" });
    const ud = (r: RunResult) => byType(r, T.instance).map((i) => i.inputs.userDataBase64);
    for (const r of [engine, port]) {
        const a = ud(before);
        const b = ud(r);
        assert.equal(b.length, a.length);
        b.forEach((u, i) => assert.notEqual(u, a[i], "an immutable setting did not reach the user data"));
    }
});
