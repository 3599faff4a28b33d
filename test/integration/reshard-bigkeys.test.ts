import { test, after } from "node:test";
import assert from "node:assert/strict";
import Redis from "ioredis";
import { ClusterFixture, clusterCheck, loadKeys, missingKeys, runCli, startCluster } from "../helpers/cluster";

let fx: ClusterFixture | undefined;
after(async () => fx?.stop());

/** A hash tag whose slot is `slot` (searching t0, t1, …). */
async function tagFor(c: Redis, slot: number): Promise<string> {
    for (let i = 0; ; i++) if (Number(await c.call("CLUSTER", "KEYSLOT", `b${i}`)) === slot) return `{b${i}}`;
}

/** The first slot of each planned stream, from a dry run's plan event. */
async function plannedSlots(args: string[]): Promise<number[]> {
    const dry = await runCli([...args, "--dry-run", "--json"]);
    assert.equal(dry.code, 0, dry.stderr);
    const plan = dry.stdout.split("\n").filter((l) => l.startsWith("{\"event\":\"plan\"")).map((l) => JSON.parse(l)).pop();
    return plan.streams.map((s: { ranges: string }) => Number(s.ranges.split(/[-,]/)[0]));
}

test("big keys move alone, with the server-side sizing and with the plain fallback when scripting is not allowed", { timeout: 120_000 }, async () => {
    fx = await startCluster({ masters: 3, spare: 2, acl: true });
    // An operator user without @scripting: the engine must fall back to GETKEYSINSLOT + MEMORY USAGE.
    await Promise.all(fx.all.map((s) => fx!.client(s).call("ACL", "SETUSER", "ops", "on", ">ops-pw-0123456789", "~*", "&*", "+@all", "-@scripting")));
    const data = fx.clusterClient();
    const small = await loadKeys(data, 3000);
    const want = new Map(small.map((k) => [k, `v-${k}`]));
    const big = "x".repeat(2 * 1024 * 1024);
    const anyNode = fx.client(fx.shards[0][0]);

    for (const [i, spare] of fx.spare.entries()) {
        const shards = [...fx.shards, ...fx.spare.slice(0, i + 1).map((s) => [s])];
        fx.writeTopology(shards);
        const auth = i === 0 ? ["--user", "ops", "--password", "ops-pw-0123456789"] : [];
        const args = ["scale", "--topology", fx.topologyFile, "--yes", "--big-key-mb", "1", ...auth];
        const slots = await plannedSlots(args);
        assert.ok(slots.length >= 3, `streams planned: ${slots.join(",")}`);
        for (const slot of slots) {
            const key = `${await tagFor(anyNode, slot)}big${i}`;
            await data.set(key, big);
            want.set(key, big);
        }
        const out = await runCli(args);
        assert.equal(out.code, 0, out.stderr);
        const moved = out.stderr.split("\n").filter((l) => /big key \([\d.]+ MiB\) moved alone with a \d+ ms timeout/.test(l));
        assert.equal(moved.length, slots.length, `every big key moved alone (${i === 0 ? "plain fallback" : "scripted"}):\n${out.stderr}`);
        // Which path ran: EVALSHA refused (ACL) for ops, executed for admin.
        const stats = (await Promise.all(fx.shards.map(async (sh) => (await fx!.client(sh[0]).info("commandstats")).split("\n").find((l) => l.startsWith("cmdstat_evalsha:")) ?? ""))).join(" ");
        if (i === 0) assert.match(stats, /rejected_calls=[1-9]/, `scripting refused for ops: ${stats}`);
        else assert.match(stats, /calls=\d+,usec=\d+,usec_per_call=[\d.]+,rejected_calls=\d+,failed_calls=0/);
        const self = (await fx.client(spare).call("CLUSTER", "NODES")) as string;
        assert.match(self, /myself,master/);
    }
    assert.deepEqual(await missingKeys(data, want), [], "every key, big and small, is readable");
    assert.deepEqual((await clusterCheck(fx.shards[0][0], fx.auth)).problems, []);
});
