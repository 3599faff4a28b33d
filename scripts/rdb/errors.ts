/**
 * The one error the RDB library throws for bad input: it names the source (file, S3 object,
 * "DUMP payload"), the byte offset where reading stopped, and what was expected there.
 * Callers (restore, backup verify) wrap it with the shard and step; nothing in this library
 * returns a partial result after one.
 */
export class RdbFormatError extends Error {
    readonly source: string;
    readonly offset: number;
    readonly expected: string;
    constructor(source: string, offset: number, expected: string, detail?: string) {
        super(`${source}: invalid RDB at byte ${offset}: expected ${expected}${detail ? ` (${detail})` : ""}`);
        this.name = "RdbFormatError";
        this.source = source;
        this.offset = offset;
        this.expected = expected;
    }
}

/**
 * Valid RDB content this library will not carry (a module type, a newer RDB version, module AUX
 * data): refused by name so the operator knows what to change, not reported as corruption.
 */
export class RdbUnsupportedError extends Error {
    readonly source: string;
    readonly offset: number;
    constructor(source: string, offset: number, message: string) {
        super(`${source}: ${message} (at byte ${offset})`);
        this.name = "RdbUnsupportedError";
        this.source = source;
        this.offset = offset;
    }
}
