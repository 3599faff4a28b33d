/**
 * One cluster lease across autoscale's whole action (issue 14): scale-out is config set ->
 * pulumi up -> scale, and between the two the cluster is half-changed (new nodes up, not
 * joined). While the workspace double's `pulumi up` runs, a `scale` started by another
 * process is refused, naming the autoscale run; autoscale's own `scale` then runs under
 * the lease it holds. A failed `pulumi up` releases the lease and leaves the cluster as it
 * was, and says so. Real servers; only Pulumi is replaced.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { parseStackConfig, StackConfig } from "../../components/config";
import { StackWorkspace } from "../../scripts/autoscale/apply";
import { stackEnv } from "../../scripts/commands/autoscale";
import { StepError } from "../../scripts/errors";
import { createOutput } from "../../scripts/output";
import type { Decision } from "../../scripts/plan/autoscale";
import { parseClusterNodes } from "../../scripts/redis/clusterNodes";
import { readLease } from "../../scripts/redis/lease";
import { NodePool } from "../../scripts/redis/pool";
import { ClusterFixture, loadKeys, runCli, startCluster, waitFor } from "../helpers/cluster";

const grow: Decision = { action: "add-shards", from: 3, to: 4, reason: "test: memory above the target" };

function workspace(fx: ClusterFixture, up: (shards: number) => Promise<void>): { ws: StackWorkspace; config: Record<string, string>; calls: string[] } {
    const config: Record<string, string> = { shards: "3", replicasPerShard: "0" };
    const calls: string[] = [];
    const ws: StackWorkspace = {
        stack: "fake",
        async readConfig(): Promise<StackConfig> {
            return parseStackConfig((k) => config[k], { project: "redis-cluster", stack: "fake" });
        },
        async setConfig(values) {
            calls.push(`config ${Object.entries(values).map(([k, v]) => `${k}=${v}`).join(",")}`);
            Object.assign(config, values);
        },
        async up() {
            calls.push(`up ${config.shards}`);
            await up(Number(config.shards));
        },
    };
    return { ws, config, calls };
}

/** Every node's view of the cluster without the ping/pong times: id, role, master, slots. */
async function shapeOf(fx: ClusterFixture): Promise<string> {
    const views = await Promise.all(fx.all.map(async (s) => {
        const nodes = parseClusterNodes(await fx.client(s).call("CLUSTER", "NODES") as string);
        return `${s.key}: ${nodes.map((n) => `${n.id} ${n.role} ${n.masterId ?? "-"} ${JSON.stringify(n.slots)}`).sort().join(" | ")}`;
    }));
    return views.join("\n");
}

const leaseNow = async (fx: ClusterFixture) => {
    const pool = new NodePool({ credentials: fx.auth });
    try {
        return await readLease(pool, fx.shards.map((s) => s[0].key));
    } finally {
        await pool.close();
    }
};

test("autoscale holds one lease across pulumi up and scale: another process's scale is refused meanwhile, naming the autoscale run", { timeout: 90_000 }, async () => {
    const fx = await startCluster({ masters: 3, spare: 1, acl: true, clusterNodeTimeoutMs: 1000 });
    try {
        const data = fx.clusterClient();
        const keys = await loadKeys(data, 3000, "lease");
        let upRunning!: () => void;
        const upStarted = new Promise<void>((r) => (upRunning = r));
        let finishUp!: () => void;
        const upMayEnd = new Promise<void>((r) => (finishUp = r));
        const { ws, calls } = workspace(fx, async (n) => {
            // What the stack's outputs become: the spare server is shard 3.
            fx.writeTopology([...fx.shards, ...fx.spare.map((s) => [s])].slice(0, n));
            upRunning();
            await upMayEnd;
        });
        const sink = new PassThrough().resume();
        const out = createOutput({ json: true, stdout: sink, stderr: sink });
        const env = stackEnv({ topology: fx.topologyFile, stateFile: join(fx.dir, "autoscale.json"), connectTimeout: 1000 }, { out, signal: new AbortController().signal }, ws);
        const applying = env.apply(grow, { shards: 3, replicas: 0 });
        applying.catch(() => undefined);
        await upStarted;

        const held = await leaseNow(fx);
        assert.equal(held?.command, "autoscale", "the lease is autoscale's while pulumi up runs");
        const before = await shapeOf(fx);
        const other = await runCli(["scale", "--topology", fx.topologyFile, "--yes", "--connect-timeout", "1000"]);
        assert.equal(other.code, 1, `another process's scale is refused (exit 1):\n${other.stderr}`);
        assert.match(other.stderr, new RegExp(`the cluster is leased to autoscale by .*:${process.pid} since .*nothing was changed`));
        assert.equal(await shapeOf(fx), before, "the refused scale changed nothing");

        finishUp();
        // From pulumi up's end to the release, the holder stays the autoscale run: scale never takes a lease of its own.
        const holders = new Set<string>();
        let latestExpiry = held!.expires;
        let settled = false;
        void applying.finally(() => (settled = true)).catch(() => undefined);
        while (!settled) {
            const l = await leaseNow(fx).catch(() => undefined);
            holders.add(l ? `${l.command} ${l.token}` : "none");
            if (l) latestExpiry = Math.max(latestExpiry, l.expires);
            await new Promise((r) => setTimeout(r, 20));
        }
        await applying;
        holders.delete("none");
        assert.deepEqual([...holders], [`autoscale ${held!.token}`], "one lease, the same token, from pulumi up through scale");
        assert.ok(latestExpiry > held!.expires, "renewed between pulumi up and scale (expiry moved later)");
        assert.deepEqual(calls, ["config shards=4", "up 4"]);
        const owners = parseClusterNodes(await fx.client(fx.spare[0]).call("CLUSTER", "NODES") as string).filter((n) => n.role === "master" && n.slots.length > 0);
        assert.equal(owners.length, 4, "autoscale's own scale ran under its lease: the new master owns slots");
        await waitFor(async () => (await leaseNow(fx)) === undefined, 5000, "the lease to be released");
        const got = await Promise.all(keys.map((k) => data.get(k)));
        assert.equal(got.filter((v, i) => v !== `v-${keys[i]}`).length, 0, "every key kept");
    } finally {
        await fx.stop();
    }
});

test("autoscale: a failed pulumi up releases the lease, leaves the cluster untouched and says so", { timeout: 60_000 }, async () => {
    const fx = await startCluster({ masters: 3, spare: 1, acl: true, clusterNodeTimeoutMs: 1000 });
    try {
        const before = await shapeOf(fx);
        const { ws, config, calls } = workspace(fx, async () => {
            throw new Error("error: creating EC2 Instance: InsufficientInstanceCapacity");
        });
        const sink = new PassThrough().resume();
        const out = createOutput({ json: true, stdout: sink, stderr: sink });
        const env = stackEnv({ topology: fx.topologyFile, stateFile: join(fx.dir, "autoscale.json"), connectTimeout: 1000 }, { out, signal: new AbortController().signal }, ws);
        const err = await env.apply(grow, { shards: 3, replicas: 0 }).then(() => undefined, (e: unknown) => e);
        assert.ok(err instanceof StepError, String(err));
        assert.match(err.message, /autoscale: step "pulumi up" failed/);
        assert.match(err.message, /InsufficientInstanceCapacity/);
        assert.match(err.message, /the cluster is untouched \(no node joined, no slot moved\) and its lease is released; stack config restored to shards=3/);
        assert.deepEqual(calls, ["config shards=4", "up 4", "config shards=3"]);
        assert.equal(config.shards, "3");
        assert.equal(await leaseNow(fx), undefined, "the lease is released");
        assert.equal(await shapeOf(fx), before, "CLUSTER NODES unchanged on every node, the spare included");
        // And nothing holds the cluster: a person's command runs at once.
        const st = await runCli(["rebalance", "--topology", fx.topologyFile, "--connect-timeout", "1000"]);
        assert.equal(st.code, 0, st.stderr);
    } finally {
        await fx.stop();
    }
});
