/**
 * `roll --stack` through the Automation API, with a test double of the stack
 * (RollStack) over a real 3×1 cluster: its preview reports `pendingNodeChanges`
 * the way the program computes it, and its `up --target` applies a node's change
 * only when `rollout` names that node (as ignoreChanges makes the engine do),
 * by restarting that node's server. Asserted: the order of the targeted updates,
 * that each starts only after the previous node is back and the cluster healthy,
 * that masters are replicas (failed over) when updated, that `rollout` is set for
 * exactly the update and removed after; a leftover `rollout` is cleared first;
 * an unknown `pendingNodeChanges` is refused without a change.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import Redis from "ioredis";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { ClusterFixture, loadKeys, startCluster, waitFor } from "../helpers/cluster";
import { restartServer, TestServer } from "../helpers/redisServers";
import { capturedOutput } from "../helpers/output";
import { ROLLOUT_KEY, RollStack, rollWithStack } from "../../scripts/commands/roll";
import { resolveTarget } from "../../scripts/inventory";
import type { PendingNodeChange } from "../../components/plan/rollout";

let fx: ClusterFixture;
after(async () => fx?.stop());

const admin = (s: TestServer) => {
    const c = new Redis({ host: s.host, port: s.port, lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false });
    c.on("error", () => undefined);
    return c;
};
async function call(s: TestServer, ...args: string[]): Promise<string> {
    const c = admin(s);
    try {
        await c.connect();
        return String(await c.call(args[0], ...args.slice(1)));
    } finally {
        c.disconnect();
    }
}

/** The stack as the engine would behave with the program's ignoreChanges: see the file comment. */
class StackDouble implements RollStack {
    readonly config = new Map<string, string>();
    readonly log: string[] = [];
    /** What each node's instance runs (the stack state). */
    readonly deployed = new Map<string, string>();
    desired = "r7g.large";
    pendingOutput: unknown;
    /** The n-th update (1-based) stops its node's server and never starts it again. */
    neverBackAt?: number;
    private ups = 0;
    constructor(private readonly servers: Map<string, TestServer>, private readonly check: (node: string) => Promise<void>) {
        for (const n of servers.keys()) this.deployed.set(n, "r7g.large");
    }
    private urn(node: string) {
        return `urn:pulumi:t::redis-cluster::rediscluster:index:RedisCluster$rediscluster:index:RedisNodes$rediscluster:index:RedisNode$aws:ec2/instance:Instance::${node}-instance`;
    }
    async getConfig(key: string) {
        const v = this.config.get(key);
        if (v === undefined) throw new Error(`config key "${key}" not found`);
        return { value: v };
    }
    async setConfig(key: string, v: { value: string }) {
        this.log.push(`set ${key.split(":")[1]}=${v.value}`);
        this.config.set(key, v.value);
    }
    async removeConfig(key: string) {
        this.log.push(`rm ${key.split(":")[1]}`);
        this.config.delete(key);
    }
    async preview(opts: { onEvent: (e: EngineEvent) => void }) {
        this.log.push("preview");
        const pending: PendingNodeChange[] = [...this.deployed].filter(([, t]) => t !== this.desired)
            .map(([node, t]) => ({ node, instanceUrn: this.urn(node), changes: [{ field: "instanceType", from: t, to: this.desired }] }));
        const outputs = { pendingNodeChanges: this.pendingOutput ?? pending, nodeSettings: { fixed: { engine: "redis" } } };
        opts.onEvent({
            sequence: 1, timestamp: 0,
            resOutputsEvent: {
                metadata: {
                    op: "same", urn: "urn:pulumi:t::redis-cluster::pulumi:pulumi:Stack::redis-cluster-t", type: "pulumi:pulumi:Stack", provider: "",
                    new: { type: "pulumi:pulumi:Stack", urn: "", id: "", parent: "", inputs: {}, outputs, provider: "" },
                },
            },
        } as EngineEvent);
        return {};
    }
    async up(opts: { target: string[]; targetDependents: boolean; replace?: string[] }) {
        assert.equal(opts.target.length, 1);
        assert.deepEqual(opts.replace ?? [], [], "same engine (redis): updated in place, not replaced");
        assert.equal(opts.targetDependents, true, "the attachment and alarms of a replaced instance must follow it");
        const node = opts.target[0].replace(/^.*::(.*)-instance$/, "$1");
        this.log.push(`up ${node}`);
        await this.check(node);
        // ignoreChanges: only the node named in rollout takes the desired value.
        if (this.config.get(ROLLOUT_KEY) !== node) return {};
        this.deployed.set(node, this.desired);
        const s = this.servers.get(node)!;
        const exited = new Promise((r) => s.proc.once("exit", r));
        await call(s, "SHUTDOWN", "NOSAVE").catch(() => undefined);
        await exited;
        if (++this.ups === this.neverBackAt) return {};
        await restartServer(s);
        // The fixture's servers run Redis' default 5 s diskless-sync delay; the test need not wait for it.
        await call(s, "CONFIG", "SET", "repl-diskless-sync-delay", "0");
        return {};
    }
}

test("roll --stack: targeted updates in order, each after the previous node is back", async () => {
    fx = await startCluster({ masters: 3, replicasPerMaster: 1, clusterNodeTimeoutMs: 1000 });
    await Promise.all(fx.all.map((s) => call(s, "CONFIG", "SET", "repl-diskless-sync-delay", "0")));
    const servers = new Map<string, TestServer>();
    fx.shards.forEach((sh, i) => sh.forEach((s, r) => servers.set(fx.nodeOf(s, i, r).name, s)));
    const idsBefore = await Promise.all([...servers.values()].map((s) => call(s, "CLUSTER", "MYID")));

    // What must hold whenever an update starts: every node answers and is ok, every replica's link is up,
    // and the node being updated is a replica (its shard failed over before it).
    const checks: string[] = [];
    const stack = new StackDouble(servers, async (node) => {
        for (const [name, s] of servers) {
            assert.match(await call(s, "CLUSTER", "INFO"), /cluster_state:ok/, `${name} not ok when ${node}'s update started`);
            const repl = await call(s, "INFO", "replication");
            if (/role:slave/.test(repl)) assert.match(repl, /master_link_status:up/, `${name}'s link down when ${node}'s update started`);
        }
        assert.match(await call(servers.get(node)!, "INFO", "replication"), /role:slave/, `${node} updated while a master`);
        checks.push(node);
    });
    stack.desired = "r7g.xlarge";
    stack.config.set(ROLLOUT_KEY, "t-s1-r1"); // left by an interrupted roll

    const target = await resolveTarget({ topology: fx.topologyFile });
    // A dry run does not touch the leftover key, and says why it cannot preview.
    await assert.rejects(rollWithStack(stack, target, { stack: "t", dryRun: true }, { out: capturedOutput().out, signal: new AbortController().signal }),
        /an earlier roll stopped while updating t-s1-r1 .*Run roll without --dry-run/);
    assert.deepEqual(stack.log, []);
    // A BGSAVE running when the roll starts (a backup, or any fork) is waited for, not refused:
    // ~30 keys on t-s2-r0 at 50 ms each keep it running for about 1.5 s.
    await loadKeys(fx.clusterClient(), 90, "bg");
    const saving = servers.get("t-s2-r0")!;
    // The fork of its replica's first full sync may still run on a loaded machine (CI saw BGSAVE
    // refused with "Background save already in progress"): the test's own BGSAVE starts after it.
    await waitFor(async () => /rdb_bgsave_in_progress:0/.test(await call(saving, "INFO", "persistence")), 30_000, "the full sync's fork on t-s2-r0 to end");
    await call(saving, "CONFIG", "SET", "rdb-key-save-delay", "50000");
    await call(saving, "BGSAVE");
    assert.match(await call(saving, "INFO", "persistence"), /rdb_bgsave_in_progress:1/);
    const { out, stdout, stderr } = capturedOutput({ json: true });
    const code = await rollWithStack(stack, target, { stack: "t", yes: true, nodeTimeout: 30000 }, { out, signal: new AbortController().signal });
    assert.equal(code, 0, stderr() + stdout());
    assert.match(stderr(), /waiting up to 30\.0 s for the BGSAVE on (\S+, )*t-s2-r0(, \S+)* to finish before the first restart/);
    await call(saving, "CONFIG", "SET", "rdb-key-save-delay", "0").catch(() => undefined);

    assert.deepEqual(stack.log, [
        "rm rollout", "preview",
        ...["t-s0-r1", "t-s1-r1", "t-s2-r1", "t-s0-r0", "t-s1-r0", "t-s2-r0"].flatMap((n) => [`set rollout=${n}`, `up ${n}`, "rm rollout"]),
    ]);
    assert.equal(checks.length, 6);
    assert.ok(!stack.config.has(ROLLOUT_KEY));
    assert.ok([...stack.deployed.values()].every((t) => t === "r7g.xlarge"));
    // Events: a failover before each master's update, and each node back before the next update.
    const events = stdout().split("\n").filter((l) => l.startsWith("{\"event\"")).map((l) => JSON.parse(l));
    const seq = events.filter((e) => ["node", "node-back", "failover"].includes(e.event)).map((e) => (e.event === "failover" ? `failover ${e.shard}` : `${e.event} ${e.node}`));
    assert.deepEqual(seq, [
        "node t-s0-r1", "node-back t-s0-r1", "node t-s1-r1", "node-back t-s1-r1", "node t-s2-r1", "node-back t-s2-r1",
        "failover 0", "node t-s0-r0", "node-back t-s0-r0", "failover 1", "node t-s1-r0", "node-back t-s1-r0", "failover 2", "node t-s2-r0", "node-back t-s2-r0",
    ]);
    assert.deepEqual(await Promise.all([...servers.values()].map((s) => call(s, "CLUSTER", "MYID"))), idsBefore);

    // Nothing pending now: a second roll previews and changes nothing.
    stack.log.length = 0;
    const again = capturedOutput({ json: true });
    assert.equal(await rollWithStack(stack, target, { stack: "t", yes: true }, { out: again.out, signal: new AbortController().signal }), 0);
    assert.deepEqual(stack.log, ["preview"]);
    assert.deepEqual(JSON.parse(again.stdout()), { ok: true, nodes: [], failovers: [] });
});

test("roll --stack: refused when pendingNodeChanges is unknown in the preview (nodes being created)", async () => {
    const servers = new Map<string, TestServer>();
    fx.shards.forEach((sh, i) => sh.forEach((s, r) => servers.set(fx.nodeOf(s, i, r).name, s)));
    const stack = new StackDouble(servers, async () => assert.fail("no update may run"));
    stack.desired = "r7g.2xlarge";
    stack.pendingOutput = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"; // the engine's unknown value
    const target = await resolveTarget({ topology: fx.topologyFile });
    const { out } = capturedOutput();
    await assert.rejects(rollWithStack(stack, target, { stack: "t", yes: true }, { out, signal: new AbortController().signal }), /pendingNodeChanges is not known in the preview: .*Run pulumi up first/);
    assert.deepEqual(stack.log, ["preview"]);
});

test("roll --stack: a node that does not come back stops the roll with the node, the step and how to go on", async () => {
    const servers = new Map<string, TestServer>();
    fx.shards.forEach((sh, i) => sh.forEach((s, r) => servers.set(fx.nodeOf(s, i, r).name, s)));
    const stack = new StackDouble(servers, async () => undefined);
    for (const n of servers.keys()) stack.deployed.set(n, "r7g.xlarge");
    stack.desired = "r7g.2xlarge";
    stack.neverBackAt = 2;
    const target = await resolveTarget({ topology: fx.topologyFile });
    // --dry-run: the order and what changes on each node, and no update.
    const dry = capturedOutput();
    assert.equal(await rollWithStack(stack, target, { stack: "t", dryRun: true }, { out: dry.out, signal: new AbortController().signal }), 0);
    assert.deepEqual(stack.log, ["preview"]);
    assert.match(dry.stderr(), / 1\/6 t-s0-r0 \(replica\): instanceType r7g.xlarge → r7g.2xlarge\n/);
    assert.match(dry.stderr(), /shard 0: failover t-s0-r1 → t-s0-r0\n +4\/6 t-s0-r1 \(master\)/);
    assert.match(dry.stdout(), /dry run: nothing was changed/);
    stack.log.length = 0;
    const { out } = capturedOutput();
    await assert.rejects(rollWithStack(stack, target, { stack: "t", yes: true, nodeTimeout: 3000 }, { out, signal: new AbortController().signal }), (e: Error) => {
        assert.equal(e.name, "StepError");
        // The first test left the r1 nodes masters: the replicas (r0) go first, and the second never comes back.
        assert.match(e.message, /roll: step "wait-back" failed on t-s1-r0/);
        assert.match(e.message, /cause: timed out after 3 s waiting for t-s1-r0 to be back in the cluster; last seen: t-s1-r0 does not answer/);
        assert.match(e.message, /left behind: t-s1-r0 was updated \(pulumi up --target\) but is not back in the cluster; no other node was touched/);
        assert.match(e.message, /to continue: look at t-s1-r0 .* npm run cluster -- roll --stack t/);
        return true;
    });
    // t-s0-r0 went first and came back; t-s1-r0 stopped the roll: nothing after it was updated.
    assert.deepEqual(stack.log.filter((l) => l.startsWith("up ")), ["up t-s0-r0", "up t-s1-r0"]);
});
