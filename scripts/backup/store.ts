/**
 * Where backups live: a directory (`--to DIR`, local mode) or S3 (`s3://bucket/prefix`,
 * with `--s3-endpoint URL` for any S3-compatible store). Keys are relative to the
 * root and use `/` (the layout in manifest.ts). Both implementations stream: an RDB
 * never has to fit in memory, and a read from S3 never touches the disk.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { link, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StepError } from "../errors";
import { BackupRoot, parseBackupRoot } from "./manifest";

export interface StoredObject {
    /** Key relative to the root, `/`-separated. */
    key: string;
    size: number;
}

export interface BackupStore {
    /** Printable location of the root (`/var/backups/redis`, `s3://bucket/prefix`). */
    readonly location: string;
    /** Every object below `prefix` (recursively), sorted by key. */
    list(prefix: string): Promise<StoredObject[]>;
    /** A stream of the object's bytes; rejects naming the location when it does not exist. */
    read(key: string): Promise<Readable>;
    /** The object as text, or undefined when it does not exist. */
    readText(key: string): Promise<string | undefined>;
    /**
     * Writes an object. Readers never see a half-written object: the directory store
     * writes a temporary file and renames it, S3 makes an object visible only once
     * its (multipart) upload completed.
     */
    write(key: string, body: Readable | Buffer | string): Promise<void>;
    /**
     * Creates a small object only if none exists at `key`; false when one does. The
     * directory store is exclusive (a hard link fails with EEXIST). S3 sends
     * `If-None-Match: *`, which Amazon S3 honours (since August 2024) and some
     * S3-compatible stores ignore (s3rver 3.7 does: it then overwrites and returns
     * true); callers read the object back to find out who won (claim.ts).
     */
    create(key: string, body: string): Promise<boolean>;
    /**
     * Whether create() alone decides between two creators. True for a directory; false for
     * S3, where a store may ignore If-None-Match and a node with an older aws CLI writes
     * claims by look-then-put: claim.ts then reads its claim back after a settle delay.
     */
    readonly createIsExclusive: boolean;
    /** Size of an object, or undefined when it does not exist. */
    size(key: string): Promise<number | undefined>;
}

export interface StoreOptions {
    /** S3-compatible endpoint (MinIO, s3rver, Ceph ...): path-style addressing, no KMS header. */
    s3Endpoint?: string;
    /** KMS key (id or ARN) for server-side encryption. @default the bucket's default encryption (the stack sets aws:kms with the cluster key) */
    kmsKeyId?: string;
    /** @default AWS_REGION, AWS_DEFAULT_REGION, else us-east-1 */
    region?: string;
    /** Multipart part size. @default 16 MiB */
    partSizeBytes?: number;
    /** Parts uploaded in parallel. @default 4 */
    queueSize?: number;
}

/** A store for `--to`/`--from`. */
export function openStore(spec: string | BackupRoot, opts: StoreOptions = {}): BackupStore {
    const root = typeof spec === "string" ? parseBackupRoot(spec) : spec;
    return root.kind === "dir" ? new DirectoryStore(root.path) : new S3Store(root.bucket, root.prefix, opts);
}

export class NotFoundError extends Error {
    constructor(readonly location: string) {
        super(`${location}: no such object`);
        this.name = "NotFoundError";
    }
}

function checkKey(key: string): string {
    if (key.startsWith("/") || key.split("/").some((p) => p === ".." || p === ".")) throw new Error(`invalid backup key "${key}"`);
    return key;
}

export class DirectoryStore implements BackupStore {
    readonly root: string;
    readonly createIsExclusive = true;
    constructor(root: string) {
        this.root = resolve(root);
    }

    get location(): string {
        return this.root;
    }

    private path(key: string): string {
        return join(this.root, ...checkKey(key).split("/"));
    }

    async list(prefix: string): Promise<StoredObject[]> {
        const trimmed = prefix.replace(/\/+$/, "");
        const base = trimmed ? this.path(trimmed) : this.root;
        const out: StoredObject[] = [];
        const walk = async (dir: string): Promise<void> => {
            let entries;
            try {
                entries = await readdir(dir, { withFileTypes: true });
            } catch (e) {
                if ((e as NodeJS.ErrnoException).code === "ENOENT" || (e as NodeJS.ErrnoException).code === "ENOTDIR") return;
                throw e;
            }
            for (const e of entries) {
                const p = join(dir, e.name);
                if (e.isDirectory()) await walk(p);
                // Temporary files of an unfinished write are not objects.
                else if (e.isFile() && !e.name.includes(".tmp-")) out.push({ key: relative(this.root, p).split(sep).join("/"), size: (await stat(p)).size });
            }
        };
        await walk(base);
        return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    }

    async read(key: string): Promise<Readable> {
        const p = this.path(key);
        try {
            await stat(p);
        } catch {
            throw new NotFoundError(p);
        }
        return createReadStream(p, { highWaterMark: 1 << 20 });
    }

    async readText(key: string): Promise<string | undefined> {
        try {
            return await readFile(this.path(key), "utf8");
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
            throw e;
        }
    }

    async write(key: string, body: Readable | Buffer | string): Promise<void> {
        const p = this.path(key);
        await mkdir(dirname(p), { recursive: true });
        // Unique per write, not per process and millisecond: two runs in one process (or two writers of
        // backup.json in the same millisecond) must not rename each other's file away.
        const tmp = `${p}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
        try {
            const src = typeof body === "string" || Buffer.isBuffer(body) ? Readable.from([Buffer.from(body)]) : body;
            await pipeline(src, createWriteStream(tmp));
            await rename(tmp, p);
        } catch (e) {
            await rm(tmp, { force: true });
            throw e;
        }
    }

    async create(key: string, body: string): Promise<boolean> {
        const p = this.path(key);
        await mkdir(dirname(p), { recursive: true });
        // Written aside, then hard-linked into place: link(2) fails if the name exists, so
        // exactly one creator wins, and no reader ever sees a half-written object (an
        // open(..., "wx") would be as exclusive but visible before its bytes are).
        const tmp = `${p}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
        try {
            await writeFile(tmp, body, { flag: "wx" });
            await link(tmp, p);
            return true;
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
            throw e;
        } finally {
            await rm(tmp, { force: true });
        }
    }

    async size(key: string): Promise<number | undefined> {
        try {
            return (await stat(this.path(key))).size;
        } catch {
            return undefined;
        }
    }
}

/** An S3 failure as an error for people: what, where, and what to check. */
function s3Error(op: string, where: string, e: unknown): StepError {
    return new StepError({
        op: "s3", step: op, node: where, cause: e,
        resume: "check the AWS credentials (AWS_PROFILE, AWS_REGION), the bucket and prefix, and --s3-endpoint for an S3-compatible store; then run the command again",
    });
}

export class S3Store implements BackupStore {
    readonly createIsExclusive = false;
    private clientP?: Promise<import("@aws-sdk/client-s3").S3Client>;
    constructor(readonly bucket: string, readonly prefix: string, readonly opts: StoreOptions = {}) {}

    get location(): string {
        return `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ""}`;
    }

    private fullKey(key: string): string {
        checkKey(key);
        return this.prefix ? `${this.prefix}/${key}` : key;
    }

    // Lazy: the SDK costs ~150 ms to load, and directory backups never need it.
    private client() {
        this.clientP ??= import("@aws-sdk/client-s3").then(({ S3Client }) => new S3Client({
            region: this.opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1",
            ...(this.opts.s3Endpoint ? { endpoint: this.opts.s3Endpoint, forcePathStyle: true } : {}),
        }));
        return this.clientP;
    }

    private where(key: string): string {
        return `s3://${this.bucket}/${this.fullKey(key)}`;
    }

    async list(prefix: string): Promise<StoredObject[]> {
        const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
        const s3 = await this.client();
        const full = this.fullKey(prefix);
        const out: StoredObject[] = [];
        let token: string | undefined;
        do {
            let r;
            try {
                r = await s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: full, ContinuationToken: token }));
            } catch (e) {
                throw s3Error("list", `s3://${this.bucket}/${full}`, e);
            }
            for (const o of r.Contents ?? []) {
                const rel = this.prefix ? o.Key!.slice(this.prefix.length + 1) : o.Key!;
                out.push({ key: rel, size: o.Size ?? 0 });
            }
            token = r.IsTruncated ? r.NextContinuationToken : undefined;
        } while (token);
        return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    }

    async read(key: string): Promise<Readable> {
        const { GetObjectCommand } = await import("@aws-sdk/client-s3");
        const s3 = await this.client();
        try {
            const r = await s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
            return r.Body as Readable;
        } catch (e) {
            if ((e as { name?: string }).name === "NoSuchKey") throw new NotFoundError(this.where(key));
            throw s3Error("get", this.where(key), e);
        }
    }

    async readText(key: string): Promise<string | undefined> {
        let body: Readable;
        try {
            body = await this.read(key);
        } catch (e) {
            if (e instanceof NotFoundError) return undefined;
            throw e;
        }
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(Buffer.from(c));
        return Buffer.concat(chunks).toString("utf8");
    }

    async write(key: string, body: Readable | Buffer | string): Promise<void> {
        const { Upload } = await import("@aws-sdk/lib-storage");
        const s3 = await this.client();
        // Without a key id, the bucket's default encryption applies (the stack's: aws:kms with the cluster key);
        // `aws:kms` alone would pick the account's aws/s3 key instead.
        const sse = this.opts.kmsKeyId ? { ServerSideEncryption: "aws:kms" as const, SSEKMSKeyId: this.opts.kmsKeyId } : {};
        const upload = new Upload({
            client: s3,
            params: { Bucket: this.bucket, Key: this.fullKey(key), Body: body, ...sse },
            partSize: this.opts.partSizeBytes ?? 16 * 1024 * 1024,
            queueSize: this.opts.queueSize ?? 4,
            // A failed multipart upload is aborted, so nothing half-written is left (the bucket's lifecycle also aborts after 7 days).
            leavePartsOnError: false,
        });
        try {
            await upload.done();
        } catch (e) {
            throw s3Error("upload", this.where(key), new Error(`upload to ${this.where(key)} failed: ${(e as Error).message}`));
        }
    }

    async create(key: string, body: string): Promise<boolean> {
        const { PutObjectCommand } = await import("@aws-sdk/client-s3");
        const s3 = await this.client();
        const sse = this.opts.kmsKeyId ? { ServerSideEncryption: "aws:kms" as const, SSEKMSKeyId: this.opts.kmsKeyId } : {};
        for (let attempt = 1; ; attempt++) {
            try {
                await s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key), Body: body, IfNoneMatch: "*", ...sse }));
                return true;
            } catch (e) {
                const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
                const status = err.$metadata?.httpStatusCode;
                if (status === 412 || err.name === "PreconditionFailed") return false;
                // "If a conflicting operation occurs during the upload S3 returns a 409
                // ConditionalRequestConflict response. On a 409 failure you should retry" (PutObject, IfNoneMatch).
                if ((status === 409 || err.name === "ConditionalRequestConflict") && attempt < 5) {
                    await new Promise((r) => setTimeout(r, 100 * attempt));
                    continue;
                }
                throw s3Error("create", this.where(key), e);
            }
        }
    }

    async size(key: string): Promise<number | undefined> {
        const { HeadObjectCommand } = await import("@aws-sdk/client-s3");
        const s3 = await this.client();
        try {
            const r = await s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
            return r.ContentLength;
        } catch (e) {
            const name = (e as { name?: string }).name;
            if (name === "NotFound" || name === "NoSuchKey") return undefined;
            throw s3Error("head", this.where(key), e);
        }
    }
}
