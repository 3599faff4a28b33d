/**
 * The contract between `cli.ts` and a command module: the options every command
 * accepts and the shape of its `run`. Here rather than in cli.ts, which loads every
 * command, so that no command imports the entry module.
 */
import type { CommandContext } from "../context";
import type { TargetOptions } from "../inventory";

export type { CommandContext };

/** A command's `run` returns its exit code (0 when omitted). */
export type CommandRun<O> = (opts: O, ctx: CommandContext) => Promise<number | void>;

export interface CommonOptions extends TargetOptions {
    json?: boolean;
    quiet?: boolean;
    /** Replace an expired cluster lease (docs/lease.md). */
    takeOverLease?: boolean;
}
