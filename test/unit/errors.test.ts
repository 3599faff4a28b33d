/**
 * Every error class of scripts/errors.ts → its exit code and the message a user reads
 * (errorReport, what cli.ts prints). No operational failure may read as a bug (70).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ReplyError } from "ioredis";
import * as errors from "../../scripts/errors";
import {
    ConfigError, errorReport, exitCodeFor, InterruptedError, interruption, NodeCommandError, PlanError, RefusedError, StepError,
    UnreachableError, UsageError, WaitTimeoutError,
} from "../../scripts/errors";
import { waitUntil } from "../../scripts/redis/clusterView";

const wait = new WaitTimeoutError({
    op: "scale", what: "every remaining node to agree on the slot map", timeoutMs: 30000, last: "5 of 6 node(s) agree",
    state: "slots moved; the nodes have not all agreed yet", resume: "check with `status`; rerun `scale`",
});
const ctrlC = new InterruptedError({ op: "rebalance", during: "the slot moves", state: "12 of 40 slot(s) moved; the cluster is serving and consistent", resume: "rerun `rebalance` to move the rest" });
const leaseLost = new RefusedError("scale: the lease was taken over by another run; stopped");
const step = (cause?: unknown) => new StepError({ op: "create", step: "wait-formed", node: "t-s0-r0 (127.0.0.1:7000)", cause, state: "every step was sent; the cluster has not converged yet", resume: "run `create` again" });

/** class → [an instance, exit code, what stderr must read (errorReport)] */
const TABLE: [string, Error, number, RegExp][] = [
    ["ConfigError", new ConfigError(["redis-cluster:shards must be at least 3 (got 2)"]), 2,
        /^error: Invalid stack config:\n - redis-cluster:shards must be at least 3 \(got 2\)\n$/],
    ["UsageError", new UsageError("--topology x.json: no such file"), 2, /^error: --topology x\.json: no such file\n$/],
    ["RefusedError", new RefusedError("flushall refused: confirm with --confirm t (no terminal to ask on); nothing was deleted"), 1,
        /^error: flushall refused: confirm with --confirm t \(no terminal to ask on\); nothing was deleted\n$/],
    ["PlanError", new PlanError(["every master is draining or has weight 0: nothing could own the slots"], "Cannot plan a rebalance; nothing was changed"), 1,
        /^error: Cannot plan a rebalance; nothing was changed:\n - every master is draining or has weight 0: nothing could own the slots\n$/],
    ["StepError", step("10.0.0.1:6379: CLUSTER MEET: ERR Invalid node address"), 1,
        /^error: create: step "wait-formed" failed on t-s0-r0 \(127\.0\.0\.1:7000\)\n {2}cause: 10\.0\.0\.1:6379: CLUSTER MEET: ERR Invalid node address\n {2}left behind: every step was sent; the cluster has not converged yet\n {2}to continue: run `create` again\n$/],
    ["UnreachableError", new UnreachableError("cannot connect to 10.0.0.1:6379: connect ECONNREFUSED", "10.0.0.1:6379"), 1,
        /^error: cannot connect to 10\.0\.0\.1:6379: connect ECONNREFUSED\n$/],
    ["WaitTimeoutError", wait, 1,
        /^error: scale: timed out after 30 s waiting for every remaining node to agree on the slot map\n {2}last seen: 5 of 6 node\(s\) agree\n {2}left behind: slots moved; the nodes have not all agreed yet\n {2}to continue: check with `status`; rerun `scale`\n$/],
    ["InterruptedError", ctrlC, 130,
        /^error: rebalance: stopped during the slot moves: interrupted \(Ctrl-C\)\n {2}left behind: 12 of 40 slot\(s\) moved; the cluster is serving and consistent\n {2}to continue: rerun `rebalance` to move the rest\n$/],
    ["NodeCommandError", new NodeCommandError("127.0.0.1:7000: CLUSTER REPLICATE 07c3: ERR Unknown node 07c3", "127.0.0.1:7000", "CLUSTER"), 1,
        /^error: 127\.0\.0\.1:7000: CLUSTER REPLICATE 07c3: ERR Unknown node 07c3\n {2}to continue: rerun the command: it reads the live state first and goes on from there \(`status` shows the cluster as it is now\)\n$/],
];

for (const [name, err, code, shape] of TABLE) {
    test(`errors: ${name} exits ${code} and reads as the user should see it`, () => {
        assert.equal(err.name, name);
        assert.equal(exitCodeFor(err), code);
        assert.match(errorReport(err), shape);
        assert.doesNotMatch(errorReport(err), /internal error|\n {4}at /);
    });
}

test("errors: every error class errors.ts exports is in the table", () => {
    const classes = Object.entries(errors).filter(([, v]) => typeof v === "function" && v.prototype instanceof Error).map(([k]) => k).sort();
    assert.deepEqual(classes, TABLE.map(([n]) => n).sort());
});

test("errors: what wraps or stands in for them", () => {
    // A wait or an interrupt under a step: the step's state and resume replace the cause's own.
    const wrappedWait = step(new WaitTimeoutError({ what: "the cluster to be fully formed", timeoutMs: 1, last: "3 node(s) do not know each other yet", resume: "unused" }));
    assert.equal(exitCodeFor(wrappedWait), 1);
    assert.match(wrappedWait.message, /\n {2}cause: timed out after 1 ms waiting for the cluster to be fully formed; last seen: 3 node\(s\) do not know each other yet\n {2}left behind: every step/);
    assert.doesNotMatch(wrappedWait.message, /unused/);
    const wrappedInterrupt = step(ctrlC);
    assert.equal(exitCodeFor(wrappedInterrupt), 130, "Ctrl-C under a step is still Ctrl-C");
    assert.match(wrappedInterrupt.message, /cause: rebalance: stopped during the slot moves: interrupted \(Ctrl-C\)\n {2}left behind: every step/);
    // Through the standard `cause` too.
    assert.equal(exitCodeFor(new Error("outer", { cause: ctrlC })), 130);

    // A stop for another reason than Ctrl-C (the lease was lost) exits as that reason.
    const ac = new AbortController();
    ac.abort(leaseLost);
    const lost = interruption(ac.signal, { op: "scale", during: "the slot moves", resume: "rerun `scale`" });
    assert.equal(exitCodeFor(lost), 1);
    assert.match(lost.message, /^scale: stopped during the slot moves: scale: the lease was taken over by another run; stopped\n {2}to continue: rerun `scale`$/);
    const user = new AbortController();
    user.abort(); // what cli.ts does on Ctrl-C
    assert.equal(exitCodeFor(interruption(user.signal, { during: "x" })), 130);

    // A node's reply that nothing wrapped (a pipeline's ReplyError) is a node's failure, not a bug.
    const reply = new ReplyError("OOM command not allowed when used memory > 'maxmemory'.");
    assert.equal(exitCodeFor(reply), 1);
    assert.match(errorReport(reply), /^error: OOM command not allowed.*\n {2}to continue: rerun the command/);

    // Anything else is a bug: exit 70 with its stack.
    const bug = new TypeError("Cannot read properties of undefined (reading 'slots')");
    assert.equal(exitCodeFor(bug), 70);
    assert.match(errorReport(bug), /^internal error \(a bug, please report it\):\nTypeError: Cannot read properties of undefined \(reading 'slots'\)\n {4}at /);
    assert.equal(exitCodeFor("a string"), 70);
});

test("errors: waitUntil throws WaitTimeoutError with the state and the resume it was given, InterruptedError on its signal", async () => {
    let polls = 0;
    const timedOut = await waitUntil(async () => (polls++, false), { timeoutMs: 30, what: "nothing", op: "replicate", state: "CLUSTER MEET sent", resume: "rerun `replicate`" }, () => `poll ${polls}`).catch((e) => e);
    assert.ok(timedOut instanceof WaitTimeoutError);
    assert.ok(polls >= 2, `polled ${polls} times`);
    assert.match(timedOut.message, /^replicate: timed out after 30 ms waiting for nothing\n {2}last seen: poll \d+\n {2}left behind: CLUSTER MEET sent\n {2}to continue: rerun `replicate`$/);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    const stopped = await waitUntil(async () => false, { timeoutMs: 5000, what: "nothing", signal: ac.signal }).catch((e) => e);
    assert.ok(stopped instanceof InterruptedError);
    assert.equal(exitCodeFor(stopped), 130);
    assert.match(stopped.message, /^stopped during the wait for nothing: interrupted \(Ctrl-C\)\n {2}to continue: rerun the command: it reads the live state first/);
});
