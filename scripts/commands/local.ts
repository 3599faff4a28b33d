/**
 * `local [up|down|roll|autoscale]`: local mode (scripts/local/), mounted in cli.ts like
 * every other command, so it shares the wrapper's output, Ctrl-C handling, error
 * messages and exit codes. `npm run local` runs it.
 */
import type { CommandContext } from "./context";
import { UsageError } from "../errors";
import { down, loadLocalConfig, LocalRollOptions, roll, shapeOf, stackDir, stateDirProblem, up } from "../local";
import type { LocalAutoscaleOptions } from "../local/autoscale";

export type LocalCommandOptions = LocalRollOptions & LocalAutoscaleOptions & { args: string[] };

export async function run(opts: LocalCommandOptions, ctx: CommandContext): Promise<number> {
    const action = opts.args[0] ?? "up";
    try {
        if (action === "up") return (await up(opts, ctx.out, ctx.signal)).healthy ? 0 : 1;
        if (action === "down") {
            await down(opts, ctx.out);
            return 0;
        }
        if (action === "roll") return await roll(opts, ctx.out, ctx.signal);
        if (action === "autoscale") {
            const { runLocalAutoscale } = await import("../local/autoscale");
            return await runLocalAutoscale<LocalCommandOptions>(opts, ctx.out, { stackDir, loadLocalConfig, shapeOf, up });
        }
        throw new UsageError(`unknown action "${action}": use up (default), down, roll or autoscale`);
    } catch (e) {
        throw stateDirProblem(e, opts) ?? e;
    }
}
