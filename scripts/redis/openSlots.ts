/**
 * Finishes or rolls back slots left MIGRATING/IMPORTING by an interrupted move.
 * Every command of the tool calls `fixOpenSlots` before doing anything else.
 *
 * The rules, per open slot (A = the owner, migrating; B = the node importing):
 *
 * 1. A MIGRATING to B and B already owns the slot (the run stopped after telling
 *    B but before telling A): tell A and the other masters that B owns it.
 * 2. A MIGRATING to B, B IMPORTING from A (or not, after someone cleared it):
 *    - B holds keys of the slot: finish the move A → B (remaining keys, then
 *      SETSLOT NODE, new owner first). Keys that exist on both sides are the
 *      leftovers of an interrupted MIGRATE: while the slot was open, clients reached
 *      B for a key only when A no longer had it, so A's copy is the current one and
 *      replaces B's (see moveSlot.ts).
 *    - B holds no key: roll back. A stops migrating first (no more ASK towards B),
 *      then B is counted again: still empty, B stops importing; a key arrived in
 *      between (a client followed an ASK just before), finish forward instead.
 * 3. B IMPORTING from A and no node migrating: the same choice on B's key count
 *    (finish from the owner when B has keys, else clear B).
 * 4. Several nodes migrating or importing the same slot, or a node involved that
 *    cannot be reached: refused with what was found, since guessing could lose keys.
 *
 * This is the reasoning of redis-cli's `--cluster fix` (cases "one migrating, one
 * importing" and "importing without migrating"), except that redis-cli always moves
 * forward; rolling back an empty target keeps the original owner and moves nothing.
 */
import type { CommandContext } from "../context";
import { StepError } from "../errors";
import { ClusterView, OpenSlot } from "./clusterView";
import { slotOwners } from "./clusterNodes";
import { MoveSettings, NodeRef, moveSlots, describe } from "./moveSlot";
import { nodeRefs } from "./reshard";
import { NodePool } from "./pool";

export interface OpenSlotFix {
    slot: number;
    action: "finished" | "rolled-back" | "closed";
    from?: string;
    to?: string;
}

export interface FixOptions {
    /** Command name for errors. @default "fix-open-slots" */
    op?: string;
    resumeHint?: string;
    batchKeys?: number;
}

/** The owner most reachable nodes report for `slot`. */
function ownerOf(view: ClusterView, slot: number): string | undefined {
    const votes = new Map<string, number>();
    for (const v of view.reachable()) {
        const o = slotOwners(v.nodes)[slot];
        if (o) votes.set(o, (votes.get(o) ?? 0) + 1);
    }
    let best: string | undefined;
    let n = 0;
    for (const [id, c] of votes) if (c > n) [best, n] = [id, c];
    return best;
}

/**
 * Finds open slots in `view` and finishes or rolls them back. Returns what was done
 * (empty when nothing was open); callers re-read the view when it is not empty.
 */
export async function fixOpenSlots(pool: NodePool, view: ClusterView, ctx: CommandContext, opts: FixOptions = {}): Promise<OpenSlotFix[]> {
    const open = view.openSlots();
    if (open.length === 0) return [];
    const op = opts.op ?? "fix-open-slots";
    const resume = opts.resumeHint ?? "rerun the command once the nodes named above are reachable";
    const refs = nodeRefs(view);
    const bySlot = new Map<number, OpenSlot[]>();
    for (const o of open) {
        if (!bySlot.has(o.slot)) bySlot.set(o.slot, []);
        bySlot.get(o.slot)!.push(o);
    }
    ctx.out.info(`found ${bySlot.size} open slot(s) (${describe([...bySlot.keys()])}) left by an interrupted move: finishing or rolling back first`);

    const refuse = (slot: number, why: string): never => {
        throw new StepError({ op, step: "fix-open-slots", slot, cause: why, state: `slot ${slot} stays open; the cluster keeps serving it`, resume });
    };
    const known = view.knownNodes();
    const need = (id: string, slot: number, role: string): NodeRef => refs.get(id) ?? refuse(slot,
        `the ${role} ${id} (${known.get(id)?.key ?? "not known to any reachable node"}) is not reachable; it may hold keys of the slot already moved there, so the slot is neither finished nor rolled back. Bring that node back; if it is gone for good, \`forget\` it (that clears the slot on the other side; keys already moved to it are lost with it)`);

    // Decide per slot; count keys on the importing side in one pipeline per node.
    type Decision = { slot: number; a: NodeRef; b: NodeRef; kind: "close" | "decide" };
    const decisions: Decision[] = [];
    const fixes: OpenSlotFix[] = [];
    for (const [slot, entries] of bySlot) {
        const migrating = entries.filter((e) => e.state === "migrating");
        const importing = entries.filter((e) => e.state === "importing");
        if (migrating.length > 1 || importing.length > 1) {
            refuse(slot, `several nodes have it open (${entries.map((e) => `${e.node} ${e.state}`).join(", ")}); inspect with redis-cli --cluster check and fix by hand`);
        }
        const owner = ownerOf(view, slot);
        if (migrating.length === 1) {
            const m = migrating[0];
            const b = need(m.peerId, slot, "target");
            const a = refs.get(m.nodeId)!;
            if (importing.length === 1 && importing[0].nodeId !== m.peerId) {
                refuse(slot, `${m.node} migrates it to ${m.peerId} but ${importing[0].node} imports it`);
            }
            if (owner === b.id) decisions.push({ slot, a, b, kind: "close" });
            else if (owner !== a.id) refuse(slot, `${m.node} migrates it but ${owner ?? "no node"} owns it`);
            else decisions.push({ slot, a, b, kind: "decide" });
        } else {
            const i = importing[0];
            const b = refs.get(i.nodeId)!;
            if (!owner) refuse(slot, `${i.node} imports it but no node owns it`);
            if (owner === b.id) {
                decisions.push({ slot, a: b, b, kind: "close" });
                continue;
            }
            const a = need(owner!, slot, "owner");
            if (owner !== i.peerId) ctx.out.warn(`slot ${slot}: ${i.node} imports it from ${i.peerId}, but ${a.key} owns it; using the owner`);
            decisions.push({ slot, a, b, kind: "decide" });
        }
    }

    // 1. closes: the target already owns the slot. The migrating side must hold no key
    // of it: SETSLOT NODE there would leave its keys in a slot it no longer serves
    // (unreadable, and deleted when the new owner's claim reaches it by gossip).
    const closes = decisions.filter((d) => d.kind === "close");
    await Promise.all(groupBy(closes, (d) => d.a.key).map(async (ds) => {
        const c = await pool.get(ds[0].a.key);
        const handing = ds.filter((d) => d.a.id !== d.b.id);
        if (handing.length) {
            const cp = c.pipeline();
            for (const d of handing) cp.call("CLUSTER", "COUNTKEYSINSLOT", String(d.slot));
            const counts = (await cp.exec())!;
            counts.forEach(([err, n], i) => {
                const d = handing[i];
                if (err) refuse(d.slot, `cannot count the keys ${d.a.key} holds in it: ${err.message}`);
                if (Number(n) > 0) {
                    refuse(d.slot, `${d.b.key} owns it but ${d.a.key} still holds ${n} key(s) of it (a move assigned the slot before its keys had moved); handing it over would lose them. ` +
                        `The tool will not close this slot: inspect it (redis-cli --cluster check ${d.a.key}) and save the keys before anything else changes it`);
                }
            });
        }
        const p = c.pipeline();
        // SETSLOT NODE on a node that is the owner itself just clears the importing flag; STABLE does the same explicitly.
        for (const d of ds) p.call("CLUSTER", "SETSLOT", String(d.slot), ...(d.a.id === d.b.id ? ["STABLE"] : ["NODE", d.b.id]));
        const r = (await p.exec())!;
        r.forEach(([err], i) => {
            if (err && !/only with masters/.test(err.message)) refuse(ds[i].slot, `${ds[i].a.key} refused to hand it to its owner ${ds[i].b.key}: ${err.message}`);
        });
        for (const d of ds) fixes.push({ slot: d.slot, action: "closed", from: d.a.key, to: d.b.key });
    }));

    // 2. count keys on the importing side
    const open2 = decisions.filter((d) => d.kind === "decide");
    // An importing node keeps the slot's old owner whatever gossip says (cluster.c,
    // clusterUpdateSlotsConfigWith). When that owner died and its replica took over, B
    // still names the dead node, reports cluster_state:fail and answers the MIGRATE of a
    // forward move with CLUSTERDOWN (issue 9, defect 5). Telling B the current owner
    // (SETSLOT NODE <owner> on B, which keeps B importing and its keys where they are;
    // B owns nothing here, so nothing is assigned away from it) brings B back first.
    const stale = open2.filter((d) => view.slotMapOf(d.b.key)[d.slot] !== d.a.id);
    await Promise.all(groupBy(stale, (d) => d.b.key).map(async (ds) => {
        const c = await pool.get(ds[0].b.key);
        const p = c.pipeline();
        for (const d of ds) p.call("CLUSTER", "SETSLOT", String(d.slot), "NODE", d.a.id);
        const r = (await p.exec())!;
        r.forEach(([err], i) => {
            if (err) refuse(ds[i].slot, `${ds[i].b.key} refused to learn that ${ds[i].a.key} owns it now: ${err.message}`);
        });
    }));
    if (stale.length) ctx.out.info(`${stale.length} importing slot(s) named an owner that is gone; told the importing node(s) the current owner`);
    const keysOnB = new Map<number, number>();
    await Promise.all(groupBy(open2, (d) => d.b.key).map(async (ds) => {
        const c = await pool.get(ds[0].b.key);
        const p = c.pipeline();
        for (const d of ds) p.call("CLUSTER", "COUNTKEYSINSLOT", String(d.slot));
        const r = (await p.exec())!;
        ds.forEach((d, i) => keysOnB.set(d.slot, Number(r[i][1] ?? 0)));
    }));
    const forward = open2.filter((d) => (keysOnB.get(d.slot) ?? 0) > 0);
    const back = open2.filter((d) => (keysOnB.get(d.slot) ?? 0) === 0);

    // 3. roll back empty targets: A stable first, then B counted again, then B stable
    if (back.length) {
        await Promise.all(groupBy(back, (d) => d.a.key).map(async (ds) => {
            const c = await pool.get(ds[0].a.key);
            const p = c.pipeline();
            for (const d of ds) p.call("CLUSTER", "SETSLOT", String(d.slot), "STABLE");
            await p.exec();
        }));
        await Promise.all(groupBy(back, (d) => d.b.key).map(async (ds) => {
            const c = await pool.get(ds[0].b.key);
            const p = c.pipeline();
            for (const d of ds) p.call("CLUSTER", "COUNTKEYSINSLOT", String(d.slot));
            const r = (await p.exec())!;
            const stillEmpty = ds.filter((d, i) => Number(r[i][1] ?? 0) === 0);
            for (const d of ds) if (!stillEmpty.includes(d)) forward.push(d);
            const q = c.pipeline();
            for (const d of stillEmpty) q.call("CLUSTER", "SETSLOT", String(d.slot), "STABLE");
            await q.exec();
            for (const d of stillEmpty) fixes.push({ slot: d.slot, action: "rolled-back", from: d.a.key, to: d.b.key });
        }));
    }

    // 4. finish forward, batched per (A, B) with the normal engine; leftovers on B are replaced
    const others = [...refs.values()].filter((r) => view.self(r.key)?.role === "master");
    for (const ds of groupBy(forward, (d) => `${d.a.id}>${d.b.id}`)) {
        const settings: MoveSettings = {
            op, batchKeys: opts.batchKeys ?? 1000, roundKeys: 2 * (opts.batchKeys ?? 1000), migrateTimeoutMs: 10000, bigKeyBytes: 8 * 1024 * 1024,
            credentials: pool.options.credentials, others, resumeHint: resume, warn: (l) => ctx.out.warn(l),
        };
        await moveSlots(pool, ds[0].a, ds[0].b, ds.map((d) => d.slot), settings);
        for (const d of ds) fixes.push({ slot: d.slot, action: "finished", from: d.a.key, to: d.b.key });
    }
    const count = (a: OpenSlotFix["action"]) => fixes.filter((f) => f.action === a).length;
    ctx.out.event("open-slots-fixed", { finished: count("finished"), rolledBack: count("rolled-back"), closed: count("closed") },
        `open slots: ${count("finished")} finished, ${count("rolled-back")} rolled back, ${count("closed")} closed`);
    return fixes;
}

function groupBy<T>(items: T[], key: (t: T) => string): T[][] {
    const m = new Map<string, T[]>();
    for (const it of items) {
        const k = key(it);
        if (!m.has(k)) m.set(k, []);
        m.get(k)!.push(it);
    }
    return [...m.values()];
}
