import { test } from "node:test";
import assert from "node:assert/strict";
import { instanceChanges, instanceIgnoreChanges, rolloutProblems, userDataDigest } from "../../components/plan/rollout";

test("rollout: every node but the named one holds type, credit specification, user data and AMI", () => {
    assert.deepEqual(instanceIgnoreChanges("c-s0-r0", undefined, true), ["instanceType", "creditSpecification", "userDataBase64", "ami"]);
    assert.deepEqual(instanceIgnoreChanges("c-s0-r0", "c-s1-r0", true), ["instanceType", "creditSpecification", "userDataBase64", "ami"]);
    assert.deepEqual(instanceIgnoreChanges("c-s1-r0", "c-s1-r0", true), []);
    assert.deepEqual(instanceIgnoreChanges("c-s1-r0", "c-s1-r0", false), ["ami"], "a looked-up AMI is never rolled");
});

test("rollout: changes between deployed and desired; the AMI only when pinned; user data as a digest", () => {
    const deployed = { instanceType: "r7g.large", ami: "ami-1", userDataBase64: "AAAA" };
    assert.deepEqual(instanceChanges(deployed, deployed, true), []);
    const desired = { instanceType: "r7g.xlarge", ami: "ami-2", userDataBase64: "BBBB" };
    assert.deepEqual(instanceChanges(deployed, desired, true), [
        { field: "instanceType", from: "r7g.large", to: "r7g.xlarge" },
        { field: "ami", from: "ami-1", to: "ami-2" },
        { field: "userData", from: userDataDigest("AAAA"), to: userDataDigest("BBBB") },
    ]);
    assert.deepEqual(instanceChanges(deployed, { ...deployed, ami: "ami-2" }, false), []);
    assert.match(userDataDigest("AAAA"), /^sha256:[0-9a-f]{12}$/);
});

test("rollout: the key must name one node of the shape", () => {
    assert.deepEqual(rolloutProblems(undefined, ["a"], "k"), []);
    assert.deepEqual(rolloutProblems("a", ["a", "b"], "k"), []);
    assert.match(rolloutProblems("z", ["a", "b"], "k")[0], /^k must name one node of the cluster \(got "z"; nodes: a, b\)/);
});
