/**
 * `forget NODE`: remove a dead node from every node's table, in one parallel burst
 * (CLUSTER FORGET bans the id for 60 s on each node; all must forget it within
 * that window or gossip brings it back). Refuses a node that is alive and still a
 * member (use `scale` to take a live node out: it drains and forgets), a master
 * that still owns slots (they would be left without owner), and a node that live
 * replicas still follow.
 */
import type { CommandContext, CommonOptions } from "./context";
import { RefusedError, StepError, UsageError } from "../errors";
import { fmtDuration } from "../output";
import { countSlots } from "../redis/clusterNodes";
import { findKnownNode } from "../redis/members";
import { openSession } from "./session";
import { forgetEverywhere } from "../redis/remove";

export interface ForgetOptions extends CommonOptions {
    args: string[];
}

export async function run(opts: ForgetOptions, ctx: CommandContext): Promise<number> {
    const arg = opts.args?.[0];
    if (!arg) throw new UsageError("forget: name the node (id, topology name or host:port)");
    const { target, pool, view } = await openSession(opts, ctx, "forget");
    try {
        const node = findKnownNode(arg, view, target.topology);
        if (!node) throw new UsageError(`forget ${arg}: no node of the cluster has that id, name or address (is it forgotten already?)`);
        const self = view.views.get(node.key);
        const isMember = !!self?.reachable && self.myself?.id === node.id && (self.nodes.length > 1 || self.myself.slots.length > 0);
        if (isMember) {
            throw new RefusedError(`forget ${arg}: ${node.key} is alive and still a member of the cluster; nothing was changed. To take a live node out, declare the smaller topology and run \`scale\` (it drains, resets and forgets), or stop the node first.`);
        }
        const owners = [...view.reachable()].map((v) => v.nodes.find((n) => n.id === node.id)).filter((n) => n && n.slots.length > 0);
        if (owners.length) {
            throw new RefusedError(`forget ${arg}: the cluster still assigns ${countSlots(owners[0]!.slots)} slot(s) to ${node.key}; forgetting it would leave them without owner. Promote a replica first (failover --node <replica> --force), or bring the node back; nothing was changed.`);
        }
        const followers = [...view.knownNodes().values()].filter((n) => n.role === "replica" && n.masterId === node.id && view.views.get(n.key)?.reachable);
        if (followers.length) {
            throw new RefusedError(`forget ${arg}: live replica(s) ${followers.map((n) => n.key).join(", ")} still follow ${node.key} and cannot forget their master; attach them elsewhere first (replicate <replica> <master>); nothing was changed.`);
        }
        const remaining = view.reachable().filter((v) => v.myself && v.myself.id !== node.id && v.nodes.length > 1).map((v) => v.key);
        if (remaining.length === 0) throw new RefusedError(`forget ${arg}: no reachable member to send CLUSTER FORGET to`);
        const r = await forgetEverywhere(pool, remaining, [node.id]).catch((e) => {
            throw new StepError({ op: "forget", step: "forget", node: node.key, cause: e, state: "CLUSTER FORGET was sent everywhere; some nodes still know it", resume: `rerun \`forget ${node.id}\` within 60 s, before the ban expires on the nodes that did forget it` });
        });
        if (r.errors.length) {
            throw new StepError({ op: "forget", step: "forget", node: node.key, cause: r.errors.join("; "), state: "some nodes forgot it, others may not have", resume: `rerun \`forget ${node.id}\` within 60 s, before the ban expires on the nodes that did forget it` });
        }
        ctx.out.result({ ok: true, node: node.key, id: node.id, nodes: remaining.length, ms: r.ms },
            `forgot ${node.key} (${node.id.slice(0, 8)}) on ${remaining.length} node(s) in ${fmtDuration(r.ms)}`);
        return 0;
    } finally {
        await pool.close();
    }
}
