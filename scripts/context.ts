/**
 * What a command hands every executor besides its arguments: where progress and
 * results go, and the signal that says "stop at the next safe point". Executors
 * (scripts/redis/, scripts/backup/, …) take this and nothing from the command line,
 * so they sit below the commands and the CLI (docs/design.md, layers).
 */
import type { Output } from "./output";

/** What every command, and every executor it calls, gets besides its options. */
export interface CommandContext {
    out: Output;
    /** Set when the user pressed Ctrl-C: long operations stop at a safe point. */
    signal: AbortSignal;
}
