/**
 * Moving a batch of slots from one master to another with the standard protocol,
 * several slots per round trip:
 *
 *   1. target:  CLUSTER SETSLOT s IMPORTING <source>        (all slots of the batch, one pipeline)
 *   2. source:  CLUSTER SETSLOT s MIGRATING <target>
 *               keys of s with their sizes                  (same pipeline; one Lua call per slot doing
 *                                                            GETKEYSINSLOT + MEMORY USAGE, keyFetcher.ts)
 *   3. source:  big keys alone, each with a timeout sized to it
 *               MIGRATE … KEYS k1…kN [; next keys of s]     (per slot with keys, many slots per pipeline)
 *               until every slot of the batch is empty
 *   4. target:  CLUSTER SETSLOT s NODE <target>             (the new owner first, see below)
 *   5. source and every other master, in parallel: CLUSTER SETSLOT s NODE <target>
 *
 * Order matters, as redis-cli's clusterManagerMoveSlot explains:
 * - IMPORTING before MIGRATING, so a client sent to the target with ASK is served.
 * - The target is told it owns the slot first: if another node learned it first and
 *   the target then crashed, the slot would have no owner and clients would loop
 *   between nodes (redis/redis#7116).
 * - A source that has just lost its last slot may already have turned itself into a
 *   replica of the target, and then refuses SETSLOT ("Please use SETSLOT only with
 *   masters"); that is the expected outcome, not an error (redis/redis#9223).
 * While a slot is MIGRATING, the source creates no key in it (writes to missing keys
 * are redirected with ASK), so once GETKEYSINSLOT comes back empty it stays empty.
 *
 * BUSYKEY (a key exists on both sides) can only come from an earlier interrupted
 * MIGRATE that restored the key on the target but did not get to delete it on the
 * source. While the slot is IMPORTING on the target from this source, a client
 * reaches the target for a key only when the source no longer has it, so the
 * source's copy is the one clients have been reading and writing, and the target's
 * copy is a stale leftover: after checking that the target imports the slot from
 * this source, the keys are sent again with REPLACE. In any other state the move stops.
 */
import Redis from "ioredis";
import { StepError } from "../errors";
import { readNodes } from "./clusterView";
import { EMPTY, hasWork, KeyFetcher, newState, SlotState } from "./keyFetcher";
import { backoffMs, classifyMigrateError, migrateArgs, migrateTimeoutFor, sleep } from "./migrate";
import { Credentials, NodeKey, NodePool } from "./pool";
import { Cmd, encodeKeys, getkeys, migrateCommand, pipe, setslot } from "./resp";

/** A master as the engine needs it: id, the pool key, and its announced address (for MIGRATE). */
export interface NodeRef {
    id: string;
    /** Pool key: the announced host:port (the pool maps it through --nat-map). */
    key: NodeKey;
    /** Announced address: what the source node connects to for MIGRATE. */
    host: string;
    port: number;
}

export interface MoveSettings {
    /** Command name for errors ("scale", "rebalance", "fix-open-slots"). */
    op: string;
    /** Keys per MIGRATE call. */
    batchKeys: number;
    /** Keys per pipelined round of MIGRATEs over several slots (bounds how long the source is busy per round). */
    roundKeys: number;
    /** Base MIGRATE timeout in ms. */
    migrateTimeoutMs: number;
    /** Keys at or above this many bytes (MEMORY USAGE) move alone with a sized timeout; 0 skips the check. */
    bigKeyBytes: number;
    credentials?: Credentials;
    /** Other masters to tell the new owner, besides source and target. Unreachable ones are dropped from it. */
    others: NodeRef[];
    /** How to continue after a failure, for the error message. */
    resumeHint: string;
    /** Attempts per slot on transient MIGRATE errors before giving up. @default 8 */
    maxAttempts?: number;
    onKeys?(n: number): void;
    onSlots?(n: number): void;
    warn(line: string): void;
    /** Dedicated client for big keys (no command timeout); the caller closes it. */
    bigKeyClient?(key: NodeKey, timeoutMs: number): Promise<Redis>;
}

export interface MoveResult {
    keys: number;
    bigKeys: number;
    /** Slots where leftover target keys were replaced (BUSYKEY). */
    replacedSlots: number[];
}

/**
 * Moves batches of slots between masters (the header's protocol). One mover serves one
 * run (a reshard, an open-slot repair): what it learns about nodes (a source that
 * refuses the key script, a master that does not answer SETSLOT NODE) holds for its
 * later batches and for nothing else.
 */
export class SlotMover {
    private readonly noScript = new Set<NodeKey>();
    private readonly unreachable = new Set<string>();
    constructor(private readonly pool: NodePool, readonly settings: MoveSettings) {}

    /** Moves `slots` (all owned by `src`) to `dst`. Throws StepError naming what is left open. */
    move(src: NodeRef, dst: NodeRef, slots: number[]): Promise<MoveResult> {
        const fetcher = new KeyFetcher(src.key, this.settings.batchKeys, this.settings.bigKeyBytes, this.noScript);
        return new BatchMove(this.pool, this.settings, src, dst, slots, fetcher, this.unreachable).run();
    }
}

/** One batch: the state the steps share, so each step takes only what is its own. */
class BatchMove {
    readonly result: MoveResult = { keys: 0, bigKeys: 0, replacedSlots: [] };
    constructor(
        readonly pool: NodePool, readonly s: MoveSettings, readonly src: NodeRef, readonly dst: NodeRef, readonly slots: number[],
        readonly fetcher: KeyFetcher, private readonly unreachable: Set<string>,
    ) {}

    readonly fail = (step: string, node: NodeRef, slot: number | undefined, cause: unknown, state: string): never => {
        throw new StepError({ op: this.s.op, step, node: node.key, slot, cause, state, resume: this.s.resumeHint });
    };

    readonly openState = (which: string) => `slots ${describe(this.slots)} ${which}; the cluster keeps serving them (clients follow ASK), and the next run of any command finishes or rolls them back first`;

    async run(): Promise<MoveResult> {
        const { pool, src, dst, slots, s, result, fetcher, fail, openState } = this;
        if (slots.length === 0) return result;

        const dstC = await pool.get(dst.key).catch((e) => fail("connect", dst, undefined, e, "nothing changed for this batch"));
        const srcC = await pool.get(src.key).catch((e) => fail("connect", src, undefined, e, "nothing changed for this batch"));

        // 1. IMPORTING on the target
        const r1 = await pipe(dstC, slots.map((slot) => setslot(slot, "IMPORTING", src.id))).catch((e) => fail("set-importing", dst, undefined, e, openState(`may be IMPORTING on ${dst.key}`)));
        r1.forEach(([err], i) => {
            if (err) fail("set-importing", dst, slots[i], err, openState(`partly IMPORTING on ${dst.key}`));
        });

        // 2. MIGRATING on the source, with the first keys of each slot
        const scripted = fetcher.scripted;
        const prelude = fetcher.prelude();
        const r2 = (await pipe(srcC, [...prelude, ...slots.flatMap((slot) => [setslot(slot, "MIGRATING", dst.id), fetcher.cmd(slot)])])
            .catch((e) => fail("set-migrating", src, undefined, e, openState(`IMPORTING on ${dst.key} and may be MIGRATING on ${src.key}`)))).slice(prelude.length);
        const refetch: SlotState[] = [];
        const states: SlotState[] = slots.map((slot, i) => {
            const [e1] = r2[2 * i];
            if (e1) fail("set-migrating", src, slot, e1, openState(`IMPORTING on ${dst.key}, partly MIGRATING on ${src.key}`));
            const st = newState(slot);
            const [e2, reply] = r2[2 * i + 1];
            if (e2 && scripted) refetch.push(st);
            else if (e2) fail("get-keys", src, slot, e2, openState(`MIGRATING on ${src.key}`));
            else fetcher.apply(st, reply, scripted);
            return st;
        });
        if (refetch.length) {
            fetcher.disable();
            const r = await pipe(srcC, refetch.map((st) => fetcher.cmd(st.slot))).catch((e) => fail("get-keys", src, undefined, e, openState(`MIGRATING on ${src.key}`)));
            refetch.forEach((st, i) => {
                if (r[i][0]) fail("get-keys", src, st.slot, r[i][0], openState(`MIGRATING on ${src.key}`));
                fetcher.apply(st, r[i][1], false);
            });
        }

        // 3. keys
        await this.migrateKeysOfSlots(srcC, states);

        // The engine's invariant: a slot is never assigned away from a node that still holds
        // keys in it. Once the target owns the slot (SETSLOT NODE bumps its epoch), gossip
        // reaches the source, which deletes every key it still has there as a "dirty slot"
        // (cluster.c clusterUpdateSlotsConfigWith) while its replicas keep them: the keys are
        // gone from the cluster. So the source is counted, not trusted to be empty.
        await this.ensureSourceEmpty(srcC, states);

        // 4. new owner first
        const r4 = await pipe(dstC, slots.map((slot) => setslot(slot, "NODE", dst.id))).catch((e) => fail("set-node-target", dst, undefined, e, openState(`emptied on ${src.key}, still MIGRATING/IMPORTING`)));
        r4.forEach(([err], i) => {
            if (err) fail("set-node-target", dst, slots[i], err, openState(`emptied on ${src.key}, still MIGRATING/IMPORTING`));
        });

        // 5. source and the other masters, in parallel
        const tellOthers = Promise.all(s.others.filter((o) => o.id !== src.id && o.id !== dst.id && !this.unreachable.has(o.id)).map(async (o) => {
            try {
                // Errors in the replies are harmless: the target's bumped epoch reaches every node by gossip.
                await pipe(await pool.get(o.key), slots.map((slot) => setslot(slot, "NODE", dst.id)));
            } catch {
                this.unreachable.add(o.id); // not asked again by the later batches of this mover
            }
        }));
        for (let round = 0; ; round++) {
            const r5 = await pipe(srcC, slots.map((slot) => setslot(slot, "NODE", dst.id))).catch((e) => fail("set-node-source", src, undefined, e, `slots ${describe(slots)} are owned by ${dst.key}; ${src.key} may still list them MIGRATING until gossip reaches it`));
            const stillHolding: SlotState[] = [];
            r5.forEach(([err], i) => {
                if (!err) return;
                const msg = err.message;
                if (msg.includes("only with masters")) return; // redis/redis#9223: the source became a replica of the target
                if (/still hold keys/i.test(msg) && round < 3) {
                    stillHolding.push(newState(slots[i]));
                    return;
                }
                fail("set-node-source", src, slots[i], err, `slot ${slots[i]} is owned by ${dst.key}; ${src.key} still lists it MIGRATING`);
            });
            if (stillHolding.length === 0) break;
            // A key appeared on the source after GETKEYSINSLOT came back empty (should not happen while MIGRATING); move it now.
            const r = await pipe(srcC, stillHolding.map((st) => getkeys(st.slot, s.batchKeys)));
            stillHolding.forEach((st, i) => fetcher.apply(st, (r[i][1] as Buffer[]) ?? [], false));
            s.warn(`${src.key} still held keys in ${stillHolding.length} slot(s) after they were emptied; moving them again`);
            await this.migrateKeysOfSlots(srcC, stillHolding);
        }
        await tellOthers;
        s.onSlots?.(slots.length);
        return result;
    }

    /**
     * COUNTKEYSINSLOT on the source for every slot of the batch; slots that still hold keys
     * are emptied again (at most twice), then the batch fails with the slots left open
     * (MIGRATING/IMPORTING, keys on the source: the next run rolls them back or finishes them).
     */
    private async ensureSourceEmpty(srcC: Redis, states: SlotState[]): Promise<void> {
        const { src, dst, s, fetcher, fail, openState } = this;
        for (let round = 0; ; round++) {
            const counts = await pipe(srcC, states.map((st) => ({ name: "CLUSTER", args: ["COUNTKEYSINSLOT", String(st.slot)] })))
                .catch((e) => fail("count-source-keys", src, undefined, e, openState(`MIGRATING on ${src.key}, not assigned to ${dst.key}`)));
            const holding: { st: SlotState; keys: number }[] = [];
            counts.forEach(([err, n], i) => {
                if (err) fail("count-source-keys", src, states[i].slot, err, openState(`MIGRATING on ${src.key}, not assigned to ${dst.key}`));
                if (Number(n) > 0) holding.push({ st: states[i], keys: Number(n) });
            });
            if (holding.length === 0) return;
            const total = holding.reduce((a, h) => a + h.keys, 0);
            if (round >= 2) {
                fail("check-source-empty", src, holding[0].st.slot, `${src.key} still holds ${total} key(s) in slot(s) ${describe(holding.map((h) => h.st.slot))} after moving their keys; a slot is never assigned away from a node that holds keys in it`,
                    openState(`MIGRATING on ${src.key} with their keys still there, not assigned to ${dst.key}`));
            }
            const r = await pipe(srcC, holding.map((h) => getkeys(h.st.slot, s.batchKeys)))
                .catch((e) => fail("get-keys", src, undefined, e, openState(`MIGRATING on ${src.key}`)));
            holding.forEach((h, i) => fetcher.apply(h.st, (r[i][1] as Buffer[]) ?? [], false));
            s.warn(`${src.key} still held ${total} key(s) in ${holding.length} slot(s) after they were emptied; moving them again before assigning the slots`);
            await this.migrateKeysOfSlots(srcC, holding.map((h) => h.st));
        }
    }

    private async migrateKeysOfSlots(srcC: Redis, states: SlotState[]): Promise<void> {
        const { src, dst, s, result, fetcher, fail, openState } = this;
        const maxAttempts = s.maxAttempts ?? 8;
        let verifiedImporting = false;
        let pending = states.filter(hasWork);
        while (pending.length > 0) {
            const round: SlotState[] = [];
            let n = 0;
            for (const st of pending) {
                round.push(st);
                n += st.fetched;
                if (n >= s.roundKeys) break;
            }

            // Keys fetched plainly: MEMORY USAGE (sampled estimate, O(1) for most types), pipelined.
            const unsized = round.filter((st) => st.unsized?.length);
            if (unsized.length) {
                const all = unsized.flatMap((st) => st.unsized!);
                const sizes = await pipe(srcC, all.map((k) => ({ name: "MEMORY", args: ["USAGE", k] })))
                    .catch((e) => fail("memory-usage", src, unsized[0].slot, e, openState(`MIGRATING on ${src.key}`)));
                let i = 0;
                for (const st of unsized) {
                    const normal: Buffer[] = [];
                    for (const k of st.unsized!) {
                        const [err, bytes] = sizes[i++];
                        if (!err && typeof bytes === "number" && bytes >= s.bigKeyBytes) st.big.push({ key: k, bytes });
                        else normal.push(k);
                    }
                    st.blob = encodeKeys(normal);
                    st.blobKeys = normal.length;
                    st.unsized = undefined;
                }
            }
            // Big keys move one at a time, each with a timeout sized to it.
            for (const st of round) {
                for (const b of st.big) {
                    await this.moveBigKey({ ...b, slot: st.slot }, st);
                    result.bigKeys++;
                    result.keys++;
                    s.onKeys?.(1);
                }
                st.big = [];
            }

            // One pipeline: per slot, MIGRATE its keys and ask for the next ones.
            // A slot whose last fetch returned fewer keys than asked holds no other key: while it is
            // MIGRATING the source creates none (see the header), so when this MIGRATE succeeds the
            // slot is empty and needs no second look (SETSLOT NODE on the source double-checks).
            const cmds: Cmd[] = [];
            const scripted = fetcher.scripted;
            const lastRound = round.map((st) => st.fetched < s.batchKeys);
            const sent = round.map((st) => st.blobKeys);
            round.forEach((st, r) => {
                if (st.blobKeys) {
                    const head = migrateArgs(dst, [], { timeoutMs: s.migrateTimeoutMs, replace: st.replace, credentials: s.credentials });
                    cmds.push({ name: "MIGRATE", args: [], raw: migrateCommand(head, st.blob, st.blobKeys) });
                }
                if (!lastRound[r] || st.blobKeys === 0) cmds.push(fetcher.cmd(st.slot));
            });
            const replies = await pipe(srcC, cmds).catch((e) => fail("migrate", src, round[0].slot, e, openState(`MIGRATING on ${src.key}, keys partly moved to ${dst.key}`)));
            let j = 0;
            let wait = 0;
            for (let r = 0; r < round.length; r++) {
                const st = round[r];
                let migrated = true;
                if (sent[r]) {
                    const [err] = replies[j++];
                    migrated = !err;
                    if (!err) {
                        result.keys += sent[r];
                        s.onKeys?.(sent[r]);
                        st.attempts = 0;
                    } else {
                        const kind = classifyMigrateError(err.message);
                        if (kind === "busy" && !st.replace) {
                            if (!verifiedImporting) {
                                verifiedImporting = await this.targetImportsFrom(st.slot);
                                if (!verifiedImporting) {
                                    fail("migrate", src, st.slot, err, openState(`MIGRATING on ${src.key}; a key exists on ${dst.key}, which does not import the slot from ${src.key}, so its copy is not known to be a leftover`));
                                }
                            }
                            st.replace = true;
                            result.replacedSlots.push(st.slot);
                            s.warn(`slot ${st.slot}: keys already on ${dst.key} (left by an interrupted earlier move) are replaced with ${src.key}'s copy, the one clients were served`);
                        } else if (kind === "transient" || (kind === "busy" && st.replace)) {
                            st.attempts++;
                            if (st.attempts >= maxAttempts) fail("migrate", src, st.slot, err, openState(`MIGRATING on ${src.key} after ${st.attempts} attempts, keys partly moved to ${dst.key}`));
                            wait = Math.max(wait, backoffMs(st.attempts));
                        } else {
                            fail("migrate", src, st.slot, err, openState(`MIGRATING on ${src.key}, keys partly moved to ${dst.key}`));
                        }
                    }
                }
                if (lastRound[r] && sent[r] > 0) {
                    // No fetch was sent: done when the MIGRATE went through, else the same keys again
                    // (MIGRATE skips keys already gone; the big ones were moved above).
                    if (migrated) {
                        st.blob = EMPTY;
                        st.blobKeys = 0;
                    }
                    continue;
                }
                const [gerr, next] = replies[j++];
                if (gerr && scripted) {
                    // Scripting refused here: fetch this slot's keys plainly for the next round.
                    fetcher.disable();
                    const [e2, plain] = (await pipe(srcC, [getkeys(st.slot, s.batchKeys)]))[0];
                    if (e2) fail("get-keys", src, st.slot, e2, openState(`MIGRATING on ${src.key}`));
                    fetcher.apply(st, plain, false);
                    continue;
                }
                if (gerr) fail("get-keys", src, st.slot, gerr, openState(`MIGRATING on ${src.key}`));
                fetcher.apply(st, next, scripted);
            }
            if (wait) await sleep(wait);
            pending = states.filter(hasWork);
        }
    }

    private async moveBigKey(b: { key: Buffer; bytes: number; slot: number }, st: SlotState): Promise<void> {
        const { pool, src, dst, s, fail, openState } = this;
        const timeoutMs = migrateTimeoutFor(b.bytes, s.migrateTimeoutMs);
        s.warn(`slot ${b.slot}: big key (${(b.bytes / 1024 / 1024).toFixed(1)} MiB) moved alone with a ${timeoutMs} ms timeout`);
        const c = s.bigKeyClient ? await s.bigKeyClient(src.key, timeoutMs + 10000) : await pool.get(src.key);
        for (let attempt = 0; ; attempt++) {
            try {
                await c.call("MIGRATE", ...migrateArgs(dst, [b.key], { timeoutMs, replace: st.replace, credentials: s.credentials }));
                return;
            } catch (e) {
                const kind = classifyMigrateError((e as Error).message);
                if (kind === "busy" && !st.replace && (await this.targetImportsFrom(b.slot))) {
                    st.replace = true;
                    continue;
                }
                if (kind !== "transient" || attempt + 1 >= (s.maxAttempts ?? 8)) {
                    fail("migrate-big-key", src, b.slot, e, openState(`MIGRATING on ${src.key}; the big key is still on ${src.key}`));
                }
                await sleep(backoffMs(attempt + 1));
            }
        }
    }

    /** Whether the target reports `slot` as IMPORTING from the source on its own CLUSTER NODES line. */
    private async targetImportsFrom(slot: number): Promise<boolean> {
        const [d] = await readNodes(this.pool, [this.dst.key]);
        return d.myself?.importing.get(slot) === this.src.id;
    }
}

/** "5461-5470,5480" for messages (ranges, at most 6 shown). */
export function describe(slots: number[]): string {
    const sorted = [...slots].sort((a, b) => a - b);
    const parts: string[] = [];
    let i = 0;
    while (i < sorted.length) {
        let j = i;
        while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
        parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
        i = j + 1;
    }
    return parts.length > 6 ? `${parts.slice(0, 6).join(",")},… (${slots.length} slots)` : parts.join(",");
}
