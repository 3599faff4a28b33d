import { test } from "node:test";
import assert from "node:assert/strict";
import { checkHeadroom, NodeMemory } from "../../scripts/plan/headroom";

const MiB = 1024 * 1024;
const node = (id: string, usedMiB: number, maxMiB: number, keys: number, datasetMiB = usedMiB): NodeMemory => ({ id, label: `${id}:6379`, usedBytes: usedMiB * MiB, datasetBytes: datasetMiB * MiB, maxBytes: maxMiB * MiB, keys });

test("a receiver with room passes; the estimate follows the source's average key size", () => {
    const r = checkHeadroom([node("a", 600, 1000, 6000, 600), node("b", 100, 1000, 0)], [{ from: "a", to: "b", keys: 3000 }]);
    assert.ok(r.ok);
    assert.equal(Math.round(r.after.b / MiB), 400);
    assert.equal(Math.round(r.after.a / MiB), 300);
});

test("draining into full masters is refused with how much is missing", () => {
    const r = checkHeadroom([node("gone", 800, 1000, 8000), node("b", 700, 1000, 7000), node("c", 700, 1000, 7000)], [
        { from: "gone", to: "b", keys: 4000 },
        { from: "gone", to: "c", keys: 4000 },
    ]);
    assert.equal(r.ok, false);
    assert.equal(r.problems.length, 2);
    assert.match(r.problems[0], /^b:6379 would hold ~1100\.0 MiB, over 900\.0 MiB \(maxmemory 1000\.0 MiB less 10% headroom\): 200\.0 MiB missing$/);
});

test("receivers without maxmemory are reported unchecked, not guessed", () => {
    const r = checkHeadroom([node("a", 500, 0, 5000), node("b", 10, 0, 0)], [{ from: "a", to: "b", keys: 2500 }]);
    assert.ok(r.ok);
    assert.deepEqual(r.unchecked, ["b:6379"]);
});
