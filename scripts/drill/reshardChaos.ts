/**
 * reshard-chaos: `scale` runs (out 3 -> 4 shards, then in 4 -> 3, alternately)
 * SIGKILLed at random moments, each followed by one rerun of the same command.
 * After every rerun: every key loaded reads back, no node has an open slot,
 * `redis-cli --cluster check` finds nothing, every replica holds as many keys as
 * its master and the masters hold exactly the keys loaded. The rerun passes
 * --take-over-lease, as the killed run's lease tells the operator to (its holder's
 * process is gone: docs/lease.md).
 */
import { clusterCheck, loadKeys, spawnCli } from "../../test/helpers/cluster";
import { TestServer } from "../../test/helpers/redisServers";
import { startDrillCluster } from "./cluster";
import { DrillReport, lostKeys, nodesOf, openSlotsOf, Report, sleep, timeUntil } from "./common";

/** How long `status` may take to agree after a rerun before the drill calls it unhealthy. */
const STATUS_SETTLE_MS = 10_000;

export interface ReshardChaosOptions {
    quick?: boolean;
    /** Runs to kill. @default 10; quick: 2 */
    kills?: number;
    /** Keys loaded. @default 50000; quick: 5000 */
    keys?: number;
    log?: (line: string) => void;
}

interface Round {
    direction: "out" | "in";
    /** The kill was aimed inside the slot moves. */
    inMoves: boolean;
    killAfterMs: number;
    /** False when the run finished before the kill. */
    killed: boolean;
    openSlotsLeft: number;
    rerunExit: number | null;
    rerunMs: number;
    lost: number;
    checkProblems: number;
    replicaMismatch: string[];
    masterKeys: number;
    /**
     * `status` of the tool after the rerun: 0 when healthy (every shard as the topology declares it)
     * within STATUS_SETTLE_MS; the last exit code otherwise.
     */
    statusExit: number | null;
    /** How long after the rerun `status` first said healthy (gossip may take a few seconds to agree, e.g. on a replica's new master). */
    statusSettledMs?: number;
}

export async function reshardChaos(o: ReshardChaosOptions = {}): Promise<DrillReport> {
    const log = o.log ?? (() => undefined);
    const kills = o.kills ?? (o.quick ? 2 : 10);
    const keyCount = o.keys ?? (o.quick ? 5000 : 50000);
    // Small batches and one stream make a run long enough to kill in the middle of.
    const scaleArgs = ["--yes", "--parallel", "1", "--batch", "50"];
    const report = new Report("reshard-chaos", { shards: "3 <-> 4", replicasPerShard: 1, keys: keyCount, kills, killedRun: scaleArgs.join(" "), quick: !!o.quick }, log);
    log(`reshard-chaos: 3 shards x (1 + 1) <-> 4, ${keyCount} keys, ${kills} killed scale runs`);
    // A short node timeout in the quick run: joining new nodes waits on gossip that it paces.
    const dc = await startDrillCluster({ shards: 3, replicas: 1, spare: 2, settings: o.quick ? { clusterNodeTimeoutMs: 1000 } : {} });
    const rounds: Round[] = [];
    try {
        // Patient: reading 50,000 keys back on a busy machine is not the failover this client is tuned for.
        const data = dc.appClient({ redisOptions: { username: dc.app.user, password: dc.app.password, commandTimeout: 10000, maxRetriesPerRequest: 3 } });
        const want = new Map((await loadKeys(data, keyCount, "rc")).map((k) => [k, `v-${k}`]));
        let shards: TestServer[][] = dc.shards.map((s) => [...s]);
        let spare = [...dc.spare];
        let lastRunMs = o.quick ? 1500 : 6000;
        // How long the slot moves of a run took ("moved … in X s"), for kills aimed inside them.
        let moveMs = o.quick ? 1500 : 4000;
        let killed = 0;
        for (let round = 0; killed < kills && round < kills * 3; round++) {
            const direction: Round["direction"] = shards.length === 3 ? "out" : "in";
            const target = direction === "out" ? [...shards, spare] : shards.slice(0, 3);
            dc.writeTopology(target);
            // Every other kill is aimed at the slot moves (a random moment after the run prints its move
            // plan); the others at any moment from the start (joining, planning, the lease, the moves).
            const inMoves = round % 2 === 1;
            const t0 = Date.now();
            const run = spawnCli(["scale", "--topology", dc.topologyFile, ...scaleArgs]);
            let killAfterMs = Math.round(50 + Math.random() * lastRunMs * 0.9);
            let finished: boolean;
            if (inMoves) {
                const planned = await timeUntil(async () => run.proc.exitCode !== null || /move \d+ slot\(s\)/.test(run.stderrSoFar()), 120000, 10);
                const delay = Math.round(Math.random() * moveMs * 0.9);
                finished = run.proc.exitCode !== null || planned === undefined || await Promise.race([run.done.then(() => true), sleep(delay).then(() => false)]);
                killAfterMs = Date.now() - t0;
            } else {
                finished = await Promise.race([run.done.then(() => true), sleep(killAfterMs).then(() => false)]);
            }
            if (!finished) run.proc.kill("SIGKILL");
            const first = await run.done;
            const wasKilled = first.signal === "SIGKILL";
            if (wasKilled) killed++;
            else lastRunMs = Date.now() - t0;
            const moved = /moved \d+ slot\(s\) and \d+ key\(s\) in ([\d.]+) s/.exec(first.stderr);
            if (moved) moveMs = Number(moved[1]) * 1000;
            const members = target.flat();
            const openSlotsLeft = (await Promise.all(members.map((s) => openSlotsOf(dc.client(s)).catch(() => 0)))).reduce((a, b) => a + b, 0);
            const t1 = Date.now();
            const rerun = wasKilled ? await dc.cli("scale", "--yes", "--quiet", "--take-over-lease") : first;
            const rerunMs = Date.now() - t1;
            if (wasKilled && rerun.code === 0) lastRunMs = Math.max(lastRunMs, Date.now() - t0);

            const lost = (await lostKeys(data, want)).length;
            const open = (await Promise.all(members.map((s) => openSlotsOf(dc.client(s))))).reduce((a, b) => a + b, 0);
            const check = await clusterCheck(target[0][0], dc.admin);
            // Masters and their replicas as the cluster has them (not as the topology declares them: the
            // tool's status judges that). Replication is asynchronous: give each replica a moment to catch up.
            const replicaMismatch: string[] = [];
            let masterKeys = 0;
            const view = await nodesOf(dc.client(target[0][0]));
            const byKey = new Map(members.map((s) => [s.key, s]));
            const dbsize = async (key: string) => Number(await dc.client(byKey.get(key)!).call("DBSIZE"));
            for (const m of view.filter((n) => n.role === "master" && n.slots.length > 0 && byKey.has(n.key))) {
                masterKeys += await dbsize(m.key);
                for (const r of view.filter((n) => n.masterId === m.id && byKey.has(n.key))) {
                    const same = await timeUntil(async () => (await dbsize(r.key)) === (await dbsize(m.key)), 5000, 50);
                    if (same === undefined) replicaMismatch.push(`${r.key} ${await dbsize(r.key)} keys, its master ${m.key} ${await dbsize(m.key)}`);
                }
            }
            // Gossip carries the last changes (a replica's new master, a forgotten node) to every
            // node within seconds (docs/operations.md measured 0.3-3.2 s): judge status once that passed.
            let status = await dc.cli("status");
            const statusSettledMs = status.code === 0 ? 0 : await timeUntil(async () => (status = await dc.cli("status")).code === 0, STATUS_SETTLE_MS, 500);
            const r: Round = { direction, inMoves, killAfterMs, killed: wasKilled, openSlotsLeft, rerunExit: rerun.code, rerunMs, lost, checkProblems: check.problems.length + open, replicaMismatch, masterKeys, statusExit: status.code, statusSettledMs };
            rounds.push(r);
            log(`  round ${round + 1}: scale ${direction} ${wasKilled ? `killed after ${killAfterMs} ms${inMoves ? " (aimed at the moves)" : ""} (${openSlotsLeft} MIGRATING/IMPORTING mark(s) left), rerun exit ${rerun.code} in ${rerunMs} ms` : `finished before the kill (exit ${first.code})`}; lost ${lost}, open ${open}, check problems ${check.problems.length}, master keys ${masterKeys}, status exit ${status.code}${statusSettledMs ? ` (healthy after ${statusSettledMs} ms)` : ""}${replicaMismatch.length ? `, replicas behind: ${replicaMismatch.join("; ")}` : ""}`);
            if (rerun.code !== 0) log(`    rerun stderr: ${rerun.stderr.trim().split("\n").slice(-6).join("\n    ")}`);
            if (status.code !== 0) log(`    status: ${status.stdout.trim().split("\n").slice(-4).join(" | ")} ${status.stderr.trim().split("\n").slice(-3).join(" | ")}`);
            if (check.problems.length) log(`    redis-cli --cluster check: ${check.problems.slice(0, 5).join(" | ")}`);
            if (rerun.code !== 0 || lost > 0) break; // the state is what the report is about; going on would blur it
            if (direction === "out") {
                shards = target;
                spare = [];
            } else {
                // The removed shard's nodes are fenced and reset: a fresh pair joins next time, as a new instance would.
                await dc.stopServers(shards[3]);
                shards = target;
                spare = await dc.more(2);
            }
        }
        const killedRounds = rounds.filter((r) => r.killed);
        report.figure("scaleRunsKilled", killedRounds.length);
        report.figure("runsFinishedBeforeTheKill", rounds.length - killedRounds.length);
        report.figure("killedAfterMs", killedRounds.map((r) => r.killAfterMs));
        report.figure("killsAimedAtTheMoves", killedRounds.filter((r) => r.inMoves).length);
        report.figure("killsLeavingOpenSlots", killedRounds.filter((r) => r.openSlotsLeft > 0).length);
        // Summed over nodes: a slot being moved counts twice (MIGRATING on its source, IMPORTING on its target).
        report.figure("openSlotMarksLeftByKills", killedRounds.map((r) => r.openSlotsLeft));
        report.figure("rerunExitCodes", killedRounds.map((r) => r.rerunExit));
        report.figure("rerunMs", killedRounds.map((r) => r.rerunMs));
        report.figure("keysLost", rounds.reduce((a, r) => a + r.lost, 0));
        report.check(`at least ${kills} scale runs killed mid-way`, killedRounds.length >= kills, `${killedRounds.length} killed`);
        report.check("one rerun completes each killed run (exit 0)", killedRounds.every((r) => r.rerunExit === 0), `exits ${killedRounds.map((r) => r.rerunExit).join(",")}`);
        report.check("zero keys lost", rounds.every((r) => r.lost === 0), `${rounds.reduce((a, r) => a + r.lost, 0)} of ${keyCount} unreadable over ${rounds.length} rounds`);
        report.check("no open slot and redis-cli --cluster check clean after every rerun", rounds.every((r) => r.checkProblems === 0), `${rounds.filter((r) => r.checkProblems).length} round(s) with problems`);
        report.check("the tool's status is healthy within seconds of every rerun (shards as the topology declares them)", rounds.every((r) => r.statusExit === 0), `status exits ${rounds.map((r) => r.statusExit).join(",")} (within ${STATUS_SETTLE_MS / 1000} s; settled after ${rounds.map((r) => r.statusSettledMs ?? "-").join(",")} ms)`);
        report.check("masters hold exactly the keys loaded, every replica as many as its master", rounds.every((r) => r.masterKeys === keyCount && r.replicaMismatch.length === 0), rounds.map((r) => r.masterKeys).join(",") + (rounds.some((r) => r.replicaMismatch.length) ? `; ${rounds.flatMap((r) => r.replicaMismatch).join("; ")}` : ""));
    } finally {
        await dc.stop();
    }
    return report.done();
}
