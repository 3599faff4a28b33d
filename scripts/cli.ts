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
import { Command, InvalidArgumentError, Option, OptionValues } from "@commander-js/extra-typings";
import { errorReport, exitCodeFor } from "./errors";
import { createOutput } from "./output";
import type { CommandRun, CommonOptions } from "./commands/context";
import { FAILOVER_DEFAULTS } from "./redis/failover";
import { FORM_DEFAULTS } from "./redis/form";
import { RESHARD_DEFAULTS } from "./redis/reshard";

function targetOptions<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>) {
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
function s3Options<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>) {
    return cmd
        .option("--s3-endpoint <url>", "S3-compatible endpoint (MinIO, Ceph, s3rver ...): path-style addressing")
        .option("--region <region>", "AWS region of the bucket, and of SSM for backup --stack (default: AWS_REGION)");
}

/** The backups whose ages `metrics` and `status --watch` show (LastBackupAgeSeconds, LastVerifiedRestoreAgeSeconds). */
function backupsFromOptions<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>, what: string) {
    return s3Options(cmd.option("--backups-from <dir|s3://bucket/prefix>", `${what} (with --stack: default s3://<backupBucketName>/backups)`));
}

/** How slots move, for scale and rebalance; the defaults are the executor's (RESHARD_DEFAULTS). */
function moveOptions<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>) {
    return cmd
        .addOption(new Option("--parallel <n>", "concurrent source->target streams").argParser(intArg("--parallel", 1)).default(RESHARD_DEFAULTS.parallel))
        .addOption(new Option("--batch <keys>", "keys per MIGRATE").argParser(intArg("--batch", 1)).default(RESHARD_DEFAULTS.batchKeys))
        .addOption(new Option("--big-key-mb <n>", "keys of this many MiB or more (MEMORY USAGE) move alone with a timeout sized to them; 0 skips the check")
            .argParser(numArg("--big-key-mb", { min: 0, fraction: true })).default(RESHARD_DEFAULTS.bigKeyBytes / (1024 * 1024)));
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
/** local mode's whole-number flags: any whole number (0 replicas is a shape). */
const wholeNumber = (name: string) => (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${name} must be a whole number (got "${v}")`);
    return n;
};

/**
 * Why a command's Options type does not fit the flags declared for it (`never` when it
 * does): every option the command reads needs a flag (an option without one is dead: it
 * is always undefined), and every flag's value must fit the type the command expects.
 */
type OptionsMismatch<Declared, Wanted> =
    [Declared & { args: string[] }] extends [Wanted]
        ? Exclude<keyof Wanted, keyof Declared | "args"> extends never ? never : `option without a flag: ${Exclude<keyof Wanted, keyof Declared | "args"> & string}`
        : "a flag's value does not fit the command's Options type";

/**
 * Mounts a command: its action lazily imports `commands/<name>.ts` and calls its `run`
 * with the parsed options, the Ctrl-C signal and the output. The compiler checks the
 * flags declared on `cmd` against the Options type of `run` (OptionsMismatch).
 */
function mount<A extends unknown[], D extends OptionValues, O extends CommonOptions>(
    cmd: Command<A, D>,
    load: () => Promise<{ run: CommandRun<O> }>,
    ...mismatch: [OptionsMismatch<D, O>] extends [never] ? [] : [error: OptionsMismatch<D, O>]
): Command<A, D> {
    void mismatch;
    return cmd.action(async () => {
        const declared: D & { args: string[] } = { ...cmd.opts(), args: cmd.args };
        // OptionsMismatch proved at compile time that the declared options are an O.
        const opts = declared as unknown as O;
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
    });
}

export function buildProgram() {
    const program = new Command("redis-cluster")
        .description("Form, inspect, scale and repair a Redis Cluster (on AWS after `pulumi up`, or local with `npm run local`)")
        .showHelpAfterError()
        .configureOutput({ writeErr: (s) => process.stderr.write(s) })
        .exitOverride((err) => {
            // commander's own usage errors: exit 2 like our UsageError
            process.exit(err.exitCode === 0 ? 0 : 2);
        });

    mount(targetOptions(program.command("create"))
        .description("form the cluster: assign slots, join nodes, attach replicas off their master's zone; idempotent and resumable")
        .option("--force", "go on without unreachable nodes (every shard keeps one) and ignore old ids of replaced nodes; never nodes holding keys or another cluster's nodes")
        .option("--dry-run", "print the plan and change nothing")
        .addOption(new Option("--timeout <ms>", "how long to wait for the cluster to converge").argParser(intArg("--timeout", 1)).default(FORM_DEFAULTS.timeoutMs)),
        () => Promise.resolve(require("./commands/create") as typeof import("./commands/create")));

    mount(backupsFromOptions(targetOptions(program.command("status")), "with --watch: show the backup ages from these backups")
        .description("health per shard and cluster-wide; exit 0 only when healthy")
        .addOption(new Option("--watch [seconds]", "refresh a per-shard table (role, ops/s, memory %, lag, link, fail reports) until Ctrl-C").argParser(intArg("--watch"))),
        () => Promise.resolve(require("./commands/status") as typeof import("./commands/status")));

    mount(backupsFromOptions(targetOptions(program.command("metrics")), "backups for LastBackupAgeSeconds and LastVerifiedRestoreAgeSeconds")
        .description("the collector's samples from every node: one snapshot (--format json|prometheus|emf) or a Prometheus endpoint (--serve [host:]port)")
        .option("--format <format>", "json (default), prometheus (text exposition) or emf (CloudWatch embedded metric format, one document per line)")
        .option("--serve <[host:]port>", "serve GET /metrics in the Prometheus text format; every scrape reads every node directly (host defaults to 127.0.0.1)")
        .option("--namespace <name>", "CloudWatch namespace of --format emf (default RedisCluster)")
        .addOption(new Option("--command-timeout <ms>", "per-node command timeout: a node that accepts but does not answer is reported as down after this").argParser(intArg("--command-timeout")).default(5000))
        .addOption(new Option("--backups-every <minutes>", "with --serve: read the backups at most this often").argParser(intArg("--backups-every", 1)).default(15)),
        () => Promise.resolve(require("./commands/metrics") as typeof import("./commands/metrics")));

    mount(moveOptions(targetOptions(program.command("scale"))
        .description("scale out/in to the declared topology: join new nodes, rebalance slots, drain and forget removed masters")
        .option("--dry-run", "print the plan (slot moves, key counts) and change nothing"))
        .option("--yes", "do not ask before draining masters")
        .addOption(new Option("--shards <n>", "keep shards 0..n-1 of the topology (scale in before the smaller pulumi up; with --stack the default comes from Pulumi.<stack>.yaml)").argParser(intArg("--shards", 1)))
        .addOption(new Option("--replicas <n>", "keep replicas r1..rn of each shard (default: all, or replicasPerShard from Pulumi.<stack>.yaml)").argParser(intArg("--replicas")))
        .addOption(new Option("--timeout <ms>", "how long to wait for new nodes to join").argParser(intArg("--timeout", 1)).default(120000)),
        () => Promise.resolve(require("./commands/scale") as typeof import("./commands/scale")));

    mount(moveOptions(targetOptions(program.command("rebalance")))
        .description("even out slots over the masters (by weight) without a topology change")
        .option("--dry-run", "print the plan and change nothing")
        .addOption(new Option("--threshold <pct>", "skip when every master is within this % of its share").argParser(numArg("--threshold", { min: 0, max: 100, fraction: true })).default(2)),
        () => Promise.resolve(require("./commands/rebalance") as typeof import("./commands/rebalance")));

    mount(targetOptions(program.command("failover"))
        .description("controlled failover of a shard (--shard), a node (--node) or every master out of a zone (--zone)")
        .addOption(new Option("--shard <n>", "shard number from the topology").argParser(intArg("--shard")))
        .option("--node <name|host:port>", "the replica to promote")
        .option("--zone <az>", "evacuate: move every master out of this zone")
        .option("--force", "CLUSTER FAILOVER FORCE: the master is unreachable; may lose writes not yet replicated")
        .option("--takeover", "CLUSTER FAILOVER TAKEOVER: no majority; bumps the epoch without agreement")
        .addOption(new Option("--timeout <ms>", "how long to wait for all nodes to see the promotion").argParser(intArg("--timeout", 1)).default(FAILOVER_DEFAULTS.timeoutMs)),
        () => Promise.resolve(require("./commands/failover") as typeof import("./commands/failover")));

    mount(targetOptions(program.command("forget"))
        .description("remove a dead node from every node's table")
        .argument("<node>", "node id, name, or host:port"),
        () => Promise.resolve(require("./commands/forget") as typeof import("./commands/forget")));

    mount(targetOptions(program.command("replicate"))
        .description("attach REPLICA to MASTER (after a node was replaced)")
        .argument("<replica>", "node name or host:port")
        .argument("<master>", "node name, host:port, or shard number")
        .addOption(new Option("--timeout <ms>", "how long to wait for the replica to learn its master and sync with it").argParser(intArg("--timeout", 1)).default(60000)),
        () => Promise.resolve(require("./commands/replicate") as typeof import("./commands/replicate")));

    mount(targetOptions(program.command("reconfigure"))
        .description("apply the cluster-wide node settings (maxmemory, policy, timeouts, min-replicas) to running nodes one at a time with CONFIG SET, replicas first")
        .option("--config <file>", "settings from this Pulumi.<stack>.yaml (default: the stack output nodeSettings, or settings.json beside the topology)")
        .option("--dry-run", "show per node current → desired values and change nothing")
        .option("--force", "apply even when a node would be left below its used memory or a master with fewer connected replicas than min-replicas-to-write"),
        () => Promise.resolve(require("./commands/reconfigure") as typeof import("./commands/reconfigure")));

    mount(targetOptions(program.command("roll"))
        .description("apply instance type, AMI, bootstrap and engine changes one node at a time: replicas first, a controlled failover before each master, each node back in the cluster before the next")
        .option("--dry-run", "print the order and what changes on each node, and change nothing")
        .option("--allow-unavailable-shard", "roll the master of a shard that has no in-sync replica (its slots are unavailable while it restarts)")
        .option("--yes", "do not ask before starting")
        .addOption(new Option("--node-timeout <ms>", "how long a node may take to come back after its update").argParser(intArg("--node-timeout")).default(15 * 60_000)),
        () => Promise.resolve(require("./commands/roll") as typeof import("./commands/roll")));

    mount(targetOptions(program.command("flushall"))
        .description("delete every key on every master (asks for the cluster name)")
        .option("--confirm <clusterName>", "non-interactive confirmation: the cluster name"),
        () => Promise.resolve(require("./commands/flushall") as typeof import("./commands/flushall")));

    const backup = mount(s3Options(targetOptions(program.command("backup")))
        .description("take a cluster-wide backup now and wait for it: --stack starts the nodes' backup service through SSM; --topology with --to does the same steps from here")
        .option("--to <dir|s3://bucket/prefix>", "where the backup goes (with --stack: default s3://<backupBucketName>/backups)")
        .option("--kms-key-id <id>", "KMS key for server-side encryption of what the tool uploads (default: the bucket's default encryption)")
        .addOption(new Option("--timeout <ms>", "how long one shard's save and upload may take").argParser(intArg("--timeout")).default(6 * 3600_000)),
        () => Promise.resolve(require("./commands/backup") as typeof import("./commands/backup")));
    mount(s3Options(targetOptions(backup.command("verify")))
        .description("restore a backup into a throw-away local cluster (redis-server on loopback), compare key counts and digests with the manifests, write verified.json")
        .option("--from <dir|s3://bucket/prefix>", "the backups (with --stack: s3://<backupBucketName>/backups)")
        .option("--cluster <name>", "whose backups, when the location holds several clusters")
        .option("--backup <id>", "backup id (default: the newest complete one)")
        .option("--keep", "leave the throw-away cluster running (its directory is printed)"),
        () => Promise.resolve(require("./commands/verify") as typeof import("./commands/verify")));

    mount(s3Options(program.command("backups"))
        .description("list backups: id, time, shards, keys, bytes, complete, checksums, last verification")
        .option("--from <dir|s3://bucket/prefix>", "where the backups are")
        .option("--stack <name>", "the stack's backup bucket and cluster")
        .option("--cluster <name>", "only this cluster's backups")
        .option("--no-verify", "do not download the RDB files to check their SHA-256")
        .option("--json", "machine-readable output on stdout")
        .option("-q, --quiet", "no progress on stderr"),
        () => Promise.resolve(require("./commands/backups") as typeof import("./commands/backups")));

    mount(s3Options(targetOptions(program.command("restore")))
        .description("load a backup into a running cluster of any shard count: stream each shard's RDB, route every key to its slot's owner, pipelined RESTORE … ABSTTL")
        .requiredOption("--from <dir|s3://bucket/prefix>", "where the backups are")
        .option("--cluster <name>", "whose backups, when the location holds several clusters (default: the target's name, else the only one)")
        .option("--backup <id>", "backup id (default: the newest complete one)")
        .option("--replace", "overwrite keys that exist (default: report them and keep them)")
        .option("--yes", "restore into a cluster that holds keys without asking")
        .addOption(new Option("--memory-mb <n>", "most RDB and in-flight RESTORE bytes held in memory at once").argParser(intArg("--memory-mb")).default(256))
        .addOption(new Option("--pipeline <n>", "RESTOREs in flight per master").argParser(intArg("--pipeline")).default(4096)),
        () => Promise.resolve(require("./commands/restore") as typeof import("./commands/restore")));

    mount(targetOptions(program.command("autoscale"))
        .description("apply the stack config's autoscale policy: read metrics, decide, and grow or shrink (pulumi up through the Automation API, then scale); one line per decision")
        .option("--once", "one decision (and its action), then exit: for a scheduler")
        .option("--dry-run", "decide and print, change nothing")
        .option("--state-file <file>", "history of samples and actions (default: .autoscale/<stack>.json in the repository)")
        .addOption(new Option("--interval <seconds>", "seconds between decisions (default: autoscale.intervalSeconds)").argParser(intArg("--interval", 1))),
        () => Promise.resolve(require("./commands/autoscale") as typeof import("./commands/autoscale")));

    mount(program.command("local")
        .description("run the stack's Redis Cluster locally: real redis-server processes on 127.0.0.1, rendered like the EC2 nodes (npm run local)")
        .argument("[action]", "up (default), down, roll (restart every node one at a time, replicas first), or autoscale (the stack config's autoscale policy, acting by the same shape change as --shards)", "up")
        .option("--stack <name>", "stack whose Pulumi.<stack>.yaml to read; state goes to .local/<stack>", "dev")
        .option("--config <file>", "stack config file to read instead of Pulumi.<stack>.yaml")
        .option("--state-dir <dir>", "where local state lives (default: .local in the repository)")
        .addOption(new Option("--base-port <port>", "first client port to try; busy ports are skipped").argParser((v) => Number(v)).default(7000))
        .addOption(new Option("--timeout <ms>", "how long to wait for the cluster to form").argParser((v) => Number(v)).default(FORM_DEFAULTS.timeoutMs))
        .addOption(new Option("--shards <n>", "shards to run: a fresh cluster starts with them, a running one is scaled to them with the cluster tool's scale (default: the stack config's, or what runs)").argParser(wholeNumber("--shards")))
        .addOption(new Option("--replicas <n>", "replicas per shard, likewise").argParser(wholeNumber("--replicas")))
        .option("--engine-binary <path>", "roll: restart the nodes on this redis-server/valkey-server")
        .option("--allow-unavailable-shard", "roll: restart the master of a shard without an in-sync replica")
        .option("--take-over-lease", "roll: replace the cluster lease of a roll that died (docs/lease.md)")
        .addOption(new Option("--node-timeout <ms>", "roll: how long a node may take to come back").argParser((v) => Number(v)).default(60000))
        .option("--json", "NDJSON on stdout: progress events, then the result on the last line")
        .option("-q, --quiet", "no progress on stderr")
        .option("--once", "autoscale: one decision (and its action), then exit")
        .option("--dry-run", "roll, autoscale: print the plan or decision, change nothing")
        .addOption(new Option("--interval <seconds>", "autoscale: seconds between decisions (default: autoscale.intervalSeconds)").argParser(wholeNumber("--interval"))),
        () => Promise.resolve(require("./commands/local") as typeof import("./commands/local")));

    return program;
}

if (require.main === module) {
    buildProgram().parseAsync(process.argv).catch((e) => {
        process.stderr.write(`${(e as Error).message}\n`);
        process.exitCode = 2;
    });
}
