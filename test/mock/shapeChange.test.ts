/**
 * Changing the shape must not touch what exists: run the program with
 * shards 3 -> 4 and replicasPerShard 1 -> 2 and compare what the first shape
 * registered with what the second registers under the same names.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { byType, readStack, Registered, RunResult, runProgram, T, yamlToConfig } from "./harness";

const base = yamlToConfig(readStack("staging")); // TLS on: certificates must not move either
const shape = (shards: number, replicasPerShard: number) => runProgram(
    { ...base, "redis-cluster:shards": String(shards), "redis-cluster:replicasPerShard": String(replicasPerShard) },
    { stack: "staging" },
);
/** Resource type -> the one input that lists every node and so changes with the shape (an in-place update). */
const SHAPE_LISTS: Record<string, string> = {
    "aws:cloudwatch/compositeAlarm:CompositeAlarm": "alarmRule",
    "aws:cloudwatch/dashboard:Dashboard": "dashboardBody",
};
const key = (x: Registered) => `${x.type}::${x.name}`;
const index = (r: RunResult) => new Map(r.resources.map((x) => [key(x), x]));

let small: RunResult;
let big: RunResult;

test("shape change: run 3x1 and 4x2", async () => {
    small = await shape(3, 1);
    big = await shape(4, 2);
    assert.equal(byType(small, T.instance).length, 6);
    assert.equal(byType(big, T.instance).length, 12);
});

test("shape change: every resource of the first shape is registered again with identical inputs, parent and options", () => {
    const after = index(big);
    let compared = 0;
    for (const before of small.resources) {
        const now = after.get(key(before));
        assert.ok(now, `${key(before)} disappeared when growing`);
        // Lists of every node are updated in place, never replaced: the composite alarm's rule
        // (it names each node's alarms) and the dashboard (a line per node). Nothing else moves.
        const inPlace = SHAPE_LISTS[before.type];
        const strip = (i: Record<string, unknown>) => Object.fromEntries(Object.entries(i).filter(([k]) => k !== inPlace));
        assert.deepEqual(inPlace ? strip(now.inputs) : now.inputs, inPlace ? strip(before.inputs) : before.inputs, `${key(before)} inputs changed`);
        assert.equal(now.parent, before.parent, `${key(before)} moved to another parent`);
        assert.equal(now.protect, before.protect);
        assert.deepEqual(now.ignoreChanges, before.ignoreChanges);
        compared++;
    }
    assert.equal(compared, small.resources.length);
    // What was added is only nodes and their satellites (interface, volume, attachment, target, alarms),
    // and the new shard's alarms.
    const added = big.resources.filter((x) => !index(small).has(key(x)));
    for (const a of added) assert.match(a.name, /-s(3(-r[0-2])?|[0-2]-r2)(-|$)/, `${key(a)} added but is not a new node's or shard's`);
});

test("shape change: the first shape's nodes keep name, zone, private IP, volume and user data", () => {
    const nodesOf = (r: RunResult) => new Map<string, any>(r.outputs.topology.nodes.map((n: any) => [n.name, n]));
    const before = nodesOf(small);
    const after = nodesOf(big);
    for (const [name, n] of before) assert.deepEqual(after.get(name), n, `${name} changed in the topology output`);
    const inst = (r: RunResult, name: string) => r.resources.find((x) => x.type === T.instance && x.name === name)!;
    const vol = (r: RunResult, name: string) => r.resources.find((x) => x.type === T.volume && x.name === name)!;
    for (const i of byType(small, T.instance)) {
        assert.equal(inst(big, i.name).inputs.userDataBase64, i.inputs.userDataBase64, `${i.name} user data changed`);
        assert.ok(String(i.inputs.userDataBase64).length > 100);
        const v = i.name.replace(/-instance$/, "-data");
        assert.equal(vol(big, v).id, vol(small, v).id);
    }
});

test("shape change: shrinking back registers exactly the first shape again", async () => {
    const again = await shape(3, 1);
    assert.deepEqual(again.resources.map(key).sort(), small.resources.map(key).sort());
    const before = index(small);
    for (const x of again.resources) assert.deepEqual(x.inputs, before.get(key(x))!.inputs, `${key(x)} differs after shrinking`);
});
