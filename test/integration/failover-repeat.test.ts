/**
 * Failovers of one shard back and forth in quick succession (issue 17). Redis' masters
 * vote about one master's replicas at most once per 2 × cluster-node-timeout
 * (clusterSendFailoverAuthIfNeeded), so the third failover lands in the window of the
 * first one's vote, and Redis aborts it after 5 s ("Manual failover timed out"). The
 * tool sees that, waits until Redis may succeed, and retries once.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ClusterFixture, loadKeys, missingKeys, startCluster } from "../helpers/cluster";
import { capturedOutput } from "../helpers/output";
import { run } from "../../scripts/commands/failover";
import { parseClusterNodes } from "../../scripts/plan/clusterNodes";

let fx: ClusterFixture | undefined;
after(async () => fx?.stop());

test("failover: a third failover of one shard inside the vote window is retried once Redis may, not left to time out", { timeout: 90_000 }, async () => {
    // Node timeout 3000: the vote window (6 s) outlasts the 5 s Redis gives a manual failover.
    fx = await startCluster({ masters: 3, replicasPerMaster: 1, clusterNodeTimeoutMs: 3000 });
    const data = fx.clusterClient();
    const keys = await loadKeys(data, 2000);
    const want = new Map(keys.map((k) => [k, `v-${k}`]));
    const [r0, r1] = fx.shards[0];
    const outputs = [];
    for (let i = 0; i < 3; i++) {
        const o = capturedOutput({ json: true });
        const code = await run({ topology: fx.topologyFile, shard: 0, json: true }, { out: o.out, signal: new AbortController().signal });
        assert.equal(code, 0, `failover ${i + 1}: ${o.stderr()}${o.stdout()}`);
        outputs.push(o.stdout().trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>));
    }
    // The first two went through at once; Redis aborted the third, and the retry promoted r1.
    assert.deepEqual(outputs.map((events) => events.filter((e) => e.event === "retry").length), [0, 0, 1]);
    assert.match(String(outputs[2][0].reason), /Manual failover timed out.*2 × cluster-node-timeout \(6000 ms\)/);
    const last = outputs[2].at(-1)!;
    assert.equal(last.ok, true);
    assert.equal(last.to, r1.key);
    const r1Id = (await fx.client(r1).call("CLUSTER", "MYID")) as string;
    const view = parseClusterNodes((await fx.client(r0).call("CLUSTER", "NODES")) as string);
    assert.equal(view.find((n) => n.id === r1Id)?.role, "master");
    assert.deepEqual(await missingKeys(data, want), []);
});
