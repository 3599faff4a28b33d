/**
 * The dangerous path is impossible: after a deployment, changing instanceType,
 * the pinned amiId or the user data (engine, i.e. a new bootstrap) changes no
 * existing instance's effective inputs (what the engine would send, with
 * ignoreChanges applied against the previous run); naming one node in
 * `rollout` changes exactly that node; `pendingNodeChanges` lists the nodes
 * that differ, and rolling each in turn empties it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { byType, readStack, Registered, RunResult, runProgram, T, yamlToConfig } from "./harness";

const AMI_A = "ami-0aaaaaaaaaaaaaaa1";
const AMI_B = "ami-0bbbbbbbbbbbbbbb2";
// Deployed on Redis 6.2 (a stack from before Valkey became the default); the engine change is the upgrade to Valkey.
const base = { ...yamlToConfig(readStack("staging")), "redis-cluster:amiId": AMI_A, "redis-cluster:engine": "redis6" };
const run = (extra: Record<string, string>, previous?: RunResult) => runProgram({ ...base, ...extra }, { stack: "staging", previous });
const instances = (r: RunResult) => new Map(byType(r, T.instance).map((i) => [i.name, i]));
const nodeOf = (i: Registered) => i.name.replace(/^.*?-(s\d+-r\d+)-instance$/, "$1");
const pendingNodes = (r: RunResult) => (r.outputs.pendingNodeChanges as { node: string }[]).map((p) => p.node.replace(/^.*-(s\d+-r\d+)$/, "$1")).sort();

let v1: RunResult;

test("rollout: first deployment has nothing pending", async () => {
    v1 = await run({});
    assert.equal(byType(v1, T.instance).length, 6);
    assert.deepEqual(v1.outputs.pendingNodeChanges, []);
});

test("rollout: a new instance type, a new pinned AMI and another engine (new user data) change no existing instance", async () => {
    const changed = await run({ "redis-cluster:instanceType": "r7g.xlarge", "redis-cluster:amiId": AMI_B, "redis-cluster:engine": "valkey" }, v1);
    const before = instances(v1);
    for (const i of byType(changed, T.instance)) {
        // The program asks for the new values ...
        assert.equal(i.inputs.instanceType, "r7g.xlarge");
        assert.equal(i.inputs.ami, AMI_B);
        assert.notEqual(i.inputs.userDataBase64, before.get(i.name)!.inputs.userDataBase64);
        // ... and the engine would send exactly what is deployed.
        assert.deepEqual(i.effectiveInputs, before.get(i.name)!.effectiveInputs, `${i.name} would change`);
    }
    assert.deepEqual(pendingNodes(changed), ["s0-r0", "s0-r1", "s1-r0", "s1-r1", "s2-r0", "s2-r1"]);
    const one = (changed.outputs.pendingNodeChanges as { node: string; instanceUrn: string; changes: { field: string; from: string; to: string }[] }[])[0];
    assert.match(one.instanceUrn, /aws:ec2\/instance:Instance::.*-s0-r0-instance$/);
    assert.deepEqual(one.changes.map((c) => c.field), ["instanceType", "ami", "userData"]);
    assert.deepEqual(one.changes.slice(0, 2).map((c) => [c.from, c.to]), [["r7g.large", "r7g.xlarge"], [AMI_A, AMI_B]]);
    assert.match(one.changes[2].from, /^sha256:[0-9a-f]{12}$/);
});

test("rollout: naming one node changes exactly that node, to what a fresh deployment would give it", async () => {
    const desired = { "redis-cluster:instanceType": "r7g.xlarge", "redis-cluster:engine": "valkey" };
    const clusterName = v1.outputs.topology.clusterName as string;
    const rolled = await run({ ...desired, "redis-cluster:rollout": `${clusterName}-s1-r1` }, v1);
    const fresh = instances(await run(desired));
    const before = instances(v1);
    const changed = byType(rolled, T.instance).filter((i) => JSON.stringify(i.effectiveInputs) !== JSON.stringify(before.get(i.name)!.effectiveInputs));
    assert.deepEqual(changed.map(nodeOf), ["s1-r1"], "expected only s1-r1's instance to change");
    assert.deepEqual(changed[0].effectiveInputs, fresh.get(changed[0].name)!.inputs);
    // Every other resource (interface, volume, attachment, alarms ...) is registered as before.
    const prev = new Map(v1.resources.map((r) => [`${r.type}::${r.name}`, r]));
    for (const r of rolled.resources) {
        if (r.type === T.instance) continue;
        assert.deepEqual(r.effectiveInputs, prev.get(`${r.type}::${r.name}`)?.effectiveInputs, `${r.type}::${r.name} changed`);
    }
    // Still pending: the five others (the rolled one now runs the desired values).
    assert.deepEqual(pendingNodes(rolled), ["s0-r0", "s0-r1", "s1-r0", "s2-r0", "s2-r1"]);

    // Rolling the rest one by one, each run on top of the last, leaves nothing pending.
    let last = rolled;
    for (const n of ["s0-r1", "s2-r1", "s0-r0", "s1-r0", "s2-r0"]) last = await run({ ...desired, "redis-cluster:rollout": `${clusterName}-${n}` }, last);
    const settled = await run(desired, last);
    assert.deepEqual(settled.outputs.pendingNodeChanges, []);
    for (const i of byType(settled, T.instance)) assert.deepEqual(i.effectiveInputs, fresh.get(i.name)!.inputs, `${i.name} is not on the desired values`);
});

test("rollout: nodes added by scale-out start with the current values", async () => {
    const grown = await run({ "redis-cluster:instanceType": "r7g.xlarge", "redis-cluster:shards": "4" }, v1);
    for (const i of byType(grown, T.instance)) {
        const want = nodeOf(i).startsWith("s3-") ? "r7g.xlarge" : "r7g.large";
        assert.equal(i.effectiveInputs.instanceType, want, i.name);
    }
});

test("rollout: an unknown node name is a config error naming the key and the nodes", async () => {
    await assert.rejects(run({ "redis-cluster:rollout": "staging-s9-r0" }), (e: Error) => {
        assert.match(e.message, /redis-cluster:rollout must name one node of the cluster \(got "staging-s9-r0"; nodes: .*-s0-r0, .*-s2-r1\)/);
        assert.match(e.message, /pulumi config rm redis-cluster:rollout/);
        return true;
    });
});
