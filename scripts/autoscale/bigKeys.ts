/**
 * Keys too big to move: a key moves with MIGRATE, whose DUMP payload the target
 * receives as one RESTORE argument, refused above the target's
 * `proto-max-bulk-len` (512 MiB by default; redis.conf). `scale` moves big keys
 * alone with a timeout sized to them, but one over that limit cannot move at all
 * and would stop the scale half-way with an open slot. The autoscaler looks for
 * them before it moves slots, with SCAN and MEMORY USAGE (an estimate: nested
 * values are sampled, 5 elements by default), bounded in time.
 */
import { NodeKey, NodePool } from "../redis/pool";

export interface OversizedScan {
    /** `host:port key (size)` */
    keys: string[];
    scanned: number;
    complete: boolean;
    why?: string;
    limitBytes: number;
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MiB`;

export async function findOversizedKeys(pool: NodePool, masters: NodeKey[], opts: { timeoutMs?: number; signal?: AbortSignal; limitBytes?: number } = {}): Promise<OversizedScan> {
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    let limit = opts.limitBytes ?? Infinity;
    if (opts.limitBytes === undefined) {
        for (const m of masters) {
            const r = (await pool.call(m, "CONFIG", "GET", "proto-max-bulk-len").catch(() => undefined)) as string[] | undefined;
            const v = Number(r?.[1]);
            limit = Math.min(limit, Number.isFinite(v) && v > 0 ? v : 512 * 1024 * 1024);
        }
    }
    if (!Number.isFinite(limit)) limit = 512 * 1024 * 1024;
    const found: string[] = [];
    let scanned = 0;
    let why: string | undefined;
    await Promise.all(masters.map(async (m) => {
        const c = await pool.get(m);
        let cursor = "0";
        do {
            if (opts.signal?.aborted) { why = "interrupted"; return; }
            if (Date.now() > deadline) { why = `${(opts.timeoutMs ?? 30_000) / 1000} s budget spent`; return; }
            const [next, keys] = (await c.call("SCAN", cursor, "COUNT", "1000")) as [string, string[]];
            cursor = next;
            if (!keys.length) continue;
            const p = c.pipeline();
            for (const k of keys) p.call("MEMORY", "USAGE", k);
            const sizes = (await p.exec()) ?? [];
            scanned += keys.length;
            sizes.forEach(([err, bytes], i) => {
                if (!err && typeof bytes === "number" && bytes >= limit) found.push(`${m} ${keys[i]} (${mib(bytes)})`);
            });
        } while (cursor !== "0");
    }));
    return { keys: found, scanned, complete: why === undefined, why, limitBytes: limit };
}
