#!/usr/bin/env node
/**
 * The cluster tool: `npm run cluster -- <command> [options]` (bin: redis-cluster).
 *
 * All commands and options are declared here; each action lazily imports
 * `commands/<name>.ts` and calls its `run(options, ctx)`. Exit codes are mapped in
 * one place (scripts/errors.ts, table in docs/design.md): 0 ok, 1 a step failed, a
 * check refused or a wait ran out (or `status` found the cluster unhealthy), 2 bad
 * usage or config, 130 Ctrl-C, 70 a bug (shown with its stack).
 */
import { Command, InvalidArgumentError, Option } from "commander";
import { errorReport, exitCodeFor } from "./errors";
import { createOutput } from "./output";
import type { CommandRun, CommonOptions } from "./commands/context";

function targetOptions(cmd: Command): Command {
    return cmd
        .option("--topology <file>", "topology JSON in the stack-output shape (local: .local/<stack>/topology.json)")
        .option("--stack <name>", "read the topology and admin credentials from this Pulumi stack's outputs")
        .option("--output <name>", "with --stack: the output holding the cluster's outputs, when your program nests them (export const redis = cluster.outputs)")
        .option("--project-dir <dir>", "with --stack: the directory of the Pulumi project that owns the stack (default: this repository)")
        .option("--user <name>", "ACL user (default: from the stack outputs or the local credentials file)")
        .option("--password <password>", "ACL password (prefer the REDISCLI_AUTH environment variable)")
        .option("--tls-ca <file>", "CA certificate (PEM) to verify nodes when the topology has tls: true")
        .option("--nat-map <map>", "reach nodes through tunnels: announced=reachable pairs (10.0.1.10:6379=127.0.0.1:16379,...) or a JSON file")
        .addOption(new Option("--connect-timeout <ms>", "connect timeout per node").argParser(intArg("--connect-timeout", 1)).default(3000))
        .option("--take-over-lease", "changing commands: replace the cluster lease of a run that died (expired; a live lease is never taken over; docs/lease.md)")
        .option("--json", "machine-readable output on stdout (one document, or NDJSON events for long runs)")
        .option("-q, --quiet", "no progress on stderr");
}

/** Where an S3 location named on the command line is served from. */
function s3Options(cmd: Command): Command {
    return cmd
        .option("--s3-endpoint <url>", "S3-compatible endpoint (MinIO, Ceph, s3rver ...): path-style addressing")
        .option("--region <region>", "AWS region of the bucket, and of SSM for backup --stack (default: AWS_REGION)");
}

/** The backups whose ages `metrics` and `status --watch` show (LastBackupAgeSeconds, LastVerifiedRestoreAgeSeconds). */
function backupsFromOptions(cmd: Command, what: string): Command {
    return s3Options(cmd.option("--backups-from <dir|s3://bucket/prefix>", `${what} (with --stack: default s3://<backupBucketName>/backups)`));
}

/**
 * Parser for a numeric flag: rejects NaN, fractions (unless `fraction`), and values
 * outside [min, max] with a usage error (exit 2) naming the flag, the value and what is valid.
 */
export const numArg = (name: string, o: { min: number; max?: number; fraction?: boolean }) => (v: string) => {
    const n = v.trim() === "" ? NaN : Number(v);
    const kind = o.fraction ? "a number" : "a whole number";
    const range = o.max !== undefined ? `from ${o.min} to ${o.max}` : `of at least ${o.min}`;
    if (!Number.isFinite(n) || (!o.fraction && !Number.isInteger(n)) || n < o.min || (o.max !== undefined && n > o.max)) {
        throw new InvalidArgumentError(`${name} must be ${kind} ${range} (got "${v}")`);
    }
    return n;
};
const intArg = (name: string, min = 0) => numArg(name, { min });

function action<O extends CommonOptions>(load: () => Promise<{ run: CommandRun<O> }>) {
    return async (...args: unknown[]) => {
        const cmd = args[args.length - 1] as Command;
        const opts = { ...cmd.opts(), args: cmd.args } as unknown as O;
        const out = createOutput({ json: opts.json, quiet: opts.quiet });
        const ac = new AbortController();
        const onSigint = () => {
            if (ac.signal.aborted) process.exit(130);
            out.warn("interrupt: stopping at the next safe point (Ctrl-C again to quit now; rerun the command to finish)");
            ac.abort();
        };
        process.on("SIGINT", onSigint);
        try {
            const mod = await load();
            const code = (await mod.run(opts, { out, signal: ac.signal })) ?? 0;
            process.exitCode = code;
        } catch (err) {
            process.exitCode = exitCodeFor(err);
            if (opts.json) process.stdout.write(JSON.stringify({ event: "error", error: (err as Error).name, message: (err as Error).message }) + "\n");
            process.stderr.write(errorReport(err));
        } finally {
            process.off("SIGINT", onSigint);
        }
    };
}

export function buildProgram(): Command {
    const program = new Command("redis-cluster")
        .description("Form, inspect, scale and repair a Redis Cluster (on AWS after `pulumi up`, or local with `npm run local`)")
        .showHelpAfterError()
        .configureOutput({ writeErr: (s) => process.stderr.write(s) })
        .exitOverride((err) => {
            // commander's own usage errors: exit 2 like our UsageError
            process.exit(err.exitCode === 0 ? 0 : 2);
        });

    targetOptions(program.command("create"))
        .description("form the cluster: assign slots, join nodes, attach replicas off their master's zone; idempotent and resumable")
        .option("--force", "go on without unreachable nodes (every shard keeps one) and ignore old ids of replaced nodes; never nodes holding keys or another cluster's nodes")
        .option("--dry-run", "print the plan and change nothing")
        .addOption(new Option("--timeout <ms>", "how long to wait for the cluster to converge").argParser(intArg("--timeout", 1)).default(60000))
        .action(action(() => Promise.resolve(require("./commands/create") as typeof import("./commands/create"))));

    backupsFromOptions(targetOptions(program.command("status")), "with --watch: show the backup ages from these backups")
        .description("health per shard and cluster-wide; exit 0 only when healthy")
        .addOption(new Option("--watch [seconds]", "refresh a per-shard table (role, ops/s, memory %, lag, link, fail reports) until Ctrl-C").argParser(intArg("--watch")))
        .action(action(() => Promise.resolve(require("./commands/status") as typeof import("./commands/status"))));

    backupsFromOptions(targetOptions(program.command("metrics")), "backups for LastBackupAgeSeconds and LastVerifiedRestoreAgeSeconds")
        .description("the collector's samples from every node: one snapshot (--format json|prometheus|emf) or a Prometheus endpoint (--serve [host:]port)")
        .option("--format <format>", "json (default), prometheus (text exposition) or emf (CloudWatch embedded metric format, one document per line)")
        .option("--serve <[host:]port>", "serve GET /metrics in the Prometheus text format; every scrape reads every node directly (host defaults to 127.0.0.1)")
        .option("--namespace <name>", "CloudWatch namespace of --format emf (default RedisCluster)")
        .addOption(new Option("--command-timeout <ms>", "per-node command timeout: a node that accepts but does not answer is reported as down after this").argParser(intArg("--command-timeout")).default(5000))
        .addOption(new Option("--backups-every <minutes>", "with --serve: read the backups at most this often").argParser(intArg("--backups-every", 1)).default(15))
        .action(action(() => Promise.resolve(require("./commands/metrics") as typeof import("./commands/metrics"))));

    targetOptions(program.command("scale"))
        .description("scale out/in to the declared topology: join new nodes, rebalance slots, drain and forget removed masters")
        .option("--dry-run", "print the plan (slot moves, key counts) and change nothing")
        .addOption(new Option("--parallel <n>", "concurrent source->target streams").argParser(intArg("--parallel", 1)).default(4))
        .addOption(new Option("--batch <keys>", "keys per MIGRATE").argParser(intArg("--batch", 1)).default(1000))
        .addOption(new Option("--big-key-mb <n>", "keys of this many MiB or more (MEMORY USAGE) move alone with a timeout sized to them; 0 skips the check").argParser(numArg("--big-key-mb", { min: 0, fraction: true })).default(8))
        .option("--yes", "do not ask before draining masters")
        .addOption(new Option("--shards <n>", "keep shards 0..n-1 of the topology (scale in before the smaller pulumi up; with --stack the default comes from Pulumi.<stack>.yaml)").argParser(intArg("--shards", 1)))
        .addOption(new Option("--replicas <n>", "keep replicas r1..rn of each shard (default: all, or replicasPerShard from Pulumi.<stack>.yaml)").argParser(intArg("--replicas")))
        .addOption(new Option("--timeout <ms>", "how long to wait for new nodes to join").argParser(intArg("--timeout", 1)).default(120000))
        .action(action(() => Promise.resolve(require("./commands/scale") as typeof import("./commands/scale"))));

    targetOptions(program.command("rebalance"))
        .description("even out slots over the masters (by weight) without a topology change")
        .option("--dry-run", "print the plan and change nothing")
        .addOption(new Option("--threshold <pct>", "skip when every master is within this % of its share").argParser(numArg("--threshold", { min: 0, max: 100, fraction: true })).default(2))
        .addOption(new Option("--parallel <n>", "concurrent source->target streams").argParser(intArg("--parallel", 1)).default(4))
        .addOption(new Option("--batch <keys>", "keys per MIGRATE").argParser(intArg("--batch", 1)).default(1000))
        .addOption(new Option("--big-key-mb <n>", "keys of this many MiB or more (MEMORY USAGE) move alone with a timeout sized to them; 0 skips the check").argParser(numArg("--big-key-mb", { min: 0, fraction: true })).default(8))
        .action(action(() => Promise.resolve(require("./commands/rebalance") as typeof import("./commands/rebalance"))));

    targetOptions(program.command("failover"))
        .description("controlled failover of a shard (--shard), a node (--node) or every master out of a zone (--zone)")
        .addOption(new Option("--shard <n>", "shard number from the topology").argParser(intArg("--shard")))
        .option("--node <name|host:port>", "the replica to promote")
        .option("--zone <az>", "evacuate: move every master out of this zone")
        .option("--force", "CLUSTER FAILOVER FORCE: the master is unreachable; may lose writes not yet replicated")
        .option("--takeover", "CLUSTER FAILOVER TAKEOVER: no majority; bumps the epoch without agreement")
        .addOption(new Option("--timeout <ms>", "how long to wait for all nodes to see the promotion").argParser(intArg("--timeout", 1)).default(30000))
        .action(action(() => Promise.resolve(require("./commands/failover") as typeof import("./commands/failover"))));

    targetOptions(program.command("forget"))
        .description("remove a dead node from every node's table")
        .argument("<node>", "node id, name, or host:port")
        .action(action(() => Promise.resolve(require("./commands/forget") as typeof import("./commands/forget"))));

    targetOptions(program.command("replicate"))
        .description("attach REPLICA to MASTER (after a node was replaced)")
        .argument("<replica>", "node name or host:port")
        .argument("<master>", "node name, host:port, or shard number")
        .action(action(() => Promise.resolve(require("./commands/replicate") as typeof import("./commands/replicate"))));

    targetOptions(program.command("reconfigure"))
        .description("apply the cluster-wide node settings (maxmemory, policy, timeouts, min-replicas) to running nodes one at a time with CONFIG SET, replicas first")
        .option("--config <file>", "settings from this Pulumi.<stack>.yaml (default: the stack output nodeSettings, or settings.json beside the topology)")
        .option("--dry-run", "show per node current → desired values and change nothing")
        .option("--force", "apply even when a node would be left below its used memory or a master with fewer connected replicas than min-replicas-to-write")
        .action(action(() => Promise.resolve(require("./commands/reconfigure") as typeof import("./commands/reconfigure"))));

    targetOptions(program.command("roll"))
        .description("apply instance type, AMI, bootstrap and engine changes one node at a time: replicas first, a controlled failover before each master, each node back in the cluster before the next")
        .option("--dry-run", "print the order and what changes on each node, and change nothing")
        .option("--allow-unavailable-shard", "roll the master of a shard that has no in-sync replica (its slots are unavailable while it restarts)")
        .option("--yes", "do not ask before starting")
        .addOption(new Option("--node-timeout <ms>", "how long a node may take to come back after its update").argParser(intArg("--node-timeout")).default(15 * 60_000))
        .action(action(() => Promise.resolve(require("./commands/roll") as typeof import("./commands/roll"))));

    targetOptions(program.command("flushall"))
        .description("delete every key on every master (asks for the cluster name)")
        .option("--confirm <clusterName>", "non-interactive confirmation: the cluster name")
        .action(action(() => Promise.resolve(require("./commands/flushall") as typeof import("./commands/flushall"))));

    const backup = s3Options(targetOptions(program.command("backup")))
        .description("take a cluster-wide backup now and wait for it: --stack starts the nodes' backup service through SSM; --topology with --to does the same steps from here")
        .option("--to <dir|s3://bucket/prefix>", "where the backup goes (with --stack: default s3://<backupBucketName>/backups)")
        .option("--kms-key-id <id>", "KMS key for server-side encryption of what the tool uploads (default: the bucket's default encryption)")
        .addOption(new Option("--timeout <ms>", "how long one shard's save and upload may take").argParser(intArg("--timeout")).default(6 * 3600_000))
        .action(action(() => Promise.resolve(require("./commands/backup") as typeof import("./commands/backup"))));
    s3Options(targetOptions(backup.command("verify")))
        .description("restore a backup into a throw-away local cluster (redis-server on loopback), compare key counts and digests with the manifests, write verified.json")
        .option("--from <dir|s3://bucket/prefix>", "the backups (with --stack: s3://<backupBucketName>/backups)")
        .option("--cluster <name>", "whose backups, when the location holds several clusters")
        .option("--backup <id>", "backup id (default: the newest complete one)")
        .option("--keep", "leave the throw-away cluster running (its directory is printed)")
        .action(action(() => Promise.resolve(require("./commands/verify") as typeof import("./commands/verify"))));

    s3Options(program.command("backups"))
        .description("list backups: id, time, shards, keys, bytes, complete, checksums, last verification")
        .option("--from <dir|s3://bucket/prefix>", "where the backups are")
        .option("--stack <name>", "the stack's backup bucket and cluster")
        .option("--cluster <name>", "only this cluster's backups")
        .option("--no-verify", "do not download the RDB files to check their SHA-256")
        .option("--json", "machine-readable output on stdout")
        .option("-q, --quiet", "no progress on stderr")
        .action(action(() => Promise.resolve(require("./commands/backups") as typeof import("./commands/backups"))));

    s3Options(targetOptions(program.command("restore")))
        .description("load a backup into a running cluster of any shard count: stream each shard's RDB, route every key to its slot's owner, pipelined RESTORE … ABSTTL")
        .requiredOption("--from <dir|s3://bucket/prefix>", "where the backups are")
        .option("--cluster <name>", "whose backups, when the location holds several clusters (default: the target's name, else the only one)")
        .option("--backup <id>", "backup id (default: the newest complete one)")
        .option("--replace", "overwrite keys that exist (default: report them and keep them)")
        .option("--yes", "restore into a cluster that holds keys without asking")
        .addOption(new Option("--memory-mb <n>", "most RDB and in-flight RESTORE bytes held in memory at once").argParser(intArg("--memory-mb")).default(256))
        .addOption(new Option("--pipeline <n>", "RESTOREs in flight per master").argParser(intArg("--pipeline")).default(4096))
        .action(action(() => Promise.resolve(require("./commands/restore") as typeof import("./commands/restore"))));

    targetOptions(program.command("autoscale"))
        .description("apply the stack config's autoscale policy: read metrics, decide, and grow or shrink (pulumi up through the Automation API, then scale); one line per decision")
        .option("--once", "one decision (and its action), then exit: for a scheduler")
        .option("--dry-run", "decide and print, change nothing")
        .option("--state-file <file>", "history of samples and actions (default: .autoscale/<stack>.json in the repository)")
        .addOption(new Option("--interval <seconds>", "seconds between decisions (default: autoscale.intervalSeconds)").argParser(intArg("--interval", 1)))
        .action(action(() => Promise.resolve(require("./commands/autoscale") as typeof import("./commands/autoscale"))));

    return program;
}

if (require.main === module) {
    buildProgram().parseAsync(process.argv).catch((e) => {
        process.stderr.write(`${(e as Error).message}\n`);
        process.exitCode = 2;
    });
}
