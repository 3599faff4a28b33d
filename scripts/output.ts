/**
 * Output conventions: progress and human text on stderr, machine output on stdout.
 * With --json, stdout is NDJSON: one JSON object per line. Commands that report
 * steps print them as events ({"event":"step","step":"migrate-keys","slot":5461,...})
 * and end with their result document on one line; a command without events prints
 * just that line, which is then one JSON document. Never a multi-line document:
 * a reader splits stdout on newlines and parses each line.
 */

export interface Output {
    readonly json: boolean;
    /** Human progress/info line (stderr). Suppressed in --json mode unless `always`. */
    info(line: string): void;
    /** Warning (stderr, always). */
    warn(line: string): void;
    /** NDJSON event on stdout in --json mode; rendered by `human` (if given) on stderr otherwise. */
    event(name: string, fields: Record<string, unknown>, human?: string): void;
    /** Final result: one JSON line on stdout in --json mode (the last line), else the text on stdout. */
    result(doc: unknown, text: string): void;
}

export function createOutput(opts: { json?: boolean; quiet?: boolean; stdout?: NodeJS.WritableStream; stderr?: NodeJS.WritableStream } = {}): Output {
    const stdout = opts.stdout ?? process.stdout;
    const stderr = opts.stderr ?? process.stderr;
    const json = !!opts.json;
    return {
        json,
        info(line) {
            if (!opts.quiet) stderr.write(line + "\n");
        },
        warn(line) {
            stderr.write(`warning: ${line}\n`);
        },
        event(name, fields, human) {
            if (json) stdout.write(JSON.stringify({ event: name, ts: new Date().toISOString(), ...fields }) + "\n");
            else if (human !== undefined && !opts.quiet) stderr.write(human + "\n");
        },
        result(doc, text) {
            if (json) stdout.write(JSON.stringify(doc) + "\n");
            else stdout.write(text.endsWith("\n") ? text : text + "\n");
        },
    };
}

/** Formats a duration in ms as "1.2 s" / "350 ms" / "2 min 5 s". */
export function fmtDuration(ms: number): string {
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
    const m = Math.floor(ms / 60_000);
    return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** Formats bytes as "1.5 GiB". */
export function fmtBytes(n: number): string {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = n;
    while (Math.abs(v) >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
    }
    return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
