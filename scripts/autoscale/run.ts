/**
 * The autoscaler's loop, shared by the AWS stack (`npm run cluster -- autoscale`)
 * and local mode (`npm run local -- autoscale`): each round reads every node with
 * the monitoring collector, adds a sample to the history file, gathers the
 * cluster's facts, asks the pure decision (scripts/plan/autoscale.ts), prints it
 * (one JSON line on stdout with --json, a log line on stderr always) and, when a
 * change is due and allowed, has the environment apply it.
 *
 * The history (samples, the autoscaler's own actions for the cool-downs, and the
 * collector's counters for CPU deltas) is one small JSON file: beside the local
 * topology (.local/<stack>/autoscale.json), or --state-file on AWS (the runner
 * keeps it in /var/lib/redis-autoscale/).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Topology } from "../../components/topology";
import { StackConfig } from "../../components/config";
import { Output } from "../output";
import {
    AutoscaleHistory, AutoscalePolicy, ClusterFacts, decide, Decision, parseHistory, recordSample, sampleFromSnapshot, Shape,
} from "../plan/autoscale";
import { CollectorState, keysInKeyspace, parseCollectorState } from "../plan/metrics";
import { collectMetrics } from "../redis/collector";
import { evaluateStatus } from "../plan/status";
import { describeLease, readLease } from "../redis/lease";
import { NodePool } from "../redis/pool";
import { findOversizedKeys } from "./bigKeys";
import { nodeKey } from "../plan/node";

/** What differs between AWS and local mode. */
export interface AutoscaleEnv {
    /** Where the decision is acted on, for messages: `stack prod`, `local stack dev`. */
    readonly where: string;
    /** The stack config (policy) and the declared shape, read afresh every round. */
    readConfig(): Promise<{ config: StackConfig; shape: Shape }>;
    /** The nodes of the declared shape and a pool to them; the caller closes the pool. */
    connect(shape: Shape): Promise<{ topology: Topology; pool: NodePool }>;
    /** Makes the change (stack and cluster); resolves when both have the new shape. */
    apply(d: Decision, shape: Shape): Promise<void>;
    historyFile: string;
}

export interface AutoscaleRunOptions {
    once?: boolean;
    dryRun?: boolean;
    /** Overrides the policy's interval (tests). */
    intervalSeconds?: number;
    signal?: AbortSignal;
    /** @default Date.now */
    now?: () => number;
    /** @default process.stdout */
    stdout?: NodeJS.WritableStream;
    /** @default process.stderr */
    stderr?: NodeJS.WritableStream;
}

interface HistoryFile extends AutoscaleHistory {
    collector?: CollectorState;
}

function loadHistory(file: string): HistoryFile {
    const text = existsSync(file) ? readFileSync(file, "utf8") : undefined;
    const h = parseHistory(text) as HistoryFile;
    try {
        h.collector = parseCollectorState(JSON.stringify((JSON.parse(text ?? "{}") as HistoryFile).collector));
    } catch {
        h.collector = undefined;
    }
    return h;
}

function saveHistory(file: string, h: HistoryFile): void {
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(h) + "\n", { mode: 0o600 });
    renameSync(tmp, file); // atomic: a run killed mid-write leaves the previous history
}

/** One decision line as printed (stdout with --json) and kept for callers. */
export interface DecisionRecord extends Decision {
    event: "autoscale-decision";
    ts: string;
    where: string;
    shape: Shape;
    dryRun: boolean;
    /** Set after an action: "done" or the error. */
    outcome?: "done" | "dry-run" | "disabled" | string;
    ms?: number;
}

/**
 * The cluster's facts for the decision, read with the collector's status (one
 * read of every node per round). `masters` in shard order, so the last one is the
 * master a scale-in drains (scale keeps shards 0..n-1).
 */
export function factsFromStatus(status: Awaited<ReturnType<typeof collectMetrics>>["status"], topology: Topology, shape: Shape, now: number): ClusterFacts {
    const report = evaluateStatus(status);
    const problems = [...report.problems];
    const masters = status.samples
        .filter((s) => s.reachable && s.info?.role === "master" && (s.myself?.slots.length ?? 0) > 0)
        .map((s) => ({ s, shard: topology.nodes.find((n) => nodeKey(n) === s.key)?.shard ?? Number.MAX_SAFE_INTEGER }))
        .sort((a, b) => a.shard - b.shard)
        .map(({ s }) => ({
            id: s.myself?.id ?? s.key, label: s.key,
            usedBytes: Number(s.info?.used_memory ?? 0),
            datasetBytes: Number(s.info?.used_memory_dataset ?? s.info?.used_memory ?? 0),
            maxBytes: Number(s.info?.maxmemory ?? 0),
            keys: keysInKeyspace(s.info ?? {}),
        }));
    if (masters.length !== shape.shards && problems.length === 0) {
        problems.push(`${masters.length} master(s) own slots but ${shape.shards} shard(s) are declared: a scale is unfinished (run scale to finish it)`);
    }
    const backupRunning = status.samples
        .filter((s) => s.info && (s.info.rdb_bgsave_in_progress === "1" || s.info.aof_rewrite_in_progress === "1"))
        .map((s) => s.key);
    return { now, problems, openSlots: report.cluster.openSlots.length, backupRunning, oversizedKeys: [], masters };
}

/** One round: read, record, decide, print, act. Returns the decision record. */
export async function autoscaleRound(env: AutoscaleEnv, opts: AutoscaleRunOptions, out: Output): Promise<DecisionRecord> {
    const now = (opts.now ?? Date.now)();
    const { config, shape } = await env.readConfig();
    const policy: AutoscalePolicy = { ...config.autoscale, ...(opts.intervalSeconds ? { intervalSeconds: opts.intervalSeconds } : {}) };
    let history = loadHistory(env.historyFile);
    const { topology, pool } = await env.connect(shape);
    let d: Decision;
    try {
        const m = await collectMetrics(pool, topology, { previous: history.collector, now: () => now });
        history = { ...recordSample(history, sampleFromSnapshot(m.snapshot, now), policy), collector: m.state };
        saveHistory(env.historyFile, history);
        const facts = factsFromStatus(m.status, topology, shape, now);
        const lease = await readLease(pool, topology.nodes.map(nodeKey)).catch(() => undefined);
        if (lease && lease.expires > lease.now) facts.leaseHeldBy = describeLease(lease);
        d = decide(policy, history, shape, facts);
        if (d.action === "add-shards" || d.action === "remove-shards") {
            // Only when slots are about to move: a full SCAN of every master is not a per-minute cost.
            const big = await findOversizedKeys(pool, facts.masters.map((x) => x.label), { signal: opts.signal });
            if (big.keys.length || !big.complete) {
                facts.oversizedKeys = big.keys;
                if (!big.complete) out.warn(`autoscale: the big-key scan stopped after ${big.scanned} key(s) (${big.why}); going on with what it found`);
                d = decide(policy, history, shape, facts);
            }
        }
    } finally {
        await pool.close();
    }
    const rec: DecisionRecord = { event: "autoscale-decision", ts: new Date(now).toISOString(), where: env.where, shape, dryRun: !!opts.dryRun, ...d };
    if (d.action !== "none") rec.outcome = opts.dryRun ? "dry-run" : !policy.enabled ? "disabled" : undefined;
    emit(rec, out, opts);
    if (d.action === "none" || rec.outcome) return rec;

    const t0 = Date.now();
    try {
        await env.apply(d, shape);
        rec.outcome = "done";
    } catch (e) {
        rec.outcome = (e as Error).message;
        throw e;
    } finally {
        rec.ms = Date.now() - t0;
        // Recorded even when it failed half-way: the cool-down then keeps the next round from piling on.
        const h = loadHistory(env.historyFile);
        h.actions.push({ at: Date.now(), action: d.action, from: d.from, to: d.to });
        saveHistory(env.historyFile, h);
        emit({ ...rec, event: "autoscale-decision" }, out, opts, true);
    }
    return rec;
}

function emit(rec: DecisionRecord, out: Output, opts: AutoscaleRunOptions, after = false): void {
    const stdout = opts.stdout ?? process.stdout;
    const stderr = opts.stderr ?? process.stderr;
    const what = rec.action === "none" ? "none" : `${rec.action} ${rec.from} -> ${rec.to}`;
    const status = after ? ` [${rec.outcome === "done" ? `done in ${((rec.ms ?? 0) / 1000).toFixed(1)} s` : `FAILED: ${String(rec.outcome).split("\n")[0]}`}]`
        : rec.outcome === "dry-run" ? " [dry run: nothing changed]" : rec.outcome === "disabled" ? " [autoscale.enabled is false: nothing changed]" : "";
    const line = `${rec.ts} autoscale ${rec.where}: ${what}${rec.heldBy ? ` (held by ${rec.heldBy})` : ""}: ${rec.reason}${status}`;
    stderr.write(line + "\n");
    if (out.json) stdout.write(JSON.stringify(after ? { ...rec, event: "autoscale-result" } : rec) + "\n");
    else if (!after) stdout.write(`${what}${rec.heldBy ? ` (held by ${rec.heldBy})` : ""}: ${rec.reason}${status}\n`);
}

/** Rounds until --once is done or the signal aborts; a failed round is reported and the loop goes on. */
export async function autoscaleLoop(env: AutoscaleEnv, opts: AutoscaleRunOptions, out: Output): Promise<number> {
    for (;;) {
        let interval = opts.intervalSeconds ?? 60;
        try {
            await autoscaleRound(env, opts, out);
            if (opts.once) return 0;
            interval = opts.intervalSeconds ?? (await env.readConfig()).config.autoscale.intervalSeconds;
        } catch (e) {
            if (opts.once) throw e;
            // A continuous run survives a bad round (a node down, pulumi up failed, another run's lease):
            // the action is in the history, so the cool-down holds the next rounds back.
            out.warn(`autoscale round failed: ${(e as Error).message}`);
        }
        if (opts.signal?.aborted) return 0;
        await new Promise<void>((res) => {
            const t = setTimeout(res, interval * 1000);
            opts.signal?.addEventListener("abort", () => { clearTimeout(t); res(); }, { once: true });
        });
        if (opts.signal?.aborted) return 0;
    }
}
