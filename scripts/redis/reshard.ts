/**
 * Executes a rebalance plan: every stream (source → target) is cut into batches
 * of slots, and `parallel` workers take batches round-robin over the streams, so
 * a source feeds several targets and a target imports from several sources at
 * once, with a bound on concurrency. Each batch moves with a handful of round
 * trips whatever its size (moveSlot.ts), so the cost per slot is not several
 * sequential round trips.
 *
 * Where every master involved supports atomic slot migration (Redis 8.4
 * `CLUSTER MIGRATION`, Valkey 9 `CLUSTER MIGRATESLOTS`), the streams are handed
 * to the servers instead (atomicMigration.ts).
 *
 * Progress (slots, keys, rate, ETA) goes to stderr every 500 ms and, with --json,
 * as {"event":"progress",…} lines. Ctrl-C stops after the batches in flight.
 */
import Redis from "ioredis";
import type { CommandContext } from "../context";
import { StepError } from "../errors";
import { fmtDuration } from "../output";
import { RebalancePlan } from "../plan/rebalance";
import { detectAtomicMigration, runAtomicStream, AtomicKind } from "./atomicMigration";
import { ClusterView, waitUntil } from "./clusterView";
import { MoveSettings, NodeRef, moveSlots } from "./moveSlot";
import { NodeKey, NodePool } from "./pool";

export interface ReshardOptions {
    /** Command name for errors and events. */
    op: string;
    /** Concurrent batches (streams in flight). @default 4 */
    parallel?: number;
    /** Keys per MIGRATE. @default 1000 */
    batchKeys?: number;
    /** Keys per pipelined round of MIGRATEs. @default 2 × batchKeys */
    roundKeys?: number;
    /** Most slots per batch. @default 256 */
    maxSlotsPerBatch?: number;
    /** Base MIGRATE timeout. @default 10000 */
    migrateTimeoutMs?: number;
    /** Big-key threshold in bytes; 0 disables the MEMORY USAGE pass. @default 8 MiB */
    bigKeyBytes?: number;
    /** Keys per slot from COUNTKEYSINSLOT (for batching and the ETA); counted here when absent. */
    keyCounts?: Map<number, number>;
    /** "auto" uses atomic slot migration when every master has it; "off" never. @default "auto" */
    atomic?: "auto" | "off";
    /** @default "rerun the same command: it finishes or rolls back open slots first, then continues" */
    resumeHint?: string;
    /** How long to wait for every node to agree on the new slot map. @default 30000 */
    agreementTimeoutMs?: number;
}

export interface ReshardResult {
    slots: number;
    keys: number;
    bigKeys: number;
    replacedSlots: number[];
    ms: number;
    method: "keys" | AtomicKind;
    interrupted: boolean;
}

/** NodeRef for every master in the view, by id. */
export function nodeRefs(view: ClusterView): Map<string, NodeRef> {
    const out = new Map<string, NodeRef>();
    for (const [id, key] of view.idToKey()) {
        const me = view.self(key)!;
        out.set(id, { id, key, host: me.host || key.slice(0, key.lastIndexOf(":")), port: me.port });
    }
    return out;
}

/** COUNTKEYSINSLOT for the given slots, one pipeline per owner. */
export async function countKeys(pool: NodePool, ownerKeyOf: (slot: number) => NodeKey, slots: number[]): Promise<Map<number, number>> {
    const byNode = new Map<NodeKey, number[]>();
    for (const s of slots) {
        const k = ownerKeyOf(s);
        if (!byNode.has(k)) byNode.set(k, []);
        byNode.get(k)!.push(s);
    }
    const out = new Map<number, number>();
    await Promise.all([...byNode].map(async ([key, list]) => {
        const c = await pool.get(key);
        const p = c.pipeline();
        for (const s of list) p.call("CLUSTER", "COUNTKEYSINSLOT", String(s));
        const res = (await p.exec())!;
        res.forEach(([err, n], i) => out.set(list[i], err ? 0 : Number(n)));
    }));
    return out;
}

/** Throttled progress: a line on stderr (and an NDJSON event) at most every `everyMs`. */
export class Progress {
    slotsDone = 0;
    keysDone = 0;
    private readonly start = Date.now();
    // The first line comes after `everyMs`, when there is a rate to show.
    private last = this.start;
    constructor(private readonly ctx: CommandContext, readonly op: string, readonly slotsTotal: number, readonly keysTotal: number, private readonly everyMs = 500) {}
    add(slots: number, keys: number): void {
        this.slotsDone += slots;
        this.keysDone += keys;
        this.tick(false);
    }
    tick(force: boolean): void {
        const now = Date.now();
        if (!force && now - this.last < this.everyMs) return;
        this.last = now;
        const secs = (now - this.start) / 1000;
        const rate = secs > 0 ? this.keysDone / secs : 0;
        const slotRate = secs > 0 ? this.slotsDone / secs : 0;
        // ETA from keys when there are keys to move, else from slots.
        const leftMs = this.keysTotal > 0
            ? (rate > 0 ? ((this.keysTotal - this.keysDone) / rate) * 1000 : NaN)
            : (slotRate > 0 ? ((this.slotsTotal - this.slotsDone) / slotRate) * 1000 : NaN);
        const eta = Number.isFinite(leftMs) ? fmtDuration(Math.max(0, leftMs)) : "?";
        this.ctx.out.event("progress", {
            op: this.op, slotsDone: this.slotsDone, slotsTotal: this.slotsTotal, keysDone: this.keysDone, keysTotal: this.keysTotal,
            keysPerSec: Math.round(rate), etaMs: Number.isFinite(leftMs) ? Math.round(leftMs) : null,
        }, `${this.op}: ${this.slotsDone}/${this.slotsTotal} slots, ${this.keysDone}/${this.keysTotal} keys, ${Math.round(rate)} keys/s, ETA ${eta}`);
    }
}

interface Batch {
    from: string;
    to: string;
    slots: number[];
    keys: number;
}

/** Cuts each stream into batches by key count and slot count, interleaved over streams. */
export function makeBatches(plan: RebalancePlan, keyCounts: Map<number, number>, targetKeys: number, maxSlots: number): Batch[] {
    const perStream: Batch[][] = plan.streams.map((st) => {
        const out: Batch[] = [];
        let cur: Batch = { from: st.from, to: st.to, slots: [], keys: 0 };
        for (const slot of st.slots) {
            const k = keyCounts.get(slot) ?? 0;
            if (cur.slots.length > 0 && (cur.slots.length >= maxSlots || cur.keys + k > targetKeys)) {
                out.push(cur);
                cur = { from: st.from, to: st.to, slots: [], keys: 0 };
            }
            cur.slots.push(slot);
            cur.keys += k;
        }
        if (cur.slots.length) out.push(cur);
        return out;
    });
    const out: Batch[] = [];
    for (let i = 0; perStream.some((b) => i < b.length); i++) for (const b of perStream) if (i < b.length) out.push(b[i]);
    return out;
}

export async function executePlan(pool: NodePool, view: ClusterView, plan: RebalancePlan, opts: ReshardOptions, ctx: CommandContext): Promise<ReshardResult> {
    const t0 = Date.now();
    const refs = nodeRefs(view);
    const slotsTotal = plan.moves.length;
    const resumeHint = opts.resumeHint ?? "rerun the same command: it finishes or rolls back open slots first, then continues";
    const result: ReshardResult = { slots: 0, keys: 0, bigKeys: 0, replacedSlots: [], ms: 0, method: "keys", interrupted: false };
    if (slotsTotal === 0) return result;
    for (const st of plan.streams) {
        for (const id of [st.from, st.to]) {
            if (!refs.has(id)) throw new StepError({ op: opts.op, step: "plan", node: id, cause: `master ${id} is not reachable`, state: "nothing moved", resume: `bring the node back (or fail over to its replica), then ${resumeHint}` });
        }
    }
    const ownerKey = new Map<number, NodeKey>();
    for (const m of plan.moves) ownerKey.set(m.slot, refs.get(m.from)!.key);
    const keyCounts = opts.keyCounts ?? (await countKeys(pool, (s) => ownerKey.get(s)!, plan.moves.map((m) => m.slot)));
    const keysTotal = plan.moves.reduce((n, m) => n + (keyCounts.get(m.slot) ?? 0), 0);
    const progress = new Progress(ctx, opts.op, slotsTotal, keysTotal);

    const masters = [...new Set(plan.streams.flatMap((s) => [s.from, s.to]))].map((id) => refs.get(id)!);
    const atomic = opts.atomic === "off" ? undefined : await detectAtomicMigration(pool, masters.map((m) => m.key));
    if (atomic) {
        result.method = atomic;
        ctx.out.info(`${opts.op}: every master supports atomic slot migration (${atomic}); the servers move the slots`);
        for (const st of plan.streams) {
            if (ctx.signal.aborted) {
                result.interrupted = true;
                break;
            }
            await runAtomicStream(pool, atomic, refs.get(st.from)!, refs.get(st.to)!, st.slots, { op: opts.op, resumeHint, signal: ctx.signal, onSlots: (n) => progress.add(n, 0) });
            result.slots += st.slots.length;
        }
        result.keys = keysTotal;
        progress.tick(true);
        result.ms = Date.now() - t0;
        return result;
    }

    const batchKeys = opts.batchKeys ?? 1000;
    const roundKeys = opts.roundKeys ?? 2 * batchKeys;
    const batches = makeBatches(plan, keyCounts, roundKeys * 4, opts.maxSlotsPerBatch ?? 256);
    const others = [...refs.values()].filter((r) => view.self(r.key)?.role === "master");
    const bigClients: Redis[] = [];
    const settings: MoveSettings = {
        op: opts.op,
        batchKeys,
        roundKeys,
        migrateTimeoutMs: opts.migrateTimeoutMs ?? 10000,
        bigKeyBytes: opts.bigKeyBytes ?? 8 * 1024 * 1024,
        credentials: pool.options.credentials,
        others,
        resumeHint,
        onKeys: (n) => progress.add(0, n),
        onSlots: (n) => progress.add(n, 0),
        warn: (l) => ctx.out.warn(l),
        bigKeyClient: async (key, timeoutMs) => {
            const c = new Redis(pool.clientOptions(key, { commandTimeout: timeoutMs }));
            c.on("error", () => undefined);
            await c.connect();
            bigClients.push(c);
            return c;
        },
    };

    let next = 0;
    let failure: unknown;
    const worker = async () => {
        while (next < batches.length && failure === undefined) {
            if (ctx.signal.aborted) {
                result.interrupted = true;
                return;
            }
            const b = batches[next++];
            try {
                const r = await moveSlots(pool, refs.get(b.from)!, refs.get(b.to)!, b.slots, settings);
                result.slots += b.slots.length;
                result.keys += r.keys;
                result.bigKeys += r.bigKeys;
                result.replacedSlots.push(...r.replacedSlots);
            } catch (e) {
                failure ??= e;
            }
        }
    };
    try {
        await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.parallel ?? 4, batches.length)) }, worker));
    } finally {
        for (const c of bigClients) c.disconnect();
    }
    progress.tick(true);
    if (failure !== undefined) throw failure;

    // Every node (replicas too) agrees on the new owners before we call it done.
    const allKeys = [...view.views.keys()].filter((k) => view.views.get(k)!.reachable);
    await waitUntil(async () => (await ClusterView.read(pool, allKeys)).slotMapsAgree(), {
        timeoutMs: opts.agreementTimeoutMs ?? 30000, what: "every node to agree on the new slot map", signal: ctx.signal,
        op: opts.op, state: `every slot moved (${result.slots}); some nodes have not learnt every new owner yet (gossip does that by itself)`,
        resume: `check with \`status\`; rerun \`${opts.op}\` if it reports open slots`,
    });
    result.ms = Date.now() - t0;
    return result;
}
