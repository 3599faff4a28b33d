/**
 * The tool's error classes, mapped to exit codes in one place (`exitCodeFor`; the
 * table is in docs/design.md and test/unit/errors.test.ts): bad input exits 2, an
 * operation that failed, was refused or timed out exits 1, Ctrl-C exits 130; anything
 * else is a bug (70) and is shown with its stack. No operational failure is a bug.
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

/** A cause in one line or a few: a wait's or an interrupt's own "left behind"/"to continue" give way to the step's. */
function causeText(cause: unknown): string | undefined {
    if (cause === undefined) return undefined;
    if (!(cause instanceof Error)) return String(cause);
    const lines = cause.message.split("\n");
    if (cause.name === "WaitTimeoutError" || cause.name === "InterruptedError") {
        return lines.filter((l) => !/^ {2}(left behind|to continue): /.test(l)).map((l) => l.replace(/^ {2}last seen: /, "; last seen: ")).join("");
    }
    return cause.message;
}

/** A cluster operation failed part-way; the message names node, step, state left and how to resume. */
export class StepError extends Error {
    readonly info: StepErrorInfo;
    constructor(info: StepErrorInfo) {
        const cause = causeText(info.cause);
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

/** What a wait or an interrupted operation leaves to the user: whose, what is left behind, how to go on. */
export interface LeftBehind {
    /** The command, e.g. "scale". */
    op?: string;
    /** What is left behind, e.g. "slots moved; removed nodes still known to 2 nodes". */
    state?: string;
    /** How to continue. */
    resume?: string;
}

const DEFAULT_RESUME = "rerun the command: it reads the live state first and goes on from there";

function leftBehindLines(info: LeftBehind): string[] {
    return [info.state ? `left behind: ${info.state}` : "", `to continue: ${info.resume ?? DEFAULT_RESUME}`].filter(Boolean);
}

export interface WaitTimeoutInfo extends LeftBehind {
    /** What was awaited, e.g. "every node to agree on the new slot map". */
    what: string;
    timeoutMs: number;
    /** The last state seen, e.g. "the nodes do not agree on the owner of slot 12 yet". */
    last?: string;
}

/** A wait for the cluster to converge ran out of time. Exit 1: the cluster may still get there. */
export class WaitTimeoutError extends Error {
    readonly info: WaitTimeoutInfo;
    constructor(info: WaitTimeoutInfo) {
        const secs = info.timeoutMs >= 1000 ? `${Math.round(info.timeoutMs / 100) / 10} s` : `${info.timeoutMs} ms`;
        super([
            `${info.op ? `${info.op}: ` : ""}timed out after ${secs} waiting for ${info.what}`,
            ...(info.last ? [`last seen: ${info.last}`] : []),
            ...leftBehindLines(info),
        ].join("\n  "));
        this.name = "WaitTimeoutError";
        this.info = info;
    }
}

export interface InterruptedInfo extends LeftBehind {
    /** What was under way: a step ("migrate-keys") or a wait ("the wait for every node to agree"). */
    during: string;
    node?: string;
    /** Why it stopped when not Ctrl-C, e.g. the lease was taken over (the signal's reason). */
    reason?: Error;
}

/**
 * An operation stopped at a safe point because its signal fired: Ctrl-C (exit 130, as a
 * shell reports SIGINT), or another cause carried as `reason` (a lost lease: its exit code).
 */
export class InterruptedError extends Error {
    readonly info: InterruptedInfo;
    constructor(info: InterruptedInfo) {
        super([
            `${info.op ? `${info.op}: ` : ""}stopped during ${info.during}${info.node ? ` on ${info.node}` : ""}: ${info.reason ? info.reason.message : "interrupted (Ctrl-C)"}`,
            ...leftBehindLines(info),
        ].join("\n  "));
        this.name = "InterruptedError";
        this.info = info;
    }
}

/** The error for a fired `signal`: its reason when that is one of ours (a lost lease), else Ctrl-C. */
export function interruption(signal: AbortSignal | undefined, info: Omit<InterruptedInfo, "reason">): InterruptedError {
    const reason = signal?.reason;
    return new InterruptedError({ ...info, reason: reason instanceof Error && isExpected(reason) ? reason : undefined });
}

/**
 * A planner could not make a plan from its input (weights that leave no owner, a
 * shape that cannot be placed): a refusal, nothing was changed. Commands that know
 * more context rethrow it as their own RefusedError.
 */
export class PlanError extends RefusedError {
    /** `heading` (e.g. "Cannot plan a rebalance") puts the problems in a list under it. */
    constructor(readonly problems: string[], heading?: string) {
        super(heading ? `${heading}:\n${problems.map((p) => ` - ${p}`).join("\n")}` : problems.join("\n"));
        this.name = "PlanError";
    }
}

/**
 * A node answered a command with an error, or the connection failed mid-command
 * (pool.ts `call`), outside any named step. The message names the node and the command.
 */
export class NodeCommandError extends Error {
    constructor(message: string, readonly node: string, readonly command: string, options?: { cause?: unknown }) {
        super(message, options);
        this.name = "NodeCommandError";
    }
}

/** The causes of an error, itself first: StepError's info.cause and the standard `cause`. */
function causeChain(err: unknown): unknown[] {
    const out: unknown[] = [];
    for (let e: unknown = err; e !== undefined && e !== null && !out.includes(e) && out.length < 10;) {
        out.push(e);
        e = e instanceof StepError ? e.info.cause : e instanceof Error ? (e as Error & { cause?: unknown }).cause : undefined;
    }
    return out;
}

/**
 * The exit code for an error, the one place they are decided:
 *  - 2   ConfigError, UsageError: bad input, nothing was changed
 *  - 130 InterruptedError by Ctrl-C, also when wrapped in a StepError (as a shell reports SIGINT)
 *  - 1   StepError, RefusedError (PlanError), UnreachableError, WaitTimeoutError, NodeCommandError,
 *        a node's error reply (ioredis ReplyError), an InterruptedError for another reason (a lost lease)
 *  - 70  anything else: a bug (EX_SOFTWARE), shown with its stack
 */
export function exitCodeFor(err: unknown): number {
    if (err instanceof ConfigError || err instanceof UsageError) return 2;
    const interrupted = causeChain(err).find((e): e is InterruptedError => e instanceof InterruptedError);
    if (interrupted) return interrupted.info.reason ? exitCodeFor(interrupted.info.reason) : 130;
    if (err instanceof StepError || err instanceof RefusedError || err instanceof UnreachableError || err instanceof WaitTimeoutError
        || err instanceof NodeCommandError) return 1;
    // A node's error reply that reached here without a wrapper (ioredis's ReplyError, by name: no ioredis import here).
    if (err instanceof Error && err.name === "ReplyError") return 1;
    return 70; // EX_SOFTWARE: a bug
}

/** Whether the error is one of ours (print the message only) or a bug (print the stack). */
export function isExpected(err: unknown): boolean {
    return exitCodeFor(err) !== 70;
}

/**
 * What the user reads on stderr when an error ends a command: the message of one of
 * ours; for a node's error that no step named, how to go on; for a bug, the stack.
 */
export function errorReport(err: unknown): string {
    if (!isExpected(err)) return `internal error (a bug, please report it):\n${err instanceof Error ? err.stack ?? err.message : String(err)}\n`;
    const message = (err as Error).message;
    const bare = err instanceof NodeCommandError || (err as Error).name === "ReplyError";
    return `error: ${message}${bare ? `\n  to continue: ${DEFAULT_RESUME} (\`status\` shows the cluster as it is now)` : ""}\n`;
}
