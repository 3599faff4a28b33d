#!/usr/bin/env node
/**
 * `npm run render -- --stack NAME --node N [--part user-data|redis.conf|acl|node-settings] [--engine-version V]`
 *
 * Prints what node N of a committed stack config (Pulumi.<stack>.yaml) gets,
 * without the Pulumi CLI or AWS: the user data as the instance receives it,
 * the redis.conf / ACL file it writes at boot, or the node-settings document
 * the stack writes to SSM (the same for every node). Secrets and values known only
 * after deploy (zone names, volume ids) are shown as <placeholders>; the
 * private IP comes from the placement plan. Review a change before `pulumi up`
 * with: diff <(git show HEAD:Pulumi.prod.yaml ...) or simply render before and
 * after the change and diff.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Command, Option } from "commander";
import { parseStackYaml } from "../components/config";
import { ACL_USERS, ssmParameterNames } from "../components/bootstrap/contract";
import { aclTemplate } from "../components/bootstrap/acl";
import { ENGINE_FACTS, DEFAULT_PATHS, nodeFiles } from "../components/bootstrap/engine";
import { userDataInputFor } from "../components/bootstrap/nodeInput";
import { redisConfTemplate } from "../components/bootstrap/redisConf";
import { fillTokens, parseEngineVersion, resolveVersionGates } from "../components/bootstrap/template";
import { renderUserData } from "../components/bootstrap/userData";
import { DIRECTIVE_SETTINGS, nodeSettingsOf, renderNodeSettings } from "../components/bootstrap/nodeSettings";
import { NodePlan, planNodes } from "../components/plan/placement";
import { exitCodeFor, isExpected, UsageError } from "./errors";

export const PARTS = ["user-data", "redis.conf", "acl", "node-settings"] as const;
export type Part = (typeof PARTS)[number];

export interface RenderOptions {
    stack: string;
    node: string;
    part: Part;
    engineVersion?: string;
    /** Directory holding Pulumi.<stack>.yaml. @default the repository root */
    dir?: string;
}

/** Finds node `sel` (index in plan order, full name, or `s<shard>-r<replica>`). */
export function selectNode(nodes: NodePlan[], sel: string, stack: string): NodePlan {
    const byIndex = /^\d+$/.test(sel) ? nodes[Number(sel)] : undefined;
    const found = byIndex ?? nodes.find((n) => n.name === sel || n.name.endsWith(`-${sel}`));
    if (!found) {
        const list = nodes.map((n, i) => `  ${i}  ${n.name}  ${n.privateIp}`).join("\n");
        throw new UsageError(`stack ${stack} has no node ${JSON.stringify(sel)}; give an index, a name or s<shard>-r<replica>:\n${list}`);
    }
    return found;
}

export function render(opts: RenderOptions): string {
    const dir = opts.dir ?? join(__dirname, "..");
    const file = join(dir, `Pulumi.${opts.stack}.yaml`);
    if (!existsSync(file)) throw new UsageError(`no stack config ${file} (stacks: ${listStacks(dir).join(", ") || "none"})`);
    const text = readFileSync(file, "utf8");
    const cfg = parseStackYaml(text, opts.stack);
    const plan = selectNode(planNodes(cfg), opts.node, opts.stack);
    const region = /^\s*aws:region:\s*["']?([a-z0-9-]+)/m.exec(text)?.[1] ?? "<region>";
    const input = userDataInputFor(cfg, plan, {
        az: `<az of zone ${plan.zoneIndex}>`,
        dataVolumeId: "<data volume id>",
        region,
        backupBucket: "<backup bucket>",
    });
    if (opts.part === "user-data") return renderUserData(input);
    // The same document for every node: what `pulumi up` writes to the SSM node-settings parameter.
    if (opts.part === "node-settings") return renderNodeSettings(nodeSettingsOf(cfg));

    const facts = ENGINE_FACTS[cfg.engine];
    const version = opts.engineVersion ?? facts.typicalVersion;
    try {
        parseEngineVersion(version);
    } catch (e) {
        throw new UsageError(`--engine-version: ${(e as Error).message}`);
    }
    const ssm = ssmParameterNames(cfg.clusterName);
    const header = `# ${opts.part} of ${plan.name} on ${cfg.engine} ${version} (--engine-version to change); <...> are filled on the node at boot\n`;
    if (opts.part === "acl") {
        return header + fillTokens(resolveVersionGates(aclTemplate(), version), {
            adminPasswordSha256: `<sha256 of SSM ${ssm.adminPassword}>`,
            appPasswordSha256: `<sha256 of SSM ${ssm.appPassword}>`,
            replicationPasswordSha256: `<sha256 of SSM ${ssm.replicationPassword}>`,
        });
    }
    const files = nodeFiles(DEFAULT_PATHS);
    const conf = redisConfTemplate({
        config: input.config, announceIp: plan.privateIp, bindAddresses: [plan.privateIp, "127.0.0.1"], port: cfg.port,
        dataDir: files.dataDir, aclFile: files.aclFile, tls: cfg.tls ? files.tls : undefined,
        node: { name: plan.name, shard: plan.shard, replica: plan.replica },
    });
    const settings = nodeSettingsOf(cfg);
    return header + fillTokens(resolveVersionGates(conf, version), {
        maxmemoryBytes: `<${cfg.maxmemoryPercent}% of MemTotal in bytes>`,
        // The values the stack writes to SSM (node-settings) and the node reads at boot.
        ...Object.fromEntries(DIRECTIVE_SETTINGS.map((d) => [d.token, String(settings[d.key])])),
        masterauth: `<SSM ${ssm.replicationPassword}, the ${ACL_USERS.replication} user's password>`,
    });
}

function listStacks(dir: string): string[] {
    const { readdirSync } = require("node:fs") as typeof import("node:fs");
    return readdirSync(dir).map((f: string) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1]).filter((s): s is string => !!s);
}

export function main(argv = process.argv): void {
    const program = new Command("render")
        .description("print what a node of a stack config gets: user data, redis.conf or ACL file (secrets as placeholders)")
        .requiredOption("--stack <name>", "stack config: Pulumi.<name>.yaml")
        .requiredOption("--node <n>", "node: index in plan order (0 = s0-r0), name, or s<shard>-r<replica>")
        .addOption(new Option("--part <part>", "what to print").choices(PARTS as unknown as string[]).default("user-data"))
        .option("--engine-version <v>", "engine version for redis.conf/acl (the node detects it at boot); default: what the engine package ships")
        .showHelpAfterError()
        .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
    program.parse(argv);
    const o = program.opts<{ stack: string; node: string; part: Part; engineVersion?: string }>();
    try {
        process.stdout.write(render(o));
    } catch (err) {
        process.exitCode = exitCodeFor(err);
        if (isExpected(err)) process.stderr.write(`error: ${(err as Error).message}\n`);
        else process.stderr.write(`internal error (a bug, please report it):\n${(err as Error).stack ?? String(err)}\n`);
    }
}

if (require.main === module) main();
