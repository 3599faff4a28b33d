/**
 * `flushall`: delete every key on every master. Only with the cluster name typed
 * at a prompt (on a terminal) or given as `--confirm <clusterName>`; anything
 * else is refused before a single command is sent to a node.
 */
import type { CommandContext, CommonOptions } from "./context";
import { RefusedError } from "../errors";
import { ask } from "./prompt";
import { openSession, Session } from "./session";

export interface FlushallOptions extends CommonOptions {
    confirm?: string;
}

export async function run(opts: FlushallOptions, ctx: CommandContext): Promise<number> {
    // Confirmed (and every master reachable) before anything changes: the lease and the
    // repair of open slots come after, so a refused flushall leaves the cluster as it was.
    let total = 0;
    const confirm = async ({ target, pool, view }: { target: Session["target"]; pool: Session["pool"]; view: Session["view"] }) => {
        const name = target.topology.clusterName;
        const masters = view.reachable().filter((v) => v.myself?.role === "master" && v.myself.slots.length > 0);
        const lost = [...view.knownNodes().values()].filter((n) => n.role === "master" && n.slots.length > 0 && !masters.some((m) => m.myself!.id === n.id));
        if (lost.length) {
            throw new RefusedError(`flushall: master(s) ${lost.map((n) => n.key).join(", ")} cannot be reached; nothing was deleted (a partial flush would leave some keys behind). Bring them back or fail over first.`);
        }
        if (opts.confirm !== undefined) {
            if (opts.confirm !== name) throw new RefusedError(`flushall refused: --confirm "${opts.confirm}" does not match the cluster name "${name}"; nothing was deleted`);
        }
        // Counted before the lease key exists, so the report counts the application's keys only.
        const sizes = await Promise.all(masters.map(async (v) => Number(await pool.call(v.key, "DBSIZE"))));
        total = sizes.reduce((a, b) => a + b, 0);
        if (opts.confirm !== undefined) return;
        const typed = await ask(`This deletes all ${total} key(s) on the ${masters.length} master(s) of cluster "${name}" (${target.source}).\nType the cluster name to confirm: `);
        if (typed === undefined) throw new RefusedError(`flushall refused: confirm with --confirm ${name} (no terminal to ask on); nothing was deleted`);
        if (typed !== name) throw new RefusedError(`flushall refused: "${typed}" is not the cluster name "${name}"; nothing was deleted`);
    };
    const { target, pool, view } = await openSession(opts, ctx, "flushall", [], { beforeChanges: confirm });
    try {
        const name = target.topology.clusterName;
        const masters = view.reachable().filter((v) => v.myself?.role === "master" && v.myself.slots.length > 0);
        // Replicas follow their masters through replication.
        const results = await Promise.all(masters.map(async (v) => {
            try {
                await pool.call(v.key, "FLUSHALL");
                return undefined;
            } catch (e) {
                return `${v.key}: ${(e as Error).message}`;
            }
        }));
        const failed = results.filter(Boolean) as string[];
        if (failed.length) throw new RefusedError(`flushall: ${failed.length} master(s) refused; the others are empty now:\n  ${failed.join("\n  ")}\n  Rerun flushall once the cause is fixed.`);
        ctx.out.result({ ok: true, cluster: name, masters: masters.length, keysDeleted: total }, `flushed cluster "${name}": ${total} key(s) deleted on ${masters.length} master(s)`);
        return 0;
    } finally {
        await pool.close();
    }
}
