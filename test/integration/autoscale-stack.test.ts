/**
 * The AWS path of `npm run cluster -- autoscale` on real servers, with only Pulumi
 * replaced: a double of the workspace whose `pulumi up` rewrites the topology the
 * way the stack's outputs change (the new node appears; the removed one goes).
 * The loop's own environment (stackEnv: collector, facts, lease, `scale`) runs
 * for real: 3 -> 4 shards under memory pressure, then back to 3 when the keys are
 * gone, in the order config set -> up -> scale, and scale -> config set -> up.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { parseStackConfig, StackConfig } from "../../components/config";
import { StackWorkspace } from "../../scripts/autoscale/apply";
import { autoscaleRound, DecisionRecord } from "../../scripts/autoscale/run";
import { stackEnv } from "../../scripts/commands/autoscale";
import { createOutput } from "../../scripts/output";
import { startCluster } from "../helpers/cluster";

test("autoscale (stack path): pulumi up through a workspace double, scale for real, in the safe order both ways", { timeout: 120_000 }, async () => {
    const fx = await startCluster({ masters: 3, spare: 1, acl: true, clusterNodeTimeoutMs: 1000 });
    try {
        for (const s of fx.all) await fx.client(s).call("CONFIG", "SET", "maxmemory", String(16 * 1024 * 1024));
        const calls: string[] = [];
        const config: Record<string, unknown> = {
            shards: "3", replicasPerShard: "0",
            autoscale: JSON.stringify({ enabled: true, intervalSeconds: 1, targetMemoryPercent: 30, maxShards: 4, scaleOutDatapoints: 1, scaleOutCooldownSeconds: 0, scaleInCooldownSeconds: 0, scaleInWindowSeconds: 2 }),
        };
        const ws: StackWorkspace = {
            stack: "fake",
            async readConfig(): Promise<StackConfig> {
                return parseStackConfig((k) => config[k] as string | undefined, { project: "redis-cluster", stack: "fake" });
            },
            async setConfig(values) {
                calls.push(`config ${Object.entries(values).map(([k, v]) => `${k}=${v}`).join(",")}`);
                Object.assign(config, values);
            },
            async up() {
                const n = Number(config.shards);
                calls.push(`up ${n}`);
                // What the stack's outputs become: shards 0..n-1, the spare server being shard 3.
                fx.writeTopology([...fx.shards, ...fx.spare.map((s) => [s])].slice(0, n));
            },
        };
        const sink = new PassThrough().resume();
        const out = createOutput({ json: true, stdout: sink, stderr: sink });
        const log: string[] = [];
        const stderr = new PassThrough();
        stderr.on("data", (d) => log.push(String(d).trim()));
        const env = stackEnv({ topology: fx.topologyFile, stateFile: join(fx.dir, "autoscale.json"), connectTimeout: 1000 }, { out, signal: new AbortController().signal }, ws);
        const origScale = env.apply.bind(env);
        env.apply = async (d, shape) => {
            calls.push(`apply ${d.action}`);
            await origScale(d, shape);
        };
        const round = () => autoscaleRound(env, { stdout: sink, stderr }, out);

        const data = fx.clusterClient();
        // 12,000 keys of 1 KB over 3 masters of 16 MiB: ~27 % each on top of the servers' own ~14 %, above the 30 % target.
        const keys = Array.from({ length: 12_000 }, (_, i) => `big:${i}`);
        const value = (k: string) => `v-${k}-${"x".repeat(1000)}`;
        for (let i = 0; i < keys.length; i += 2000) await Promise.all(keys.slice(i, i + 2000).map((k) => data.set(k, value(k))));
        let rec: DecisionRecord = await round();
        assert.equal(rec.action, "add-shards", log.join("\n"));
        assert.deepEqual([rec.from, rec.to, rec.outcome], [3, 4, "done"], log.join("\n"));
        assert.deepEqual(calls, ["apply add-shards", "config shards=4", "up 4"]);
        const masters = async () => (await fx.client(fx.all[0]).call("CLUSTER", "NODES") as string).split("\n").filter((l) => l.split(" ")[2]?.split(",").includes("master") && l.split(" ").length > 8).length;
        assert.equal(await masters(), 4, "the spare joined as a master owning slots");
        const got = await Promise.all(keys.map((k) => data.get(k)));
        assert.equal(got.filter((v, i) => v !== value(keys[i])).length, 0, "every key kept");

        // The data goes; after the (2 s) window, one shard is drained, then the stack shrinks.
        for (let i = 0; i < keys.length; i += 2000) await Promise.all(keys.slice(i, i + 2000).map((k) => data.del(k)));
        calls.length = 0;
        const t0 = Date.now();
        do {
            await new Promise((r) => setTimeout(r, 1000));
            rec = await round();
        } while (rec.action === "none" && Date.now() - t0 < 20_000);
        assert.deepEqual([rec.action, rec.from, rec.to, rec.outcome], ["remove-shards", 4, 3, "done"], log.join("\n"));
        assert.deepEqual(calls, ["apply remove-shards", "config shards=3", "up 3"]);
        assert.equal(await masters(), 3);
        assert.match(log.join("\n"), /autoscale stack fake: remove-shards 4 -> 3: .* below 75 % of the target for the whole 2 s window/);
    } finally {
        await fx.stop();
    }
});
