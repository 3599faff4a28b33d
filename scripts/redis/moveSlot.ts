/**
 * Moving a batch of slots from one master to another with the standard protocol,
 * several slots per round trip:
 *
 *   1. target:  CLUSTER SETSLOT s IMPORTING <source>        (all slots of the batch, one pipeline)
 *   2. source:  CLUSTER SETSLOT s MIGRATING <target>
 *               keys of s with their sizes                  (same pipeline; one Lua call per slot doing
 *                                                            GETKEYSINSLOT + MEMORY USAGE, see KEYS_WITH_SIZES_LUA)
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
import Redis, { Command } from "ioredis";
import { createHash } from "node:crypto";
import { StepError } from "../errors";
import { backoffMs, classifyMigrateError, migrateArgs, migrateTimeoutFor, sleep } from "./migrate";
import { parseClusterNodes } from "./clusterNodes";
import { Credentials, NodeKey, NodePool } from "./pool";

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

type Reply = [Error | null, unknown];
type Cmd = { name: string; args: (string | number | Buffer)[]; buffer?: boolean; raw?: Buffer };

/**
 * A command written as prepared RESP bytes: MIGRATE with the keys spliced in as the
 * source returned them, so no key is decoded into its own Buffer and re-encoded
 * (ioredis' Script class overrides toWritable the same way).
 */
class RawCommand extends Command {
    constructor(name: string, private readonly raw: Buffer) {
        super(name, []);
    }
    toWritable(): Buffer {
        return this.raw;
    }
}

async function pipe(c: Redis, cmds: Cmd[]): Promise<Reply[]> {
    if (cmds.length === 0) return [];
    // ChainableCommander's type hides Pipeline.sendCommand, which every pipeline has.
    const p = c.pipeline() as ReturnType<Redis["pipeline"]> & { sendCommand(cmd: Command): unknown };
    for (const cmd of cmds) {
        if (cmd.raw) p.sendCommand(new RawCommand(cmd.name, cmd.raw));
        else if (cmd.buffer) p.callBuffer(cmd.name, ...cmd.args);
        else p.call(cmd.name, ...cmd.args);
    }
    const res = await p.exec();
    return res as Reply[];
}

const setslot = (slot: number, ...rest: string[]): Cmd => ({ name: "CLUSTER", args: ["SETSLOT", String(slot), ...rest] });
const getkeys = (slot: number, n: number): Cmd => ({ name: "CLUSTER", args: ["GETKEYSINSLOT", String(slot), String(n)], buffer: true });

/** "$<len>\r\n<key>\r\n" for each key: RESP bulk strings, ready to follow "KEYS". */
export function encodeKeys(keys: Buffer[]): Buffer {
    const parts: Buffer[] = [];
    for (const k of keys) parts.push(Buffer.from(`$${k.length}\r\n`), k, CRLF);
    return Buffer.concat(parts);
}
const CRLF = Buffer.from("\r\n");

/** The whole MIGRATE command as RESP: the arguments of migrateArgs up to KEYS, then `count` encoded keys. */
export function migrateCommand(head: (string | Buffer)[], blob: Buffer, count: number): Buffer {
    let h = `*${1 + head.length + count}\r\n$7\r\nMIGRATE\r\n`;
    for (const a of head) h += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
    return Buffer.concat([Buffer.from(h), blob]);
}

/**
 * GETKEYSINSLOT and MEMORY USAGE of each key in one server-side call. Returns
 * {keys fetched, n, the n keys under the threshold as RESP bulk strings, {key, bytes}
 * of the others}: sizing costs no extra round trip and no command per key, and the
 * keys come back ready to splice into MIGRATE. The keys are of one slot, which the
 * node serves (it is MIGRATING), so a script may touch them without declaring them
 * (no shebang: 6.2 has none). A limit of 0 skips the sizing. Where scripting is
 * refused (ACL, a server without it), the engine falls back to GETKEYSINSLOT plus
 * pipelined MEMORY USAGE.
 */
export const KEYS_WITH_SIZES_LUA = [
    "local keys = redis.call('CLUSTER', 'GETKEYSINSLOT', ARGV[1], ARGV[2])",
    "local limit = tonumber(ARGV[3])",
    "local parts, big, n = {}, {}, 0",
    "for _, k in ipairs(keys) do",
    "  local m = false",
    "  if limit > 0 then m = redis.call('MEMORY', 'USAGE', k) end",
    "  if m and m >= limit then big[#big + 1] = k; big[#big + 1] = m",
    "  else n = n + 1; parts[n] = '$' .. #k .. '\\r\\n' .. k .. '\\r\\n' end",
    "end",
    "return {#keys, n, table.concat(parts), big}",
].join("\n");
const KEYS_WITH_SIZES_SHA = createHash("sha1").update(KEYS_WITH_SIZES_LUA).digest("hex");

/** Keys of one slot as last fetched from the source. */
interface SlotState {
    slot: number;
    /** Keys the last fetch returned (big ones included). */
    fetched: number;
    /** Keys to MIGRATE together, RESP-encoded, and how many. */
    blob: Buffer;
    blobKeys: number;
    /** Keys at or over the big-key threshold: moved one at a time. */
    big: { key: Buffer; bytes: number }[];
    /** Keys fetched plainly and not sized yet. */
    unsized?: Buffer[];
    replace: boolean;
    attempts: number;
}

const EMPTY = Buffer.alloc(0);
const newState = (slot: number): SlotState => ({ slot, fetched: 0, blob: EMPTY, blobKeys: 0, big: [], replace: false, attempts: 0 });
const hasWork = (st: SlotState) => st.blobKeys > 0 || st.big.length > 0 || (st.unsized?.length ?? 0) > 0;

/** How a source is asked for keys: by the script, or plainly (then sized by pipelined MEMORY USAGE). */
class KeyFetcher {
    private static noScript = new Set<NodeKey>();
    constructor(private readonly srcKey: NodeKey, private readonly batchKeys: number, private readonly bigKeyBytes: number) {}
    get scripted(): boolean {
        return !KeyFetcher.noScript.has(this.srcKey);
    }
    /** SCRIPT LOAD, at the head of the pipeline that first uses the script (a failure shows in the EVALSHA replies). */
    prelude(): Cmd[] {
        return this.scripted ? [{ name: "SCRIPT", args: ["LOAD", KEYS_WITH_SIZES_LUA] }] : [];
    }
    cmd(slot: number): Cmd {
        if (!this.scripted) return getkeys(slot, this.batchKeys);
        return { name: "EVALSHA", args: [KEYS_WITH_SIZES_SHA, "0", String(slot), String(this.batchKeys), String(this.bigKeyBytes)], buffer: true };
    }
    /** Fills `st` from a reply of `cmd` (scripted or plain, as it was when the command was built). */
    apply(st: SlotState, reply: unknown, wasScripted: boolean): void {
        if (!wasScripted) {
            const keys = reply as Buffer[];
            st.fetched = keys.length;
            st.big = [];
            if (this.bigKeyBytes > 0) {
                st.unsized = keys;
                st.blob = EMPTY;
                st.blobKeys = 0;
            } else {
                st.blob = encodeKeys(keys);
                st.blobKeys = keys.length;
            }
            return;
        }
        const [total, n, blob, big] = reply as [number, number, Buffer, (Buffer | number)[]];
        st.fetched = Number(total);
        st.blobKeys = Number(n);
        st.blob = blob;
        st.big = [];
        for (let i = 0; i + 1 < big.length; i += 2) st.big.push({ key: big[i] as Buffer, bytes: Number(big[i + 1]) });
    }
    /** Scripting refused on this source: use the plain path from now on. */
    disable(): void {
        KeyFetcher.noScript.add(this.srcKey);
    }
}

/** Moves `slots` (all owned by `src`) to `dst`. Throws StepError naming what is left open. */
export async function moveSlots(pool: NodePool, src: NodeRef, dst: NodeRef, slots: number[], s: MoveSettings): Promise<MoveResult> {
    const result: MoveResult = { keys: 0, bigKeys: 0, replacedSlots: [] };
    if (slots.length === 0) return result;
    const fail = (step: string, node: NodeRef, slot: number | undefined, cause: unknown, state: string): never => {
        throw new StepError({ op: s.op, step, node: node.key, slot, cause, state, resume: s.resumeHint });
    };
    const openState = (which: string) => `slots ${describe(slots)} ${which}; the cluster keeps serving them (clients follow ASK), and the next run of any command finishes or rolls them back first`;

    const dstC = await pool.get(dst.key).catch((e) => fail("connect", dst, undefined, e, "nothing changed for this batch"));
    const srcC = await pool.get(src.key).catch((e) => fail("connect", src, undefined, e, "nothing changed for this batch"));

    // 1. IMPORTING on the target
    const r1 = await pipe(dstC, slots.map((slot) => setslot(slot, "IMPORTING", src.id))).catch((e) => fail("set-importing", dst, undefined, e, openState(`may be IMPORTING on ${dst.key}`)));
    r1.forEach(([err], i) => {
        if (err) fail("set-importing", dst, slots[i], err, openState(`partly IMPORTING on ${dst.key}`));
    });

    // 2. MIGRATING on the source, with the first keys of each slot
    const fetcher = new KeyFetcher(src.key, s.batchKeys, s.bigKeyBytes);
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
    await migrateKeysOfSlots(pool, srcC, src, dst, states, s, result, fail, openState, fetcher);

    // The engine's invariant: a slot is never assigned away from a node that still holds
    // keys in it. Once the target owns the slot (SETSLOT NODE bumps its epoch), gossip
    // reaches the source, which deletes every key it still has there as a "dirty slot"
    // (cluster.c clusterUpdateSlotsConfigWith) while its replicas keep them: the keys are
    // gone from the cluster. So the source is counted, not trusted to be empty.
    await ensureSourceEmpty(srcC, src, dst, states, s, result, fail, openState, fetcher, pool);

    // 4. new owner first
    const r4 = await pipe(dstC, slots.map((slot) => setslot(slot, "NODE", dst.id))).catch((e) => fail("set-node-target", dst, undefined, e, openState(`emptied on ${src.key}, still MIGRATING/IMPORTING`)));
    r4.forEach(([err], i) => {
        if (err) fail("set-node-target", dst, slots[i], err, openState(`emptied on ${src.key}, still MIGRATING/IMPORTING`));
    });

    // 5. source and the other masters, in parallel
    const tellOthers = Promise.all(s.others.filter((o) => o.id !== src.id && o.id !== dst.id).map(async (o) => {
        try {
            const c = await pool.get(o.key);
            // Errors in the replies are harmless: the target's bumped epoch reaches every node by gossip.
            await pipe(c, slots.map((slot) => setslot(slot, "NODE", dst.id)));
        } catch {
            const i = s.others.indexOf(o);
            if (i >= 0) s.others.splice(i, 1);
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
        await migrateKeysOfSlots(pool, srcC, src, dst, stillHolding, s, result, fail, openState, fetcher);
    }
    await tellOthers;
    s.onSlots?.(slots.length);
    return result;
}

type Fail = (step: string, node: NodeRef, slot: number | undefined, cause: unknown, state: string) => never;

/**
 * COUNTKEYSINSLOT on the source for every slot of the batch; slots that still hold keys
 * are emptied again (at most twice), then the batch fails with the slots left open
 * (MIGRATING/IMPORTING, keys on the source: the next run rolls them back or finishes them).
 */
async function ensureSourceEmpty(
    srcC: Redis, src: NodeRef, dst: NodeRef, states: SlotState[], s: MoveSettings, result: MoveResult,
    fail: Fail, openState: (which: string) => string, fetcher: KeyFetcher, pool: NodePool,
): Promise<void> {
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
        await migrateKeysOfSlots(pool, srcC, src, dst, holding.map((h) => h.st), s, result, fail, openState, fetcher);
    }
}

async function migrateKeysOfSlots(
    pool: NodePool, srcC: Redis, src: NodeRef, dst: NodeRef, states: SlotState[], s: MoveSettings, result: MoveResult,
    fail: Fail, openState: (which: string) => string, fetcher: KeyFetcher,
): Promise<void> {
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
                await moveBigKey(pool, src, dst, { ...b, slot: st.slot }, s, st, fail, openState);
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
                            verifiedImporting = await targetImportsFrom(pool, dst, st.slot, src.id);
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

async function moveBigKey(
    pool: NodePool, src: NodeRef, dst: NodeRef, b: { key: Buffer; bytes: number; slot: number }, s: MoveSettings, st: SlotState,
    fail: Fail, openState: (which: string) => string,
): Promise<void> {
    const timeoutMs = migrateTimeoutFor(b.bytes, s.migrateTimeoutMs);
    s.warn(`slot ${b.slot}: big key (${(b.bytes / 1024 / 1024).toFixed(1)} MiB) moved alone with a ${timeoutMs} ms timeout`);
    const c = s.bigKeyClient ? await s.bigKeyClient(src.key, timeoutMs + 10000) : await pool.get(src.key);
    for (let attempt = 0; ; attempt++) {
        try {
            await c.call("MIGRATE", ...migrateArgs(dst, [b.key], { timeoutMs, replace: st.replace, credentials: s.credentials }));
            return;
        } catch (e) {
            const kind = classifyMigrateError((e as Error).message);
            if (kind === "busy" && !st.replace && (await targetImportsFrom(pool, dst, b.slot, src.id))) {
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

/** Whether `dst` reports `slot` as IMPORTING from `srcId` on its own CLUSTER NODES line. */
async function targetImportsFrom(pool: NodePool, dst: NodeRef, slot: number, srcId: string): Promise<boolean> {
    try {
        const text = (await pool.call(dst.key, "CLUSTER", "NODES")) as string;
        const me = parseClusterNodes(text).find((n) => n.myself);
        return me?.importing.get(slot) === srcId;
    } catch {
        return false;
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
