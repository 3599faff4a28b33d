/**
 * Issue 9, defect 5: the source master of a move is killed mid-way and its replica is
 * promoted; the next run (one run) must finish: it waits for the cluster to agree before
 * repairing the open slots, and leaves no more open than it found.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Cluster } from "ioredis";
import { readFileSync, writeFileSync } from "node:fs";
import { ClusterFixture, loadKeys, missingKeys, runCli, spawnCli, startCluster } from "../helpers/cluster";
import { parseClusterNodes } from "../../scripts/plan/clusterNodes";
import type { Topology } from "../../components/topology";

let fx: ClusterFixture | undefined;
after(async () => fx?.stop());

test("one rerun recovers a move whose source master died and was replaced by its replica", { timeout: 120_000 }, async (t) => {
    fx = await startCluster({ masters: 3, replicasPerMaster: 1 });
    const data = fx.clusterClient();
    const keys = await loadKeys(data, 20000);
    const want = new Map(keys.map((k) => [k, `v-${k}`]));
    const topo = JSON.parse(readFileSync(fx.topologyFile, "utf8")) as Topology;
    topo.nodes.find((n) => n.shard === 0)!.weight = 2; // shards 1 and 2 give slots to shard 0
    writeFileSync(fx.topologyFile, JSON.stringify(topo));

    const run = spawnCli(["rebalance", "--topology", fx.topologyFile, "--batch", "2", "--parallel", "1"]);
    const sources = [fx.shards[1][0], fx.shards[2][0]];
    let victim: typeof sources[number] | undefined;
    const deadline = Date.now() + 60_000;
    const self = async (s: typeof sources[number]) => parseClusterNodes((await fx!.client(s).call("CLUSTER", "NODES")) as string).find((n) => n.myself)!;
    // Both sides open: the source migrating and the target (shard 0) importing. Checked again
    // once the tool is frozen, since it may have closed the batch between the two reads.
    const bothOpen = async (s: typeof sources[number]) => (await self(s)).migrating.size > 0 && (await self(fx!.shards[0][0])).importing.size > 0;
    while (!victim && Date.now() < deadline && run.proc.exitCode === null) {
        for (const s of sources) {
            if (!(await bothOpen(s))) continue;
            run.proc.kill("SIGSTOP"); // freeze the tool with the slots open, then kill the source under it
            if (!(await bothOpen(s))) {
                run.proc.kill("SIGCONT");
                continue;
            }
            s.proc.kill("SIGKILL");
            run.proc.kill("SIGKILL");
            victim = s;
            break;
        }
        await new Promise((r) => setTimeout(r, 5));
    }
    await run.done;
    assert.ok(victim, "caught a source with open slots");
    const shard = fx.shards.findIndex((sh) => sh[0] === victim);
    const replica = fx.shards[shard][1];
    const target = fx.client(fx.shards[0][0]);
    const importing = parseClusterNodes((await target.call("CLUSTER", "NODES")) as string).find((n) => n.myself)!.importing.size;
    assert.ok(importing > 0, "the target still imports");

    // Right after the kill: the failover has not happened yet. The rerun waits for it.
    const rerun = await runCli(["rebalance", "--topology", fx.topologyFile, "--take-over-lease"]);
    t.diagnostic(rerun.stderr.split("\n").filter((l) => /open slot|waiting|settled|lease|owner that is gone/.test(l)).join(" | "));
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stderr, /importing slot\(s\) named an owner that is gone; told the importing node\(s\) the current owner/);
    const survivors = fx.all.filter((s) => s !== victim);
    for (const s of survivors) {
        const me: ReturnType<typeof parseClusterNodes>[number] = parseClusterNodes((await fx.client(s).call("CLUSTER", "NODES")) as string).find((n) => n.myself)!;
        assert.equal(me.importing.size + me.migrating.size, 0, `${s.key}: no open slot`);
    }
    const promoted = parseClusterNodes((await fx.client(replica).call("CLUSTER", "NODES")) as string).find((n) => n.myself)!;
    assert.equal(promoted.role, "master", "the replica took over");
    // Read through a client that learns the slot map now, from the survivors only: the first one may still route the dead
    // master's slots to its address, which another test file running beside this one may have
    // taken for a new server of its own (ports are drawn at random per process), which then answers
    // nil. Seen once in a full run (a quarter of the keys unreadable), never alone: if keys are
    // missing through a fresh client, say where each survivor thinks they are.
    const fresh = new Cluster(survivors.map((s) => ({ host: s.host, port: s.port })), { redisOptions: { username: fx.auth?.user, password: fx.auth?.password } });
    fresh.on("error", () => undefined);
    const miss = await missingKeys(fresh, want).finally(() => fresh.disconnect());
    if (miss.length) {
        const lines = [`${miss.length} of ${want.size} keys unreadable; killed ${victim.key}`];
        for (const k of miss.slice(0, 3)) {
            const slot = String(await fx.client(survivors[0]).call("CLUSTER", "KEYSLOT", k));
            for (const s of survivors) {
                const view = parseClusterNodes((await fx.client(s).call("CLUSTER", "NODES")) as string);
                const owner = view.find((n) => n.slots.some((r) => Number(slot) >= r.start && Number(slot) <= r.end));
                lines.push(`${k} slot ${slot} on ${s.key} (${view.find((n) => n.myself)!.role}): ${await fx.client(s).call("CLUSTER", "COUNTKEYSINSLOT", slot)} key(s), owner in its view ${owner?.key ?? "none"}`);
            }
        }
        t.diagnostic(lines.join(" | "));
    }
    assert.deepEqual(miss, [], "every key readable");
});
