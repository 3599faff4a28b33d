/**
 * The backup layout and its manifests (contract: /work/notes/backup-layout.md,
 * shared with monitoring and the node backup script `components/bootstrap/backup.sh`).
 * Pure: no I/O.
 *
 *   <root>/<clusterName>/<backupId>/shard-<n>.rdb    the RDB file as the node wrote it
 *   <root>/<clusterName>/<backupId>/shard-<n>.json   shard manifest, written only after the .rdb upload succeeded
 *   <root>/<clusterName>/<backupId>/backup.json      written last (last shard to finish, or the tool): the backup is complete
 *   <root>/<clusterName>/<backupId>/verified.json    written by `backup verify` on success
 *   <root>/<clusterName>/<backupId>/shard-<n>.claim           who backs the shard up (created only if absent)
 *   <root>/<clusterName>/<backupId>/shard-<n>.takeover.claim  who took over a stale claim (created only if absent; once)
 */
import { UsageError } from "../errors";

export const MANIFEST_VERSION = 1;
export const BACKUP_MANIFEST = "backup.json";
export const VERIFIED_MANIFEST = "verified.json";

/** `YYYYMMDDTHHMMSSZ`: the UTC time of the schedule slot (or of the tool's run). */
export const BACKUP_ID_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

export interface ShardManifest {
    version: 1;
    backupId: string;
    clusterName: string;
    shard: number;
    nodeName: string;
    nodeId: string;
    role: "replica" | "master";
    /** Inclusive ranges owned by the shard's master when the backup started. */
    slots: [number, number][];
    /** DBSIZE at BGSAVE time (keys in db 0). */
    keys: number;
    engine: "redis" | "valkey";
    engineVersion: string;
    rdbVersion: number;
    bytes: number;
    sha256: string;
    startedAt: string;
    endedAt: string;
}

export interface BackupShardEntry {
    shard: number;
    rdb: string;
    manifest: string;
    keys: number;
    bytes: number;
    sha256: string;
}

export interface BackupManifest {
    version: 1;
    backupId: string;
    clusterName: string;
    createdAt: string;
    completedAt: string;
    shards: BackupShardEntry[];
    totalKeys: number;
    totalBytes: number;
}

export interface VerifiedShard {
    shard: number;
    keysExpected: number;
    keysRestored: number;
    digestOk: boolean;
}

export interface VerifiedManifest {
    version: 1;
    backupId: string;
    verifiedAt: string;
    ok: boolean;
    durationMs: number;
    keys: number;
    shards: VerifiedShard[];
}

/** The backup id of a time: its UTC second, `20261201T030000Z`. */
export function backupIdOf(date: Date): string {
    return date.toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
}

/** The time a backup id names; undefined when it is not of the form `YYYYMMDDTHHMMSSZ`. */
export function backupIdTime(id: string): Date | undefined {
    const m = BACKUP_ID_RE.exec(id);
    if (!m) return undefined;
    const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
    return backupIdOf(d) === id ? d : undefined;
}

/**
 * The id of a scheduled run: the minute its timer fired, floored. Every node of a
 * cluster fires within a second of the slot (AccuracySec=1s, no randomized delay,
 * clocks synced by the Amazon Time Sync Service), so they all derive the same id;
 * the node script does the same with `date -u +%Y%m%dT%H%M00Z`.
 */
export function scheduledBackupId(firedAt: Date): string {
    const d = new Date(firedAt.getTime());
    d.setUTCSeconds(0, 0);
    return backupIdOf(d);
}

export const shardRdbName = (shard: number) => `shard-${shard}.rdb`;
/** Claim file names: generation 1 is the first claim, generation 2 the one takeover of a stale claim. */
export const shardClaimName = (shard: number, generation: 1 | 2) => (generation === 1 ? `shard-${shard}.claim` : `shard-${shard}.takeover.claim`);
export const CLAIM_NAME_RE = /^shard-(\d+)\.(takeover\.)?claim$/;
export const shardManifestName = (shard: number) => `shard-${shard}.json`;

/** Key of a backup's folder below the root: `<clusterName>/<backupId>`. */
export function backupKey(clusterName: string, backupId: string): string {
    return `${clusterName}/${backupId}`;
}

/** Keys (below the root) of everything one backup holds. */
export function backupPaths(clusterName: string, backupId: string) {
    const dir = backupKey(clusterName, backupId);
    return {
        dir,
        rdb: (shard: number) => `${dir}/${shardRdbName(shard)}`,
        shardManifest: (shard: number) => `${dir}/${shardManifestName(shard)}`,
        claim: (shard: number, generation: 1 | 2) => `${dir}/${shardClaimName(shard, generation)}`,
        backup: `${dir}/${BACKUP_MANIFEST}`,
        verified: `${dir}/${VERIFIED_MANIFEST}`,
    };
}

/**
 * `shard-<n>.claim` / `shard-<n>.takeover.claim`: the node (or tool run) that backs a
 * shard up. Created only where none exists (S3 `If-None-Match: *`, a directory's
 * exclusive create); the holder rewrites its own claim to push `expiresAt` while it
 * works (renewal), and sets `failed` when it gives up. A claim whose `expiresAt` has
 * passed without a shard manifest is stale: one other node may take it over (generation 2).
 */
export interface ShardClaim {
    version: 1;
    backupId: string;
    clusterName: string;
    shard: number;
    generation: 1 | 2;
    /** Topology name of the claimer (`tool` for the cluster tool's own run). */
    nodeName: string;
    nodeId: string;
    /** `host:port` of the node that saves. */
    address: string;
    role: "replica" | "master";
    /** Random per run: tells two claims by the same node apart. */
    token: string;
    /** Why this node: the rule, a fallback after the claim deadline, or a takeover. */
    reason: string;
    claimedAt: string;
    renewedAt: string;
    expiresAt: string;
    /** Set by a holder that gave up: why. */
    failed?: string;
}

export function parseClaim(text: string, source: string): ShardClaim {
    const doc = parseJson(text, source);
    const c = checker(doc);
    c.version();
    c.str("backupId", BACKUP_ID_RE, "a backup id YYYYMMDDTHHMMSSZ");
    c.str("clusterName");
    c.int("shard");
    c.oneOf("generation", [1, 2]);
    c.str("nodeName");
    c.str("nodeId");
    c.str("address");
    c.oneOf("role", ["replica", "master"]);
    c.str("token");
    c.str("reason");
    c.time("claimedAt");
    c.time("renewedAt");
    c.time("expiresAt");
    if (doc.failed !== undefined && typeof doc.failed !== "string") c.problems.push(`failed must be a string when present (got ${JSON.stringify(doc.failed)})`);
    if (c.problems.length) throw new ManifestError(source, c.problems);
    return doc as unknown as ShardClaim;
}

/** Thrown for a manifest that does not follow the contract; names the file and every problem. */
export class ManifestError extends Error {
    constructor(readonly source: string, readonly problems: string[]) {
        super(`${source} is not a valid manifest:\n${problems.map((p) => ` - ${p}`).join("\n")}`);
        this.name = "ManifestError";
    }
}

function parseJson(text: string, source: string): Record<string, unknown> {
    let doc: unknown;
    try {
        doc = JSON.parse(text);
    } catch (e) {
        throw new ManifestError(source, [`not JSON (${(e as Error).message})`]);
    }
    if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new ManifestError(source, ["not a JSON object"]);
    return doc as Record<string, unknown>;
}

function checker(doc: Record<string, unknown>, at = "") {
    const problems: string[] = [];
    const show = (v: unknown) => JSON.stringify(v);
    return {
        problems,
        int(k: string, min = 0) {
            const v = doc[k];
            if (!Number.isInteger(v) || (v as number) < min) problems.push(`${at}${k} must be an integer ≥ ${min} (got ${show(v)})`);
        },
        str(k: string, re?: RegExp, what?: string) {
            const v = doc[k];
            if (typeof v !== "string" || v === "" || (re && !re.test(v))) problems.push(`${at}${k} must be ${what ?? "a non-empty string"} (got ${show(v)})`);
        },
        time(k: string) {
            const v = doc[k];
            if (typeof v !== "string" || Number.isNaN(Date.parse(v))) problems.push(`${at}${k} must be an ISO-8601 time (got ${show(v)})`);
        },
        oneOf(k: string, allowed: unknown[]) {
            if (!allowed.includes(doc[k])) problems.push(`${at}${k} must be one of ${allowed.map(show).join(", ")} (got ${show(doc[k])})`);
        },
        version() {
            if (doc.version !== MANIFEST_VERSION) problems.push(`${at}version must be ${MANIFEST_VERSION} (got ${show(doc.version)}); a newer tool wrote it?`);
        },
    };
}

const SHA256_RE = /^[0-9a-f]{64}$/;

export function parseShardManifest(text: string, source: string): ShardManifest {
    const doc = parseJson(text, source);
    const c = checker(doc);
    c.version();
    c.str("backupId", BACKUP_ID_RE, "a backup id YYYYMMDDTHHMMSSZ");
    c.str("clusterName");
    c.int("shard");
    c.str("nodeName");
    c.str("nodeId", /^[0-9a-f]{40}$/, "a 40-hex node id");
    c.oneOf("role", ["replica", "master"]);
    const slots = doc.slots;
    if (!Array.isArray(slots) || !slots.every((r) => Array.isArray(r) && r.length === 2 && r.every((n) => Number.isInteger(n) && n >= 0 && n < 16384) && r[0] <= r[1])) {
        c.problems.push(`slots must be a list of inclusive [from, to] ranges within 0..16383 (got ${JSON.stringify(slots)})`);
    }
    c.int("keys");
    c.oneOf("engine", ["redis", "valkey"]);
    c.str("engineVersion");
    c.int("rdbVersion", 1);
    c.int("bytes", 1);
    c.str("sha256", SHA256_RE, "a SHA-256 in lowercase hex");
    c.time("startedAt");
    c.time("endedAt");
    if (c.problems.length) throw new ManifestError(source, c.problems);
    return doc as unknown as ShardManifest;
}

export function parseBackupManifest(text: string, source: string): BackupManifest {
    const doc = parseJson(text, source);
    const c = checker(doc);
    c.version();
    c.str("backupId", BACKUP_ID_RE, "a backup id YYYYMMDDTHHMMSSZ");
    c.str("clusterName");
    c.time("createdAt");
    c.time("completedAt");
    c.int("totalKeys");
    c.int("totalBytes");
    const shards = doc.shards;
    if (!Array.isArray(shards) || shards.length === 0) {
        c.problems.push(`shards must be a non-empty list (got ${JSON.stringify(shards)})`);
    } else {
        shards.forEach((s, i) => {
            const sc = checker((s ?? {}) as Record<string, unknown>, `shards[${i}].`);
            sc.int("shard");
            sc.str("rdb");
            sc.str("manifest");
            sc.int("keys");
            sc.int("bytes", 1);
            sc.str("sha256", SHA256_RE, "a SHA-256 in lowercase hex");
            c.problems.push(...sc.problems);
        });
        const ids = shards.map((s) => (s as BackupShardEntry).shard);
        if (new Set(ids).size !== ids.length) c.problems.push(`shards lists a shard more than once (${ids.join(", ")})`);
        if (c.problems.length === 0) {
            const keys = shards.reduce((a, s) => a + (s as BackupShardEntry).keys, 0);
            const bytes = shards.reduce((a, s) => a + (s as BackupShardEntry).bytes, 0);
            if (keys !== doc.totalKeys) c.problems.push(`totalKeys is ${doc.totalKeys} but the shards add up to ${keys}`);
            if (bytes !== doc.totalBytes) c.problems.push(`totalBytes is ${doc.totalBytes} but the shards add up to ${bytes}`);
        }
    }
    if (c.problems.length) throw new ManifestError(source, c.problems);
    return doc as unknown as BackupManifest;
}

export function parseVerifiedManifest(text: string, source: string): VerifiedManifest {
    const doc = parseJson(text, source);
    const c = checker(doc);
    c.version();
    c.str("backupId", BACKUP_ID_RE, "a backup id YYYYMMDDTHHMMSSZ");
    c.time("verifiedAt");
    if (typeof doc.ok !== "boolean") c.problems.push(`ok must be true or false (got ${JSON.stringify(doc.ok)})`);
    c.int("durationMs");
    c.int("keys");
    if (!Array.isArray(doc.shards)) c.problems.push(`shards must be a list`);
    if (c.problems.length) throw new ManifestError(source, c.problems);
    return doc as unknown as VerifiedManifest;
}

/**
 * backup.json from the shard manifests of one backup. Refuses manifests of
 * another backup or cluster, a shard twice, or a shard missing from 0..n-1.
 */
export function buildBackupManifest(shards: ShardManifest[], expectedShards: number, completedAt: Date): BackupManifest {
    if (shards.length === 0) throw new ManifestError("backup.json", ["no shard manifest"]);
    const { backupId, clusterName } = shards[0];
    const problems: string[] = [];
    for (const s of shards) {
        if (s.backupId !== backupId || s.clusterName !== clusterName) problems.push(`shard ${s.shard} belongs to ${s.clusterName}/${s.backupId}, not ${clusterName}/${backupId}`);
    }
    const sorted = [...shards].sort((a, b) => a.shard - b.shard);
    for (let i = 0; i < expectedShards; i++) {
        if (!sorted.some((s) => s.shard === i)) problems.push(`shard ${i} has no manifest`);
    }
    if (new Set(sorted.map((s) => s.shard)).size !== sorted.length) problems.push("a shard has more than one manifest");
    if (problems.length) throw new ManifestError(`${clusterName}/${backupId}/backup.json`, problems);
    const createdAt = sorted.map((s) => s.startedAt).sort()[0];
    return {
        version: 1,
        backupId,
        clusterName,
        createdAt,
        completedAt: completedAt.toISOString(),
        shards: sorted.map((s) => ({ shard: s.shard, rdb: shardRdbName(s.shard), manifest: shardManifestName(s.shard), keys: s.keys, bytes: s.bytes, sha256: s.sha256 })),
        totalKeys: sorted.reduce((a, s) => a + s.keys, 0),
        totalBytes: sorted.reduce((a, s) => a + s.bytes, 0),
    };
}

/** Where a backup root points: a directory, or `s3://bucket/prefix`. */
export type BackupRoot = { kind: "dir"; path: string } | { kind: "s3"; bucket: string; prefix: string };

/** Parses `--to`/`--from`: `s3://bucket[/prefix]` or a directory path. */
export function parseBackupRoot(spec: string): BackupRoot {
    const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(spec);
    if (spec.startsWith("s3://")) {
        if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1])) {
            throw new UsageError(`"${spec}" is not an S3 location: expected s3://bucket/prefix with a valid bucket name`);
        }
        return { kind: "s3", bucket: m[1], prefix: m[2].replace(/\/+$/, "") };
    }
    if (spec === "") throw new UsageError("a backup location is required: a directory or s3://bucket/prefix");
    return { kind: "dir", path: spec };
}
