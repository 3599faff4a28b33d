import { join } from "node:path";

/** The benchmarks' command line: `--name value` options and bare `--flag`s, nothing more. */
export const args = process.argv.slice(2);

/** The value after `--name`, or `def` when it is absent. */
export function opt(name: string, def: string): string {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : def;
}

/**
 * Our tool's command line up to the command name, by `--entry`: bin (default) is
 * the package's installed entry point (`scripts/bin/redis-cluster.js`: tsx's require
 * hook), tsx is `node --import tsx scripts/cli.ts` (tsx's ESM loader as well, which
 * costs about 0.3 s more start-up on the 2-core bench machine).
 */
export function oursArgv(root: string, entry = opt("entry", "bin")): string[] {
    if (entry === "bin") return [join(root, "scripts/bin/redis-cluster.js")];
    if (entry === "tsx") return ["--import", "tsx", join(root, "scripts/cli.ts")];
    throw new Error(`--entry ${entry}: use bin or tsx`);
}
