/**
 * `create` against real redis-server processes on loopback: from empty, rerun is a
 * no-op, resume after a cut-off run, refusals. cluster-node-timeout 1000 ms keeps
 * Redis's rejoin delay (a master turns ok no sooner than node-timeout after it got
 * its slots) short.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startServers, startServer, stopAll, freePortPair, TestServer } from "../helpers/redisServers";
import { Topology, TopologyNode, nodeName } from "../../components/topology";
import { zoneOf } from "../../components/plan/placement";
import { NodePool } from "../../scripts/redis/pool";
import { slotCommands } from "../../scripts/plan/formation";
import { formCluster, FormOptions } from "../../scripts/redis/form";
import { checkFormation } from "../../scripts/redis/health";
import { parseClusterNodes, formatRanges } from "../../scripts/redis/clusterNodes";
import { parseInfo, waitUntil } from "../../scripts/redis/clusterView";
import { capturedOutput } from "../helpers/output";
import { exitCodeFor, InterruptedError, RefusedError } from "../../scripts/errors";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run as createCommand } from "../../scripts/commands/create";

const NODE_TIMEOUT = 1000;
const started: TestServer[] = [];
const pools: NodePool[] = [];
after(async () => {
    await Promise.all(pools.map((p) => p.close()));
    await stopAll(started);
});

async function servers(n: number, opts: Parameters<typeof startServers>[1] = {}): Promise<TestServer[]> {
    const s = await startServers(n, { clusterNodeTimeoutMs: NODE_TIMEOUT, ...opts });
    started.push(...s);
    return s;
}

/** Shard s gets servers s and s + shards (r0, r1), zones by the stack's rule over 3 zones. */
function topologyOf(s: TestServer[], shards: number): Topology {
    const nodes: TopologyNode[] = s.map((x, i) => {
        const shard = i % shards;
        const r = Math.floor(i / shards);
        return { name: nodeName("t", shard, r), shard, az: `local-${"abc"[zoneOf(shard, r, 3)]}`, host: x.host, port: x.port };
    });
    return { clusterName: "t", port: 0, tls: false, nodes };
}

function pool(): NodePool {
    const p = new NodePool({ connectTimeoutMs: 1000 });
    pools.push(p);
    return p;
}

const opts = (extra: Partial<FormOptions> = {}): FormOptions => ({ timeoutMs: 20000, out: capturedOutput().out, ...extra });

/** What a no-op rerun must leave identical: ids, epochs, roles, slots, per node. */
async function snapshot(p: NodePool, t: Topology): Promise<string[]> {
    return Promise.all(t.nodes.map(async (n) => {
        const key = `${n.host}:${n.port}`;
        const nodes = parseClusterNodes((await p.call(key, "CLUSTER", "NODES")) as string);
        const info = parseInfo((await p.call(key, "CLUSTER", "INFO")) as string);
        const lines = nodes.map((x) => `${x.id} ${x.role} ${x.masterId ?? "-"} e${x.configEpoch} ${formatRanges(x.slots)}`).sort();
        return `${key} current_epoch=${info.cluster_current_epoch} | ${lines.join(" | ")}`;
    }));
}

test("create forms 3 masters + 3 replicas from empty nodes, off their masters' zones; a rerun changes nothing", async () => {
    const s = await servers(6);
    const t = topologyOf(s, 3);
    const p = pool();
    const r = await formCluster(p, t, opts());
    assert.equal(r.alreadyFormed, false);
    const { problems, view } = await checkFormation(p, { keys: t.nodes.map((n) => `${n.host}:${n.port}`), replicas: 3 });
    assert.deepEqual(problems, []);
    // r0 of each shard is master with its planned range; r1 replicates it, in another zone.
    for (let shard = 0; shard < 3; shard++) {
        const m = view.self(`${s[shard].host}:${s[shard].port}`)!;
        const rep = view.self(`${s[shard + 3].host}:${s[shard + 3].port}`)!;
        assert.equal(m.role, "master");
        assert.equal(formatRanges(m.slots), ["0-5461", "5462-10922", "10923-16383"][shard]);
        assert.equal(rep.role, "replica");
        assert.equal(rep.masterId, m.id);
        const azOf = (x: TestServer) => t.nodes.find((n) => n.port === x.port)!.az;
        assert.notEqual(azOf(s[shard]), azOf(s[shard + 3]), `shard ${shard}: replica in its master's zone`);
    }
    // The diskless-sync delay create shortened for the first sync is back.
    for (let i = 0; i < 3; i++) assert.deepEqual(await p.call(`${s[i].host}:${s[i].port}`, "CONFIG", "GET", "repl-diskless-sync-delay"), ["repl-diskless-sync-delay", "5"]);
    // Distinct config epochs on the masters.
    const epochs = [0, 1, 2].map((i) => view.self(`${s[i].host}:${s[i].port}`)!.configEpoch);
    assert.equal(new Set(epochs).size, 3);

    const before = await snapshot(p, t);
    const { out, stderr } = capturedOutput();
    const again = await formCluster(p, t, { timeoutMs: 5000, out });
    assert.equal(again.alreadyFormed, true);
    assert.match(stderr(), /cluster already formed: 6 nodes.*nothing to do/);
    assert.deepEqual(await snapshot(p, t), before);

    // A move cut off earlier left slot 100 MIGRATING on shard 0's master: the create
    // command first closes it (openSlots.ts: nothing moved yet, so it rolls back).
    const k0 = `${s[0].host}:${s[0].port}`;
    await p.call(k0, "CLUSTER", "SETSLOT", 100, "MIGRATING", view.self(`${s[1].host}:${s[1].port}`)!.id);
    const dir = mkdtempSync(join(tmpdir(), "rct-create-"));
    try {
        writeFileSync(join(dir, "topology.json"), JSON.stringify(t));
        const o = capturedOutput();
        const code = await createCommand({ topology: join(dir, "topology.json"), connectTimeout: 1000, timeout: 10000 }, { out: o.out, signal: new AbortController().signal });
        assert.equal(code, 0);
        assert.match(o.stderr(), /open slot/);
        const after = await checkFormation(p, { keys: t.nodes.map((n) => `${n.host}:${n.port}`), replicas: 3 });
        assert.deepEqual(after.problems, []);
        assert.deepEqual(after.view.openSlots(), []);
        assert.equal(formatRanges(after.view.self(k0)!.slots), "0-5461");
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test("create resumes a run cut off half-way (slots on some masters, some MEETs) and a run interrupted by a signal", async () => {
    const s = await servers(6);
    const t = topologyOf(s, 3);
    const p = pool();
    const k = (i: number) => `${s[i].host}:${s[i].port}`;
    // By hand, as a run that died: shard 0's master got its slots and half of shard 1's range,
    // shard 0's replica and shard 2's master met shard 0's master. Nothing else.
    // Shard 1's half as a Redis 6.2 node gets it (pipelined ADDSLOTS), the rest as on 7.x.
    for (const cmd of slotCommands([{ start: 0, end: 5461 }], "7.0.15")) await p.call(k(0), ...(cmd as [string, ...(string | number)[]]));
    const legacy = slotCommands([{ start: 5462, end: 8000 }], "6.2.14");
    assert.deepEqual(legacy.map((c) => `${c[1]} ${c.length - 2}`), ["ADDSLOTS 2000", "ADDSLOTS 539"]);
    for (const cmd of legacy) await p.call(k(1), ...(cmd as [string, ...(string | number)[]]));
    await p.call(k(3), "CLUSTER", "MEET", s[0].host, s[0].port);
    await p.call(k(2), "CLUSTER", "MEET", s[0].host, s[0].port);
    const dry = await formCluster(p, t, opts({ dryRun: true }));
    assert.equal(dry.dryRun, true);
    assert.deepEqual(dry.steps.slots.map((x) => `${x.name} ${formatRanges(x.ranges)}`), ["t-s1-r0 8001-10922", "t-s2-r0 10923-16383"]);
    assert.deepEqual((await checkFormation(p, { keys: [k(4)] })).view.self(k(4))!.slots, [], "dry run changed nothing");

    const r = await formCluster(p, t, opts());
    assert.equal(r.alreadyFormed, false);
    const { problems, view } = await checkFormation(p, { keys: t.nodes.map((n) => `${n.host}:${n.port}`), replicas: 3 });
    assert.deepEqual(problems, []);
    assert.equal(formatRanges(view.self(k(1))!.slots), "5462-10922");
    assert.equal(view.self(k(3))!.masterId, view.self(k(0))!.id);

    // Interrupted by a signal right after the MEETs: an InterruptedError (exit 130) that says how to go on; the rerun finishes.
    const s2 = await servers(6);
    const t2 = topologyOf(s2, 3);
    const ac = new AbortController();
    const base = capturedOutput().out;
    const out = { ...base, event: (name: string, fields: Record<string, unknown>, human?: string) => {
        base.event(name, fields, human);
        if (fields.step === "meet") ac.abort();
    } };
    await assert.rejects(formCluster(p, t2, { timeoutMs: 20000, out, signal: ac.signal, resumeHint: "run create again" }), (e: unknown) => {
        assert.ok(e instanceof InterruptedError);
        assert.equal(exitCodeFor(e), 130);
        assert.match(e.message, /^create: stopped during step "wait-masters": interrupted \(Ctrl-C\)\n {2}left behind: slots assigned, masters joining, replicas not attached\n {2}to continue: run create again$/);
        return true;
    });
    // The masters' join timeout (500 ms) was put back on the way out.
    for (const n of t2.nodes) assert.deepEqual(await p.call(`${n.host}:${n.port}`, "CONFIG", "GET", "cluster-node-timeout"), ["cluster-node-timeout", String(NODE_TIMEOUT)]);
    const resumed = await formCluster(p, t2, opts());
    assert.equal(resumed.alreadyFormed, false);
    assert.equal(resumed.steps.slots.length, 0, "slots were already assigned");
    assert.equal(resumed.steps.epochs.length, 0, "epochs were already set");
    assert.equal(resumed.steps.replicate.length, 3);
    assert.deepEqual((await checkFormation(p, { keys: t2.nodes.map((n) => `${n.host}:${n.port}`), replicas: 3 })).problems, []);
});

test("create refuses, naming node, reason and way out, and changes nothing: keys, unreachable, cluster mode off, another cluster", async () => {
    const s = await servers(5);
    const [plain] = await Promise.all([startServer({ cluster: false })]);
    started.push(plain);
    const p = pool();
    const k = (x: TestServer) => `${x.host}:${x.port}`;
    // s[0] holds a key but no slot (it owned all slots, got a key, gave the slots up).
    await p.call(k(s[0]), "CLUSTER", "ADDSLOTSRANGE", 0, 16383);
    await waitUntil(async () => parseInfo((await p.call(k(s[0]), "CLUSTER", "INFO")) as string).cluster_state === "ok", { timeoutMs: 5000, what: "state ok" });
    await p.call(k(s[0]), "SET", "foo", "bar");
    await p.call(k(s[0]), "CLUSTER", "DELSLOTSRANGE", 0, 16383);
    // s[3] and s[4] form another cluster; only s[3] is in the topology.
    await p.call(k(s[3]), "CLUSTER", "MEET", s[4].host, s[4].port);
    await checkFormation(p, { keys: [k(s[3])] }).then(async () => {
        // Wait for the handshake to finish (s[3] knows s[4] by id) and for Redis' own
        // config-epoch collision handling to settle (both start at epoch 0; one bumps
        // itself to 1 and gossips it): otherwise that bump lands between the two
        // snapshots below and looks like a change made by create.
        for (let i = 0; i < 500; i++) {
            const views = await Promise.all([s[3], s[4]].map(async (x) => parseClusterNodes((await p.call(k(x), "CLUSTER", "NODES")) as string)));
            const settled = views.every((nodes) => nodes.length === 2
                && !nodes.some((n) => n.flags.includes("handshake"))
                && nodes[0].configEpoch !== nodes[1].configEpoch);
            if (settled) return;
            await new Promise((r) => setTimeout(r, 10));
        }
        throw new Error("handshake and epoch collision handling did not finish");
    });
    const deadPort = await freePortPair();
    const nodes: TopologyNode[] = [
        { name: "t-s0-r0", shard: 0, az: "local-a", host: s[0].host, port: s[0].port },
        { name: "t-s1-r0", shard: 1, az: "local-b", host: s[1].host, port: s[1].port },
        { name: "t-s2-r0", shard: 2, az: "local-c", host: s[2].host, port: s[2].port },
        { name: "t-s0-r1", shard: 0, az: "local-b", host: plain.host, port: plain.port },
        { name: "t-s1-r1", shard: 1, az: "local-c", host: "127.0.0.1", port: deadPort },
        { name: "t-s2-r1", shard: 2, az: "local-a", host: s[3].host, port: s[3].port },
    ];
    const t: Topology = { clusterName: "t", port: 0, tls: false, nodes };
    const before = await snapshot(p, { ...t, nodes: nodes.filter((n) => n.port !== deadPort && n.port !== plain.port) });
    await assert.rejects(formCluster(p, t, opts()), (e: unknown) => {
        assert.ok(e instanceof RefusedError);
        const m = e.message;
        assert.match(m, /^create refused; nothing was changed:/);
        assert.match(m, new RegExp(`t-s0-r0 \\(${k(s[0])}\\): holds 1 key\\(s\\) but is not part of a cluster\\..*--force does not change this.*FLUSHALL`));
        assert.match(m, new RegExp(`t-s1-r1 \\(127\\.0\\.0\\.1:${deadPort}\\): unreachable \\(.*\\)\\. Check that redis-server runs there .*--nat-map.*--force skips unreachable nodes`));
        assert.match(m, new RegExp(`t-s0-r1 \\(${k(plain)}\\): cluster mode is off`));
        assert.match(m, new RegExp(`t-s2-r1 \\(${k(s[3])}\\): already knows 1 node\\(s\\) outside this topology \\(${k(s[4])} .*\\), so it belongs to another cluster.*CLUSTER RESET HARD`));
        return true;
    });
    // --force never accepts keys (nor the rest here): still refused, still unchanged.
    await assert.rejects(formCluster(p, t, opts({ force: true })), /holds 1 key\(s\)/);
    assert.deepEqual(await snapshot(p, { ...t, nodes: nodes.filter((n) => n.port !== deadPort && n.port !== plain.port) }), before);
});

test("create --force goes on without unreachable nodes: another node of the shard leads", async () => {
    const s = await servers(4);
    const [deadA, deadB] = [await freePortPair(), await freePortPair()];
    const nodes: TopologyNode[] = [
        { name: "t-s0-r0", shard: 0, az: "local-a", host: s[0].host, port: s[0].port },
        { name: "t-s0-r1", shard: 0, az: "local-b", host: s[1].host, port: s[1].port },
        { name: "t-s1-r0", shard: 1, az: "local-b", host: s[2].host, port: s[2].port },
        { name: "t-s1-r1", shard: 1, az: "local-c", host: "127.0.0.1", port: deadA },
        { name: "t-s2-r0", shard: 2, az: "local-c", host: "127.0.0.1", port: deadB },
        { name: "t-s2-r1", shard: 2, az: "local-a", host: s[3].host, port: s[3].port },
    ];
    const t: Topology = { clusterName: "t", port: 0, tls: false, nodes };
    const p = pool();
    await assert.rejects(formCluster(p, t, opts()), /t-s1-r1 .*unreachable[\s\S]*t-s2-r0 .*unreachable/);
    const { out, stderr } = capturedOutput();
    const r = await formCluster(p, t, { timeoutMs: 20000, out, force: true });
    assert.deepEqual(r.skipped.sort(), [`127.0.0.1:${deadA}`, `127.0.0.1:${deadB}`].sort());
    assert.deepEqual(r.plan.shards.map((x) => x.master.name), ["t-s0-r0", "t-s1-r0", "t-s2-r1"]);
    assert.match(stderr(), /--force: t-s1-r1 .*unreachable/);
    const keys = [s[0], s[1], s[2], s[3]].map((x) => `${x.host}:${x.port}`);
    const { problems, view } = await checkFormation(p, { keys, replicas: 1 });
    assert.deepEqual(problems, []);
    assert.equal(view.self(keys[1])!.masterId, view.self(keys[0])!.id);
    assert.equal(formatRanges(view.self(keys[3])!.slots), "10923-16383");
});
