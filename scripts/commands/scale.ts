/**
 * `scale`: bring the cluster to the declared topology.
 *
 * Scale out (after `pulumi up` added nodes): the new nodes are checked and joined
 * and their replicas attached by the same code as `create` (scripts/redis/form.ts:
 * MEET, REPLICATE, then a wait for agreement — a freshly met master refuses
 * queries for about cluster-node-timeout, so the wait polls instead of sleeping),
 * then slots are rebalanced by weight onto the new masters.
 *
 * Scale in (before the smaller `pulumi up`): masters the topology no longer
 * declares are drained (memory headroom checked first), then every leaving node is
 * reset and forgotten by every remaining node, after which the smaller `pulumi up`
 * is safe.
 *
 * The declared topology: --topology FILE as given; with --stack, the stack's
 * `topology` output cut down to `shards`/`replicasPerShard` of Pulumi.<stack>.yaml
 * (so scale in works before the outputs shrink); --shards/--replicas override both.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { CommandContext, CommonOptions } from "./context";
import { parseStackYaml } from "../../components/config";
import { parseNodeName, Topology } from "../../components/topology";
import { RefusedError, StepError, UsageError } from "../errors";
import { fmtDuration, Output } from "../output";
import { MasterInput } from "../plan/rebalance";
import { keyOf, planTopology, PlanError } from "../plan/topology";
import { ClusterNodeInfo } from "../redis/clusterNodes";
import { ClusterView, waitUntil } from "../redis/clusterView";
import { formCluster } from "../redis/form";
import { restoreLeftoverTimeouts } from "../redis/joinTimeout";
import { configuredNodeTimeoutMs } from "./create";
import { keyOfNode, readCluster } from "../redis/members";
import type { Lease } from "../redis/lease";
import { openSession } from "./session";
import { NodePool } from "../redis/pool";
import { forgetEverywhere, retireNodes } from "../redis/remove";
import { confirmYes } from "./prompt";
import { mastersFromView, namesOf, planAndMove } from "../redis/rebalance";

export interface ScaleOptions extends CommonOptions {
    dryRun?: boolean;
    parallel?: number;
    batch?: number;
    bigKeyMb?: number;
    yes?: boolean;
    /** Keep shards 0..n-1 of the topology. */
    shards?: number;
    /** Keep replicas r1..rn of each shard. */
    replicas?: number;
    timeout?: number;
    /** Run under this lease, held by the caller (autoscale), instead of taking one (not a CLI flag). */
    heldLease?: Lease;
}

/** The topology cut down to `shards` shards and `replicas` replicas per shard (either optional). Pure. */
export function declaredTopology(t: Topology, shards?: number, replicas?: number): Topology {
    const present = new Set(t.nodes.map((n) => n.shard));
    if (shards !== undefined) {
        const missing = [...Array(shards).keys()].filter((s) => !present.has(s));
        if (missing.length) {
            throw new UsageError(`${shards} shard(s) are declared but the topology has no node for shard(s) ${missing.join(", ")}: to scale out, run \`pulumi up\` first so the new nodes exist, then scale`);
        }
    }
    const nodes = t.nodes.filter((n) => {
        if (shards !== undefined && n.shard >= shards) return false;
        const r = parseNodeName(n.name)?.replica;
        if (replicas !== undefined && r !== undefined && r > replicas) return false;
        return true;
    });
    return { ...t, nodes };
}

/** Shards/replicas declared in Pulumi.<stack>.yaml of the project, when the file exists. */
function stackDeclared(stack: string): { shards?: number; replicas?: number; file?: string } {
    const file = join(resolve(__dirname, "..", ".."), `Pulumi.${stack}.yaml`);
    if (!existsSync(file)) return {};
    const cfg = parseStackYaml(readFileSync(file, "utf8"), stack);
    return { shards: cfg.shards, replicas: cfg.replicasPerShard, file };
}

/**
 * create's executor prints create's own plan (the slot ranges a fresh cluster would
 * get), which is not what scale does with the slots; keep its checks, warnings,
 * steps and the final "formed" line only.
 */
function joinOutput(out: Output): Output {
    return {
        json: out.json,
        info: () => undefined,
        warn: (l) => out.warn(l),
        event: (name, fields, human) => {
            if (name === "step" || name === "formed") out.event(`join-${name}`, fields, human);
        },
        result: () => undefined,
    };
}

/** Every node the cluster's members know (their own lines and their peers), by id. */
function clusterNodes(view: ClusterView): Map<string, ClusterNodeInfo> {
    const out = new Map<string, ClusterNodeInfo>();
    for (const v of view.reachable()) {
        if (!v.myself || (v.nodes.length <= 1 && v.myself.slots.length === 0)) continue;
        for (const n of v.nodes) if (!n.flags.includes("handshake") && (n.myself || !out.has(n.id))) out.set(n.id, n);
    }
    return out;
}

export async function run(opts: ScaleOptions, ctx: CommandContext): Promise<number> {
    const t0 = Date.now();
    const session = await openSession(opts, ctx, "scale");
    const { target, pool } = session;
    ctx = { ...ctx, signal: session.signal };
    let view = session.view;
    try {
        let shards = opts.shards;
        let replicas = opts.replicas;
        if (opts.stack && shards === undefined && replicas === undefined) {
            const d = stackDeclared(opts.stack);
            if (d.file) ctx.out.info(`declared in ${d.file}: ${d.shards} shard(s), ${d.replicas} replica(s) per shard`);
            shards = d.shards;
            replicas = d.replicas;
        }
        const topology = declaredTopology(target.topology, shards, replicas);
        const declaredShards = new Set(topology.nodes.map((n) => n.shard)).size;
        if (declaredShards < 3) {
            // The same warning as create's (plan/topology.ts); stack config refuses fewer than 3 shards.
            ctx.out.warn(`only ${declaredShards} shard(s) declared: Redis Cluster needs a majority of at least 3 masters to fail over automatically`);
        }
        const declared = new Set(topology.nodes.map(keyOfNode));

        // Who is in the cluster now, who joins, who leaves.
        const inCluster = clusterNodes(view);
        const memberKeys = new Set([...inCluster.values()].map((n) => n.key));
        const joining = topology.nodes.filter((n) => !memberKeys.has(keyOfNode(n)));
        const leaving = [...inCluster.values()].filter((n) => !declared.has(n.key));
        const leavingMasters = leaving.filter((n) => n.role === "master" && n.slots.length > 0);
        const unreachableJoin = joining.filter((n) => !view.views.get(keyOfNode(n))?.reachable);
        if (unreachableJoin.length) {
            throw new RefusedError(`scale: new node(s) ${unreachableJoin.map((n) => `${n.name} (${keyOfNode(n)})`).join(", ")} cannot be reached; nothing was changed. Are they up (pulumi up finished, redis running)?`);
        }
        const deadLeaving = leavingMasters.filter((n) => !view.views.get(n.key)?.reachable);
        if (deadLeaving.length) {
            throw new RefusedError(`scale: master(s) to remove ${deadLeaving.map((n) => n.key).join(", ")} own slots but cannot be reached, so their keys cannot be moved; nothing was changed. Bring them back, or fail over to a replica (failover --force), then rerun.`);
        }
        if (joining.length && leaving.length) {
            throw new UsageError(`scale: the declared topology both adds ${joining.length} node(s) (${joining.map((n) => n.name).join(", ")}) and removes ${leaving.length} (${leaving.map((n) => n.key).join(", ")}); do one at a time: scale out first (the larger topology), then scale in`);
        }
        const failing = [...inCluster.values()].filter((n) => n.failing && declared.has(n.key));
        if (failing.length) ctx.out.warn(`node(s) flagged failing: ${failing.map((n) => n.key).join(", ")}`);

        ctx.out.event("scale-plan", {
            join: joining.map((n) => ({ name: n.name, node: keyOfNode(n), shard: n.shard })),
            remove: leaving.map((n) => ({ node: n.key, id: n.id, role: n.role, slots: n.slots.reduce((a, r) => a + r.end - r.start + 1, 0) })),
        }, [
            joining.length ? `join ${joining.length} node(s): ${joining.map((n) => `${n.name} (${keyOfNode(n)})`).join(", ")}` : "",
            leaving.length ? `remove ${leaving.length} node(s): ${leaving.map((n) => `${n.key} (${n.role}${n.slots.length ? `, drain ${n.slots.reduce((a, r) => a + r.end - r.start + 1, 0)} slots` : ""})`).join(", ")}` : "",
            !joining.length && !leaving.length ? "membership already matches the topology" : "",
        ].filter(Boolean).join("\n"));

        // --- dry run: the slot plan with placeholders for masters not joined yet
        if (opts.dryRun) {
            // create's checks on the joining nodes (empty, cluster mode on), and its join plan; nothing is sent.
            if (joining.length) await formCluster(pool, topology, { dryRun: true, timeoutMs: 0, out: joinOutput(ctx.out), signal: ctx.signal });
            const drain = new Set(leavingMasters.map((n) => n.id));
            const masters: MasterInput[] = mastersFromView(view, topology, drain);
            if (joining.length) {
                let plan;
                try {
                    plan = planTopology(topology, { pinnedMasters: [...inCluster.values()].filter((n) => n.role === "master" && n.slots.length > 0).map((n) => n.key) });
                } catch (e) {
                    if (e instanceof PlanError) throw new RefusedError(`scale: ${e.problems.join("; ")}`);
                    throw e;
                }
                for (const s of plan.shards) if (!memberKeys.has(keyOf(s.master))) masters.push({ id: `new:${keyOf(s.master)}`, slots: [], weight: s.master.weight ?? 1 });
            }
            const outcome = await planAndMove(pool, view, masters, { op: "scale", dryRun: true, parallel: opts.parallel, batchKeys: opts.batch }, ctx);
            ctx.out.result({ ok: true, dryRun: true, join: joining.map((n) => n.name), remove: leaving.map((n) => n.key), slots: outcome.plan.moves.length, keys: outcome.keysToMove },
                `dry run: would join ${joining.length}, remove ${leaving.length} node(s), move ${outcome.plan.moves.length} slot(s) with ${outcome.keysToMove} key(s); nothing changed`);
            return 0;
        }

        if (leavingMasters.length) {
            const ok = await confirmYes(
                `Drain ${leavingMasters.length} master(s) (${leavingMasters.map((n) => n.key).join(", ")}) and remove ${leaving.length} node(s) from the cluster?`,
                opts.yes, `scale refused: draining ${leavingMasters.length} master(s) needs confirmation; nothing was changed`);
            if (!ok) throw new RefusedError("scale: not confirmed; nothing was changed");
        }

        // --- join
        if (joining.length) {
            await formCluster(pool, topology, {
                timeoutMs: opts.timeout ?? 120000, signal: ctx.signal, out: joinOutput(ctx.out), resumeHint: "rerun `scale`: it joins what is missing, then moves the slots",
                configuredNodeTimeoutMs: configuredNodeTimeoutMs(target),
            });
            view = await readCluster(pool, topology);
        } else {
            // A join killed before its nodes got their cluster-node-timeout back (joinTimeout.ts):
            // restored before any slot moves, so no node judges a busy MIGRATE source by 500 ms.
            await restoreLeftoverTimeouts(pool, topology.nodes.map((n) => ({ key: keyOfNode(n), name: n.name })), { configured: configuredNodeTimeoutMs(target), out: ctx.out, op: "scale" });
        }

        // --- move slots (rebalance onto new masters, drain leaving ones)
        const drain = new Set(leavingMasters.map((n) => n.id));
        const moved = await planAndMove(pool, view, mastersFromView(view, topology, drain), {
            op: "scale", parallel: opts.parallel, batchKeys: opts.batch, bigKeyMb: opts.bigKeyMb, thresholdPct: 0, names: namesOf(topology),
        }, ctx);

        // --- remove leaving nodes
        let forgetMs = 0;
        if (leaving.length) forgetMs = await removeNodes(pool, topology, leaving, ctx);

        const remainingKeys = topology.nodes.map(keyOfNode);
        let last = "";
        await waitUntil(async () => {
            const v = await ClusterView.read(pool, remainingKeys);
            last = `${v.reachable().filter((n) => n.info.cluster_state === "ok").length} of ${remainingKeys.length} node(s) report cluster_state:ok, slot maps ${v.slotMapsAgree() ? "agree" : "differ"}, ${v.openSlots().length} open slot(s)`;
            return v.allOk() && v.slotMapsAgree() && v.openSlots().length === 0;
        }, {
            timeoutMs: 30000, what: "every remaining node to report cluster_state:ok and agree on the slot map", signal: ctx.signal,
            op: "scale", state: `nodes joined, slots moved${leaving.length ? ", leaving nodes forgotten" : ""}; the nodes have not all agreed yet`,
            resume: "check with `status`; rerun `scale`: it finds the work done and waits again",
        }, () => last);

        const doc = {
            ok: true, joined: joining.map((n) => n.name), removed: leaving.map((n) => n.key),
            slotsMoved: moved.result?.slots ?? 0, keysMoved: moved.result?.keys ?? 0, forgetMs, ms: Date.now() - t0,
            next: leaving.length ? "the cluster no longer uses the removed nodes: apply the smaller topology now (pulumi up)" : undefined,
        };
        const lines = [
            `scale done in ${fmtDuration(doc.ms)}: ${joining.length} node(s) joined, ${leaving.length} removed, ${doc.slotsMoved} slot(s) and ${doc.keysMoved} key(s) moved`,
            ...(leaving.length ? [`Every remaining node has forgotten the removed node(s); it is now safe to run the smaller \`pulumi up\` that deletes them.`] : []),
        ];
        ctx.out.result(doc, lines.join("\n"));
        return 0;
    } finally {
        await pool.close();
    }
}

/**
 * Resets the leaving nodes (drained masters hold no key by now) and has every
 * remaining node forget them, in parallel. Remaining replicas that follow a leaving
 * node (a drained master may have turned into a replica, redis/redis#9223; replica
 * migration may have moved a replica) are first re-pointed to their shard's master.
 */
async function removeNodes(pool: NodePool, topology: Topology, leaving: ClusterNodeInfo[], ctx: CommandContext): Promise<number> {
    const view = await readCluster(pool, topology, leaving.map((n) => n.key));
    const leavingIds = new Set(leaving.map((n) => n.id));
    // A leaving master that still owns slots or keys would take them with it: refuse.
    // (A drained master that turned into a replica holds a copy of its new master's data: fine.)
    for (const n of leaving) {
        const v = view.views.get(n.key);
        if (!v?.reachable || v.myself?.role !== "master") continue;
        const keys = Number(await pool.call(n.key, "DBSIZE"));
        if (v.myself.slots.length > 0 || keys > 0) {
            throw new StepError({ op: "scale", step: "remove", node: n.key, cause: `still holds ${v.myself.slots.length ? "slots" : `${keys} key(s)`}`, state: "nothing removed yet", resume: "rerun `scale`: it moves what is left first" });
        }
    }
    // Remaining replicas that follow a leaving node go back to their shard's master.
    const byShard = new Map<number, string[]>();
    for (const t of topology.nodes) byShard.set(t.shard, [...(byShard.get(t.shard) ?? []), keyOfNode(t)]);
    for (const t of topology.nodes) {
        const me = view.self(keyOfNode(t));
        if (!me || me.role !== "replica" || !me.masterId || !leavingIds.has(me.masterId)) continue;
        const master = byShard.get(t.shard)!.map((k) => view.self(k)).find((m) => m?.role === "master");
        if (!master) throw new StepError({ op: "scale", step: "re-replicate", node: keyOfNode(t), cause: `shard ${t.shard} has no master to follow`, state: "nothing removed yet", resume: "attach it with `replicate`, then rerun `scale`" });
        try {
            await pool.call(keyOfNode(t), "CLUSTER", "REPLICATE", master.id);
        } catch (e) {
            throw new StepError({ op: "scale", step: "re-replicate", node: keyOfNode(t), cause: e, state: "slots moved; nothing removed yet", resume: "rerun `scale` (or attach it with `replicate`, then rerun `scale`)" });
        }
        ctx.out.event("step", { step: "re-replicate", node: keyOfNode(t), master: master.key }, `${t.name} followed a leaving node; now replicates ${master.key}`);
    }
    const reachableLeaving = leaving.filter((n) => view.views.get(n.key)?.reachable).map((n) => n.key);
    const retireProblems = await retireNodes(pool, reachableLeaving);
    for (const p of retireProblems) ctx.out.warn(`could not fence and reset leaving node ${p}; it is forgotten anyway, but until it is terminated a client that reaches it may read an empty slot map from it`);
    if (reachableLeaving.length > retireProblems.length) {
        ctx.out.event("step", { step: "fence", nodes: reachableLeaving }, `fenced and reset ${reachableLeaving.length - retireProblems.length} leaving node(s): ACL users off until restart, clients disconnected`);
    }
    const remaining = topology.nodes.map(keyOfNode).filter((k) => view.views.get(k)?.reachable);
    const r = await forgetEverywhere(pool, remaining, [...leavingIds]).catch((e) => {
        throw new StepError({ op: "scale", step: "forget", cause: e, state: "slots moved; leaving nodes reset; some remaining nodes may still know them", resume: "rerun `scale` within 60 s (or `forget <node>` for each)" });
    });
    if (r.errors.length) {
        throw new StepError({ op: "scale", step: "forget", cause: r.errors.join("; "), state: "slots moved; some nodes may still know the removed node(s)", resume: "rerun `scale` within 60 s (or `forget <node>` for each)" });
    }
    ctx.out.event("step", { step: "forget", nodes: leaving.map((n) => n.key), ms: r.ms }, `forgot ${leaving.length} node(s) on ${remaining.length} remaining node(s) in ${fmtDuration(r.ms)}`);
    return r.ms;
}
