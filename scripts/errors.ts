/**
 * The tool's error classes, mapped to exit codes in one place (`exitCodeFor`).
 * ConfigError/UsageError exit 2, StepError/RefusedError exit 1; anything else is a bug
 * and is shown with its stack.
 */
import { ConfigError } from "../components/config";

export { ConfigError };

/** The command line or an input file is wrong; nothing was changed. */
export class UsageError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "UsageError";
    }
}

/** A precondition check refused to go on; nothing was changed. */
export class RefusedError extends Error {
    readonly node?: string;
    constructor(message: string, opts: { node?: string } = {}) {
        super(message);
        this.name = "RefusedError";
        this.node = opts.node;
    }
}

export interface StepErrorInfo {
    /** The command, e.g. "create", "reshard". */
    op: string;
    /** The step that failed, e.g. "meet", "migrate-keys". */
    step: string;
    /** The node (`host:port` or name) the step was talking to. */
    node?: string;
    slot?: number;
    /** What is left behind, e.g. "slot 5461 still MIGRATING on 10.0.1.10:6379". */
    state?: string;
    /** How to continue, e.g. "run `create` again". */
    resume: string;
    cause?: unknown;
}

/** A cluster operation failed part-way; the message names node, step, state left and how to resume. */
export class StepError extends Error {
    readonly info: StepErrorInfo;
    constructor(info: StepErrorInfo) {
        const cause = info.cause instanceof Error ? info.cause.message : info.cause !== undefined ? String(info.cause) : undefined;
        const parts = [
            `${info.op}: step "${info.step}" failed${info.node ? ` on ${info.node}` : ""}${info.slot !== undefined ? ` (slot ${info.slot})` : ""}`,
            cause ? `cause: ${cause}` : undefined,
            info.state ? `left behind: ${info.state}` : undefined,
            `to continue: ${info.resume}`,
        ].filter(Boolean);
        super(parts.join("\n  "));
        this.name = "StepError";
        this.info = info;
    }
}

/** A node could not be reached (connection refused, timeout, TLS or auth failure at connect). */
export class UnreachableError extends Error {
    constructor(message: string, readonly node: string) {
        super(message);
        this.name = "UnreachableError";
    }
}

/** A wait for the cluster to converge ran out of time, or was interrupted (Ctrl-C). */
export class WaitTimeoutError extends Error {
    constructor(message: string, readonly interrupted = false) {
        super(message);
        this.name = "WaitTimeoutError";
    }
}

export function exitCodeFor(err: unknown): number {
    if (err instanceof ConfigError || err instanceof UsageError) return 2;
    if (err instanceof WaitTimeoutError && err.interrupted) return 130;
    if (err instanceof StepError || err instanceof RefusedError || err instanceof UnreachableError || err instanceof WaitTimeoutError) return 1;
    return 70; // EX_SOFTWARE: a bug
}

/** Whether the error is one of ours (print the message only) or a bug (print the stack). */
export function isExpected(err: unknown): boolean {
    return exitCodeFor(err) !== 70;
}
