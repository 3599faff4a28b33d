/**
 * Pure parser for `CLUSTER NODES` (Redis 6.2, 7.x, Valkey):
 *   <id> <ip:port@cport[,hostname]> <flags> <master-id|-> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...
 * Slot entries are ranges "0-5460", single slots "5461", and on the `myself` line only,
 * open migrations "[5461->-<target-id>]" (MIGRATING) and "[5461-<-<source-id>]" (IMPORTING).
 * See https://redis.io/docs/latest/commands/cluster-nodes/
 */

import { SLOT_COUNT, SlotRange } from "./slots";

// The slot vocabulary (slots.ts), re-exported for the parser's users.
export { SLOT_COUNT, countSlots, formatRanges, fromRanges, toRanges } from "./slots";
export type { SlotRange } from "./slots";

export interface ClusterNodeInfo {
    id: string;
    host: string;
    port: number;
    busPort: number;
    hostname?: string;
    flags: string[];
    myself: boolean;
    role: "master" | "replica" | "unknown";
    /** Master's node id for a replica. */
    masterId?: string;
    pingSent: number;
    pongRecv: number;
    configEpoch: number;
    linkState: "connected" | "disconnected";
    /** Owned slots as ranges. */
    slots: SlotRange[];
    /** Slot -> target node id (only on the `myself` line). */
    migrating: Map<number, string>;
    /** Slot -> source node id (only on the `myself` line). */
    importing: Map<number, string>;
    /** PFAIL ("fail?") or FAIL flagged. */
    failing: boolean;
    /** `host:port` as announced. */
    key: string;
}

export function parseClusterNodes(text: string): ClusterNodeInfo[] {
    const out: ClusterNodeInfo[] = [];
    for (const raw of text.split("\n")) {
        const line = raw.trim();
        if (!line) continue;
        const f = line.split(" ");
        if (f.length < 8) throw new Error(`Unexpected CLUSTER NODES line: "${line}"`);
        const [id, addr, flagStr, master, pingSent, pongRecv, epoch, link, ...slotFields] = f;
        const [hostPortBus, hostname] = addr.split(",");
        const at = hostPortBus.lastIndexOf("@");
        const hostPort = at >= 0 ? hostPortBus.slice(0, at) : hostPortBus;
        const busPort = at >= 0 ? Number(hostPortBus.slice(at + 1)) : 0;
        const colon = hostPort.lastIndexOf(":");
        const host = hostPort.slice(0, colon);
        const port = Number(hostPort.slice(colon + 1));
        const flags = flagStr.split(",").filter((x) => x && x !== "noflags");
        const node: ClusterNodeInfo = {
            id,
            host,
            port,
            busPort,
            hostname: hostname || undefined,
            flags,
            myself: flags.includes("myself"),
            role: flags.includes("master") ? "master" : flags.includes("slave") ? "replica" : "unknown",
            masterId: master !== "-" ? master : undefined,
            pingSent: Number(pingSent),
            pongRecv: Number(pongRecv),
            configEpoch: Number(epoch),
            linkState: link === "connected" ? "connected" : "disconnected",
            slots: [],
            migrating: new Map(),
            importing: new Map(),
            failing: flags.includes("fail") || flags.includes("fail?"),
            key: `${host}:${port}`,
        };
        for (const s of slotFields) {
            if (s.startsWith("[")) {
                const m = /^\[(\d+)-([<>])-([0-9a-f]+)\]$/.exec(s);
                if (!m) continue;
                const slot = Number(m[1]);
                if (m[2] === ">") node.migrating.set(slot, m[3]);
                else node.importing.set(slot, m[3]);
            } else if (s.includes("-")) {
                const [a, b] = s.split("-").map(Number);
                node.slots.push({ start: a, end: b });
            } else if (s !== "") {
                const n = Number(s);
                node.slots.push({ start: n, end: n });
            }
        }
        out.push(node);
    }
    return out;
}

/**
 * Slot map as one node sees it: slot -> owner node id (undefined when unassigned).
 */
export function slotOwners(nodes: ClusterNodeInfo[]): (string | undefined)[] {
    const owners: (string | undefined)[] = new Array(SLOT_COUNT).fill(undefined);
    for (const n of nodes) for (const r of n.slots) for (let s = r.start; s <= r.end; s++) owners[s] = n.id;
    return owners;
}
