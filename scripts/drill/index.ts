#!/usr/bin/env node
/**
 * Drills that print the guarantees: `npm run drill -- <name> [--json] [--quick]`.
 * Each starts its own servers (loopback; zone-loss: network namespaces it
 * creates and removes), prints what it measured and exits 1 when a promise is
 * broken, 2 on a usage error (or a missing prerequisite), 0 otherwise.
 */
import { Command, Option } from "commander";
import { createOutput } from "../output";
import { exitCodeFor, isExpected, UsageError } from "../errors";
import { DrillReport, renderReport } from "./common";

const DRILLS: Record<string, { about: string; run: (o: { quick: boolean; log: (l: string) => void; kills?: number; keys?: number }) => Promise<DrillReport> }> = {
    "master-kill": {
        about: "SIGKILL a master under writes: promotion time vs cluster-node-timeout, client errors, acknowledged writes lost (plain, WAIT 1)",
        run: async (o) => (await import("./masterKill")).masterKill(o),
    },
    "zone-loss": {
        about: "cut one of three zones (network namespaces) off under writes: time to cluster_state:ok, failed requests, writes lost (plain, WAIT 1, min-replicas-to-write 1); needs root",
        run: async (o) => (await import("./zoneLoss")).zoneLoss(o),
    },
    "reshard-chaos": {
        about: "kill scale runs at random points and rerun: no key lost, no open slot, redis-cli --cluster check clean, replicas equal to masters",
        run: async (o) => (await import("./reshardChaos")).reshardChaos(o),
    },
    "bad-input": {
        about: "bad flags, topologies, credentials and nat maps are refused without changing the cluster (CLUSTER NODES and per-slot key counts before/after)",
        run: async (o) => (await import("./badInput")).badInput(o),
    },
};

export function buildDrillProgram(): Command {
    return new Command("drill")
        .description("run a reliability drill against real redis-server processes and print what it measured")
        .argument("<name>", Object.entries(DRILLS).map(([n, d]) => `${n}: ${d.about}`).join("\n"))
        .option("--json", "one JSON document on stdout (the report)")
        .option("--quick", "the short version the test suite runs")
        .option("-q, --quiet", "no progress on stderr")
        .addOption(new Option("--kills <n>", "reshard-chaos: runs to kill (at least 10 for the full drill)").argParser((v) => {
            if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`--kills must be a whole number of at least 1 (got ${JSON.stringify(v)})`);
            return Number(v);
        }))
        .addOption(new Option("--keys <n>", "reshard-chaos: keys loaded before the runs").argParser((v) => {
            if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`--keys must be a whole number of at least 1 (got ${JSON.stringify(v)})`);
            return Number(v);
        }))
        .showHelpAfterError()
        .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
        .action(async (name: string, o: { json?: boolean; quick?: boolean; quiet?: boolean; kills?: number; keys?: number }) => {
            const out = createOutput({ json: o.json, quiet: o.quiet });
            try {
                const drill = DRILLS[name];
                if (!drill) throw new UsageError(`unknown drill "${name}": one of ${Object.keys(DRILLS).join(", ")}`);
                const report = await drill.run({ quick: !!o.quick, kills: o.kills, keys: o.keys, log: (l) => { if (!o.json && !o.quiet) process.stderr.write(l + "\n"); } });
                out.result(report, renderReport(report));
                process.exitCode = report.ok ? 0 : 1;
            } catch (err) {
                process.exitCode = exitCodeFor(err);
                if (o.json) process.stdout.write(JSON.stringify({ event: "error", error: (err as Error).name, message: (err as Error).message }) + "\n");
                if (isExpected(err)) process.stderr.write(`error: ${(err as Error).message}\n`);
                else process.stderr.write(`drill failed to run (not a verdict on the cluster):\n${(err as Error).stack ?? String(err)}\n`);
            }
            // The harness kills what is still running on exit; leave no client keeping the process open.
            process.exit();
        });
}

if (require.main === module) {
    buildDrillProgram().parseAsync(process.argv).catch((e) => {
        process.stderr.write(`${(e as Error).message}\n`);
        process.exit(2);
    });
}
