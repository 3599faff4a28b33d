/**
 * An Output over in-memory streams, for running a command in-process: what it
 * prints on stdout and stderr is kept as text instead of reaching the terminal.
 */
import { PassThrough } from "node:stream";
import { createOutput, Output } from "../../scripts/output";

export function capturedOutput(opts: { json?: boolean } = {}): { out: Output; stdout(): string; stderr(): string } {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = "";
    let err = "";
    stdout.on("data", (d) => (out += d));
    stderr.on("data", (d) => (err += d));
    return { out: createOutput({ json: opts.json, stdout, stderr }), stdout: () => out, stderr: () => err };
}
