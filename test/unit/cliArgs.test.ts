import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { InvalidArgumentError } from "commander";
import { numArg } from "../../scripts/cli";

test("numeric flags: NaN, fractions, negatives and out-of-range values are usage errors naming the flag, value and range", () => {
    const batch = numArg("--batch", { min: 1 });
    assert.equal(batch("1000"), 1000);
    for (const v of ["0", "-1", "abc", "", "1.5", "Infinity"]) {
        assert.throws(() => batch(v), (e: unknown) => e instanceof InvalidArgumentError && e.message === `--batch must be a whole number of at least 1 (got "${v}")`);
    }
    const threshold = numArg("--threshold", { min: 0, max: 100, fraction: true });
    assert.equal(threshold("2.5"), 2.5);
    assert.throws(() => threshold("abc"), /--threshold must be a number from 0 to 100 \(got "abc"\)/);
    assert.throws(() => threshold("101"), /from 0 to 100/);
    const big = numArg("--big-key-mb", { min: 0, fraction: true });
    assert.equal(big("0"), 0);
    assert.throws(() => big("abc"), /--big-key-mb must be a number of at least 0 \(got "abc"\)/);
});

const bin = join(__dirname, "..", "..", "scripts", "bin", "redis-cluster.js");
// Each of these used to be accepted as NaN or crash (RangeError); now exit 2 before anything is read.
for (const args of [
    ["status", "--connect-timeout", "-5"],
    ["status", "--connect-timeout", "abc"],
    ["scale", "--big-key-mb", "abc"],
    ["rebalance", "--threshold", "abc"],
    ["rebalance", "--batch", "0"],
    ["scale", "--parallel", "0"],
]) {
    test(`bin: ${args.join(" ")} is a usage error (exit 2)`, () => {
        const r = spawnSync(process.execPath, [bin, ...args, "--topology", join(tmpdir(), "no-such-topology.json")], { encoding: "utf8", cwd: tmpdir() });
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr, new RegExp(`${args[1]} must be a (whole )?number`));
        assert.match(r.stderr, new RegExp(`\\(got "${args[2]}"\\)`));
        assert.doesNotMatch(r.stderr, /internal error|RangeError|no such file/);
    });
}

test("operational failures are not bugs: an unreachable node or a wait that ran out exits 1, an interrupted wait 130", async () => {
    const { exitCodeFor, UnreachableError, WaitTimeoutError } = await import("../../scripts/errors");
    const { waitUntil } = await import("../../scripts/redis/clusterView");
    assert.equal(exitCodeFor(new UnreachableError("cannot connect to 10.0.0.1:6379: ECONNREFUSED", "10.0.0.1:6379")), 1);
    const timedOut = await waitUntil(async () => false, { timeoutMs: 20, what: "nothing" }).catch((e) => e);
    assert.ok(timedOut instanceof WaitTimeoutError);
    assert.equal(exitCodeFor(timedOut), 1);
    const ac = new AbortController();
    ac.abort();
    const stopped = await waitUntil(async () => false, { timeoutMs: 1000, what: "nothing", signal: ac.signal }).catch((e) => e);
    assert.equal(exitCodeFor(stopped), 130);
});
