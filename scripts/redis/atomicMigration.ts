/**
 * Atomic slot migration, where the server has it: the server moves a whole slot
 * range (snapshot + replication stream + a short write pause for the hand-off),
 * so no key-by-key MIGRATE, no ASK redirections and no half-moved slot.
 *
 * - Redis 8.4+: `CLUSTER MIGRATION IMPORT <start> <end> …` on the *target*
 *   returns a task id; `CLUSTER MIGRATION STATUS ID <id>` reports
 *   `state` ("completed" on success) and `last_error`.
 *   https://redis.io/docs/latest/commands/cluster-migration/
 * - Valkey 9.0+: `CLUSTER MIGRATESLOTS SLOTSRANGE <start> <end> … NODE <target-id>`
 *   on the *source* returns OK; `CLUSTER GETSLOTMIGRATIONS` lists jobs with
 *   `operation` (EXPORT/IMPORT), `slot_ranges` ("0-10 20-29"), `target_node`,
 *   `state` (terminal: success, failed, cancelled) and `message`.
 *   https://valkey.io/commands/cluster-migrateslots/
 *
 * Detected with COMMAND INFO on the subcommand (6.2 and 7.x answer nil for an
 * unknown name). NOT TESTED HERE: the test machine has Redis 7.0 only; the code
 * follows the documentation above and stays small on purpose.
 */
import { StepError } from "../errors";
import { toRanges } from "../plan/clusterNodes";
import { sleep } from "./migrate";
import { NodeRef } from "./moveSlot";
import { NodeKey, NodePool } from "./pool";

export type AtomicKind = "redis-cluster-migration" | "valkey-migrateslots";

async function hasCommand(pool: NodePool, key: NodeKey, name: string): Promise<boolean> {
    try {
        const r = (await pool.call(key, "COMMAND", "INFO", name)) as unknown[];
        return Array.isArray(r) && r.length > 0 && r[0] !== null;
    } catch {
        return false;
    }
}

/** The atomic mechanism every one of `keys` supports, if any. */
export async function detectAtomicMigration(pool: NodePool, keys: NodeKey[]): Promise<AtomicKind | undefined> {
    if (keys.length === 0) return undefined;
    const redis = await Promise.all(keys.map((k) => hasCommand(pool, k, "cluster|migration")));
    if (redis.every(Boolean)) return "redis-cluster-migration";
    const valkey = await Promise.all(keys.map((k) => hasCommand(pool, k, "cluster|migrateslots")));
    if (valkey.every(Boolean)) return "valkey-migrateslots";
    return undefined;
}

/** Field/value array (RESP2) or map (RESP3) to an object. */
function fields(entry: unknown): Record<string, string> {
    const out: Record<string, string> = {};
    if (Array.isArray(entry)) for (let i = 0; i + 1 < entry.length; i += 2) out[String(entry[i])] = String(entry[i + 1]);
    else if (entry && typeof entry === "object") for (const [k, v] of Object.entries(entry)) out[k] = String(v);
    return out;
}

export interface AtomicStreamOptions {
    op: string;
    resumeHint: string;
    signal?: AbortSignal;
    onSlots?(n: number): void;
    /** @default 1 hour: big slots take long, progress is visible meanwhile */
    timeoutMs?: number;
}

/** Moves `slots` from `src` to `dst` with the server's atomic migration and waits for the end. */
export async function runAtomicStream(pool: NodePool, kind: AtomicKind, src: NodeRef, dst: NodeRef, slots: number[], o: AtomicStreamOptions): Promise<void> {
    const ranges = toRanges(slots);
    const flat = ranges.flatMap((r) => [String(r.start), String(r.end)]);
    const deadline = Date.now() + (o.timeoutMs ?? 3_600_000);
    const fail = (node: NodeRef, cause: unknown, state: string): never => {
        throw new StepError({ op: o.op, step: "atomic-migration", node: node.key, cause, state, resume: o.resumeHint });
    };
    if (kind === "redis-cluster-migration") {
        const id = String(await pool.call(dst.key, "CLUSTER", "MIGRATION", "IMPORT", ...flat).catch((e) => fail(dst, e, "nothing started")));
        for (let delay = 20; ; delay = Math.min(500, delay * 1.5)) {
            const r = (await pool.call(dst.key, "CLUSTER", "MIGRATION", "STATUS", "ID", id)) as unknown[];
            const f = fields(Array.isArray(r) ? r[0] : r);
            const state = (f.state ?? "").toLowerCase();
            if (state === "completed") break;
            if (state === "failed" || state.startsWith("cancel")) fail(dst, f.last_error || state, `task ${id} ended ${state}; its slots stay with ${src.key}`);
            if (Date.now() > deadline) fail(dst, `task ${id} still ${state}`, `task ${id} keeps running on the servers; check CLUSTER MIGRATION STATUS ID ${id}`);
            await sleep(delay);
        }
    } else {
        const rangesText = ranges.map((r) => `${r.start}-${r.end}`).join(" ");
        const since = Math.floor(Date.now() / 1000) - 1;
        await pool.call(src.key, "CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", ...flat, "NODE", dst.id).catch((e) => fail(src, e, "nothing started"));
        for (let delay = 20; ; delay = Math.min(500, delay * 1.5)) {
            const jobs = ((await pool.call(src.key, "CLUSTER", "GETSLOTMIGRATIONS")) as unknown[]).map(fields);
            const job = jobs.find((j) => j.operation === "EXPORT" && j.target_node === dst.id && j.slot_ranges === rangesText && Number(j.create_time) >= since);
            const state = (job?.state ?? "").toLowerCase();
            if (state === "success") break;
            if (state === "failed" || state === "cancelled") fail(src, job?.message || state, `job ${job?.name} ended ${state}; its slots stay with ${src.key}`);
            if (Date.now() > deadline) fail(src, `job still ${state || "not listed"}`, "the job keeps running on the servers; check CLUSTER GETSLOTMIGRATIONS");
            await sleep(delay);
        }
    }
    o.onSlots?.(slots.length);
}
