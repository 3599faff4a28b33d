/** The benchmarks' command line: `--name value` options and bare `--flag`s, nothing more. */
export const args = process.argv.slice(2);

/** The value after `--name`, or `def` when it is absent. */
export function opt(name: string, def: string): string {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : def;
}
