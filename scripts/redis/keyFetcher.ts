/**
 * Fetching the keys of a MIGRATING slot from the source, sized so big keys can move
 * alone: one Lua call per slot where scripting is allowed, GETKEYSINSLOT plus
 * pipelined MEMORY USAGE where it is not.
 */
import { createHash } from "node:crypto";
import { NodeKey } from "./pool";
import { Cmd, encodeKeys, getkeys } from "./resp";

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
export interface SlotState {
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

export const EMPTY = Buffer.alloc(0);
export const newState = (slot: number): SlotState => ({ slot, fetched: 0, blob: EMPTY, blobKeys: 0, big: [], replace: false, attempts: 0 });
export const hasWork = (st: SlotState) => st.blobKeys > 0 || st.big.length > 0 || (st.unsized?.length ?? 0) > 0;

/** How a source is asked for keys: by the script, or plainly (then sized by pipelined MEMORY USAGE). */
export class KeyFetcher {
    /**
     * @param noScript the sources that refused the script, shared by every batch of one
     *   mover (a refusal learned once is not paid for again), never process-wide: another
     *   run, or a node restarted with other ACLs, asks again.
     */
    constructor(private readonly srcKey: NodeKey, private readonly batchKeys: number, private readonly bigKeyBytes: number, private readonly noScript: Set<NodeKey>) {}
    get scripted(): boolean {
        return !this.noScript.has(this.srcKey);
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
        this.noScript.add(this.srcKey);
    }
}

