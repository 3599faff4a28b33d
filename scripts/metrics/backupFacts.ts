/**
 * The backup facts the collector turns into LastBackupAgeSeconds and
 * LastVerifiedRestoreAgeSeconds, read from a backup store through the backup
 * catalog's listing (scripts/backup/catalog.ts): the newest complete backup's
 * backup.json `completedAt`, the newest verified.json with ok=true `verifiedAt`
 * (contract: /work/notes/backup-layout.md). Shared by `metrics`, `status --watch`
 * and the node's publisher (scripts/metrics/node.ts).
 *
 * Never throws: a store that cannot be listed, or holds no complete (or no
 * verified) backup of the cluster, gives warnings and leaves the fact out, so the
 * metric is missing (the alarms treat missing data as missing, not as fine).
 */
import { listBackups } from "../backup/catalog";
import { backupPaths, parseBackupManifest } from "../backup/manifest";
import { BackupStore } from "../backup/store";
import { BackupFacts } from "../plan/metrics";

export interface BackupFactsRead {
    facts: BackupFacts;
    warnings: string[];
    /** The store could not be read (as opposed to: it holds nothing). */
    failed?: boolean;
}

/**
 * Gives up after `timeoutMs` (default 10 s): an S3 endpoint that does not answer must not
 * hold the node's run past its 50 s budget (every node metric would go missing, and
 * missing ClusterStateOk pages) nor a Prometheus scrape.
 */
export async function readBackupFacts(store: BackupStore, clusterName: string, opts: { timeoutMs?: number } = {}): Promise<BackupFactsRead> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<BackupFactsRead>((resolve) => {
        timer = setTimeout(() => resolve({
            facts: {}, failed: true,
            warnings: [`cannot read the backups in ${store.location}/${clusterName}: no answer within ${timeoutMs} ms; the backup age metrics are not published`],
        }), timeoutMs);
        timer.unref();
    });
    try {
        return await Promise.race([readFacts(store, clusterName), timedOut]);
    } finally {
        clearTimeout(timer);
    }
}

async function readFacts(store: BackupStore, clusterName: string): Promise<BackupFactsRead> {
    const where = `${store.location}/${clusterName}`;
    const warnings: string[] = [];
    const facts: BackupFacts = {};
    try {
        // Checksums are not this reader's business (`backups` hashes them); listing stays a few small reads.
        const list = await listBackups(store, { clusterName, verify: false });
        // Oldest first: the newest complete backup is the last one.
        const complete = list.filter((l) => l.complete);
        const newest = complete[complete.length - 1];
        if (newest) {
            const key = backupPaths(clusterName, newest.backupId).backup;
            const text = await store.readText(key);
            if (text === undefined) warnings.push(`${store.location}/${key} disappeared while reading: LastBackupAgeSeconds not published this time`);
            else facts.lastCompletedAt = parseBackupManifest(text, `${store.location}/${key}`).completedAt;
        } else {
            warnings.push(`${where}: no complete backup (${list.length} incomplete): LastBackupAgeSeconds not published`);
        }
        const verified = list.filter((l) => l.verified?.ok).map((l) => l.verified!.verifiedAt).sort();
        if (verified.length) facts.lastVerifiedAt = verified[verified.length - 1];
        else if (list.length) warnings.push(`${where}: no successful \`backup verify\` (verified.json with ok): LastVerifiedRestoreAgeSeconds not published`);
    } catch (e) {
        warnings.push(`cannot read the backups in ${where}: ${(e as Error).message.split("\n")[0]}; the backup age metrics are not published`);
        return { facts: {}, warnings, failed: true };
    }
    return { facts, warnings };
}

/**
 * Reads the facts at most once per `everyMs` (a Prometheus scrape every 15 s must not
 * list S3 every 15 s); warnings are returned with the read that produced them only.
 */
export function cachedBackupFacts(read: () => Promise<BackupFactsRead>, everyMs: number, now: () => number = Date.now): () => Promise<BackupFactsRead & { fresh: boolean }> {
    let last: { at: number; value: BackupFactsRead } | undefined;
    let pending: Promise<BackupFactsRead> | undefined;
    return async () => {
        if (last && now() - last.at < everyMs) return { facts: last.value.facts, warnings: [], fresh: false };
        // Concurrent scrapes share one read.
        pending ??= read().finally(() => { pending = undefined; });
        const value = await pending;
        last = { at: now(), value };
        return { ...value, fresh: true };
    };
}
