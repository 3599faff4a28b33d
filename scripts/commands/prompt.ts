/**
 * Questions on the terminal for the commands that confirm before they change or
 * delete something (flushall, restore, scale, roll). Prompts go to stderr, so a
 * `--json` document on stdout stays clean; without a terminal nothing is asked.
 */
import { createInterface } from "node:readline/promises";
import { RefusedError } from "../errors";

/** Asks a question on the terminal (stderr) and returns the answer; undefined when stdin is not a TTY. */
export async function ask(question: string, io: { input?: NodeJS.ReadableStream & { isTTY?: boolean }; output?: NodeJS.WritableStream } = {}): Promise<string | undefined> {
    const input = io.input ?? process.stdin;
    if (!(input as { isTTY?: boolean }).isTTY) return undefined;
    const rl = createInterface({ input, output: io.output ?? process.stderr, terminal: true });
    try {
        return (await rl.question(question)).trim();
    } finally {
        rl.close();
    }
}

/** True when `--yes` was given or the user answered y/yes on a terminal; refuses without a terminal. */
export async function confirmYes(question: string, yes: boolean | undefined, refusal: string): Promise<boolean> {
    if (yes) return true;
    const a = await ask(`${question} [y/N] `);
    if (a === undefined) throw new RefusedError(`${refusal} (no terminal to ask on: pass --yes to confirm)`);
    return /^y(es)?$/i.test(a);
}
