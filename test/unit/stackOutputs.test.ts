/**
 * `--stack NAME --output KEY`: the tool reads a cluster whose outputs a user's program nests
 * under one name (`export const redis = cluster.outputs`) the same way as this repository's
 * top-level outputs.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { resolveTarget } from "../../scripts/inventory";
import { UsageError } from "../../scripts/errors";

const cluster = {
    topology: { clusterName: "cache-dev", port: 6379, tls: false, nodes: [0, 1, 2].map((s) => ({ name: `cache-dev-s${s}-r0`, shard: s, az: "us-east-1a", host: `10.8.8.${s + 1}`, port: 6379 })) },
    adminCredentials: { user: "admin", password: "pw" },
    loadBalancerDnsName: "x.elb.amazonaws.com",
};
const reader = (outs: Record<string, unknown>) => async () => outs;

test("--output NAME reads the cluster's outputs nested under NAME", async () => {
    const t = await resolveTarget({ stack: "dev", output: "redis" }, { readStackOutputs: reader({ redis: cluster, appUrl: "https://x" }), env: {} });
    assert.equal(t.topology.clusterName, "cache-dev");
    assert.deepEqual(t.credentials, { user: "admin", password: "pw" });
});

test("top-level outputs still work without --output", async () => {
    const t = await resolveTarget({ stack: "dev" }, { readStackOutputs: reader(cluster), env: {} });
    assert.equal(t.topology.nodes.length, 3);
});

test("nested outputs without --output: says which --output to add", async () => {
    await assert.rejects(resolveTarget({ stack: "dev" }, { readStackOutputs: reader({ redis: cluster }), env: {} }),
        (e: unknown) => e instanceof UsageError && /has no "topology" output, but its output "redis" holds a cluster's: add --output redis/.test(e.message));
});

test("--output naming an output that does not exist lists the stack's outputs", async () => {
    await assert.rejects(resolveTarget({ stack: "dev", output: "cache" }, { readStackOutputs: reader({ redis: cluster, appUrl: "u" }), env: {} }),
        (e: unknown) => e instanceof UsageError && e.message === `stack "dev" has no output "cache" holding the cluster's outputs (its outputs: redis, appUrl)`);
});
