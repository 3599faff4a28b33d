/**
 * The Automation API path against a double of the Pulumi workspace (the real CLI
 * cannot run here): the order of config set, pulumi up and scale for growth and
 * shrink, what a failed `pulumi up` leaves behind, and the message that says so.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStackConfig, StackConfig } from "../../components/config";
import { applyOnStack, ApplyDeps, StackWorkspace } from "../../scripts/autoscale/apply";
import { StepError } from "../../scripts/errors";
import type { Decision, Shape } from "../../scripts/plan/autoscale";

function doubles(opts: { upFails?: boolean; scaleFails?: boolean; loseLeaseDuringUp?: boolean } = {}) {
    const calls: string[] = [];
    const config: Record<string, string> = { shards: "3", replicasPerShard: "1" };
    let leaseDepth = 0;
    const lease = { signal: new AbortController().signal, lost: undefined as string | undefined, renewals: 0, async renew() { this.renewals++; } };
    const workspace: StackWorkspace = {
        stack: "prod",
        async readConfig(): Promise<StackConfig> {
            return parseStackConfig((k) => config[k], { project: "redis-cluster", stack: "prod" });
        },
        async setConfig(values) {
            calls.push(`config set ${Object.entries(values).map(([k, v]) => `${k}=${v}`).join(" ")}${leaseDepth ? " [lease]" : ""}`);
            Object.assign(config, values);
        },
        async up(log) {
            calls.push(`up shards=${config.shards} replicasPerShard=${config.replicasPerShard}${leaseDepth ? " [lease]" : ""}`);
            log("Updating (prod)");
            if (opts.upFails) throw new Error("error: creating EC2 Instance: InsufficientInstanceCapacity");
            if (opts.loseLeaseDuringUp) lease.lost = "the cluster lease was taken over by scale by bob@ops-1:77 since 2026-12-01T10:00:00Z";
        },
    };
    const deps: ApplyDeps<typeof lease> = {
        workspace,
        async scale(shape: Shape, held) {
            assert.equal(held, lease, "scale runs under the action's lease");
            calls.push(`scale ${shape.shards}x${shape.replicas}${leaseDepth ? " [lease]" : ""}`);
            if (opts.scaleFails) throw new Error("scale exited with 1");
        },
        async withLease(fn) {
            calls.push("lease taken");
            leaseDepth++;
            try { return await fn(lease); } finally { leaseDepth--; calls.push("lease released"); }
        },
        log: () => undefined,
    };
    return { calls, config, deps, lease };
}
const d = (action: Decision["action"], from: number, to: number): Decision => ({ action, from, to, reason: "test" });
const shape = { shards: 3, replicas: 1 };

test("autoscale apply: growth is config set -> pulumi up -> scale, all under one lease", async () => {
    const { calls, config, deps, lease } = doubles();
    await applyOnStack(d("add-shards", 3, 4), shape, deps);
    assert.deepEqual(calls, ["lease taken", "config set shards=4 [lease]", "up shards=4 replicasPerShard=1 [lease]", "scale 4x1 [lease]", "lease released"]);
    assert.equal(config.shards, "4");
    assert.equal(lease.renewals, 1, "renewed between pulumi up and scale");
    const r = doubles();
    await applyOnStack(d("add-replicas", 1, 2), shape, r.deps);
    assert.deepEqual(r.calls, ["lease taken", "config set replicasPerShard=2 [lease]", "up shards=3 replicasPerShard=2 [lease]", "scale 3x2 [lease]", "lease released"]);
});

test("autoscale apply: a lease lost during pulumi up stops before scale and says what is left", async () => {
    const { calls, deps } = doubles({ loseLeaseDuringUp: true });
    const err = await applyOnStack(d("add-shards", 3, 4), shape, deps).then(() => undefined, (e) => e);
    assert.ok(err instanceof StepError, String(err));
    assert.deepEqual(calls, ["lease taken", "config set shards=4 [lease]", "up shards=4 replicasPerShard=1 [lease]", "lease released"]);
    assert.match(err.message, /cause: the cluster lease was taken over by scale by bob@ops-1:77/);
    assert.match(err.message, /pulumi up created the new nodes; the cluster does not use them yet \(scale did not start\)/);
    assert.match(err.message, /to continue: npm run cluster -- scale --stack prod/);
});

test("autoscale apply: shrink is scale (drain, forget) -> config set -> pulumi up, all under one lease", async () => {
    const { calls, config, deps } = doubles();
    await applyOnStack(d("remove-shards", 4, 3), { shards: 4, replicas: 1 }, deps);
    assert.deepEqual(calls, ["lease taken", "scale 3x1 [lease]", "config set shards=3 [lease]", "up shards=3 replicasPerShard=1 [lease]", "lease released"]);
    assert.equal(config.shards, "3");
    const r = doubles();
    await applyOnStack(d("remove-replicas", 2, 1), { shards: 3, replicas: 2 }, r.deps);
    assert.deepEqual(r.calls, ["lease taken", "scale 3x1 [lease]", "config set replicasPerShard=1 [lease]", "up shards=3 replicasPerShard=1 [lease]", "lease released"]);
});

test("autoscale apply: a failed pulumi up while growing leaves the cluster untouched, restores the config, and says so", async () => {
    const { calls, config, deps } = doubles({ upFails: true });
    const err = await applyOnStack(d("add-shards", 3, 4), shape, deps).then(() => undefined, (e) => e);
    assert.ok(err instanceof StepError, String(err));
    assert.ok(!calls.some((c) => c.startsWith("scale")), `scale never ran: ${calls.join(", ")}`);
    assert.deepEqual(calls, ["lease taken", "config set shards=4 [lease]", "up shards=4 replicasPerShard=1 [lease]", "config set shards=3 [lease]", "lease released"]);
    assert.equal(config.shards, "3");
    assert.match(err.message, /autoscale: step "pulumi up" failed/);
    assert.match(err.message, /cause: error: creating EC2 Instance: InsufficientInstanceCapacity/);
    assert.match(err.message, /left behind: the cluster is untouched \(no node joined, no slot moved\) and its lease is released; stack config restored to shards=3/);
    assert.match(err.message, /to continue: fix what pulumi up reported/);
});

test("autoscale apply: a failed pulumi up after a shrink says the nodes are already out of the cluster; a failed scale after growth says how to resume", async () => {
    const a = doubles({ upFails: true });
    const e1 = await applyOnStack(d("remove-shards", 4, 3), { shards: 4, replicas: 1 }, a.deps).then(() => undefined, (e) => e);
    assert.ok(e1 instanceof StepError);
    assert.match(e1.message, /the cluster already runs without the removed node\(s\)/);
    assert.match(e1.message, /to continue: pulumi up --stack prod/);
    const b = doubles({ scaleFails: true });
    const e2 = await applyOnStack(d("add-shards", 3, 4), shape, b.deps).then(() => undefined, (e) => e);
    assert.ok(e2 instanceof StepError);
    assert.match(e2.message, /step "scale" failed/);
    assert.match(e2.message, /npm run cluster -- scale --stack prod/);
});

test("autoscale apply: a none decision touches nothing", async () => {
    const { calls, deps } = doubles();
    await applyOnStack(d("none", 3, 3), shape, deps);
    assert.deepEqual(calls, []);
});
