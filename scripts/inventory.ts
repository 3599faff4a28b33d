/**
 * Where the nodes come from and how to reach them: a topology file or a Pulumi
 * stack's outputs, credentials, TLS and a NAT map for tunnels.
 *
 * Credentials, in order: --user/--password, REDISCLI_AUTH (password; user from
 * --user or "admin"), the stack's `adminCredentials` output, or a `credentials.json`
 * (mode 0600) beside the topology file, which local mode writes.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { Topology, validateTopology } from "../components/topology";
import { UsageError } from "./errors";
import { Credentials, NodePool, PoolOptions, TlsSettings } from "./redis/pool";

export interface TargetOptions {
    /** Path of a topology JSON file (stack-output shape). */
    topology?: string;
    /** Pulumi stack name to read outputs from. */
    stack?: string;
    user?: string;
    password?: string;
    /** CA file for TLS. */
    tlsCa?: string;
    /** NAT map: JSON file or inline "10.0.1.10:6379=127.0.0.1:16379,...". */
    natMap?: string;
    connectTimeout?: number;
}

export interface Target {
    topology: Topology;
    credentials: Credentials;
    tls?: TlsSettings;
    natMap?: PoolOptions["natMap"];
    /** Human description of where the topology came from. */
    source: string;
    /** Directory of the topology file, when from a file (local mode state lives there). */
    stateDir?: string;
}

/** Reads a Pulumi stack's outputs (secrets in plain text). Injectable for tests. */
export type StackOutputsReader = (stack: string) => Promise<Record<string, unknown>>;

/** Reads outputs through the Automation API from the project in `workDir`. */
export const automationOutputs = (workDir = resolve(__dirname, "..")): StackOutputsReader => async (stack) => {
    // Lazy: the automation API needs the Pulumi CLI, which only the AWS path uses.
    const { LocalWorkspace } = await import("@pulumi/pulumi/automation");
    let s;
    try {
        s = await LocalWorkspace.selectStack({ stackName: stack, workDir });
    } catch (e) {
        throw new UsageError(`cannot select Pulumi stack "${stack}" in ${workDir}: ${(e as Error).message.split("\n")[0]}\n  Is the Pulumi CLI installed and logged in (pulumi login), and does the stack exist (pulumi stack ls)?`);
    }
    const outs = await s.outputs();
    return Object.fromEntries(Object.entries(outs).map(([k, v]) => [k, v.value]));
};

/** Parses "a:1=b:2,c:3=d:4" or a JSON file of { "a:1": "b:2" | {host,port} }. */
export function parseNatMap(spec: string): NonNullable<PoolOptions["natMap"]> {
    const out: NonNullable<PoolOptions["natMap"]> = {};
    const toAddr = (v: unknown, from: string) => {
        if (typeof v === "string") {
            const i = v.lastIndexOf(":");
            const port = Number(v.slice(i + 1));
            if (i <= 0 || !Number.isInteger(port)) throw new UsageError(`--nat-map: "${from}" maps to "${v}", expected host:port`);
            return { host: v.slice(0, i), port };
        }
        const o = v as { host?: unknown; port?: unknown };
        if (o && typeof o.host === "string" && Number.isInteger(o.port)) return { host: o.host, port: o.port as number };
        throw new UsageError(`--nat-map: "${from}" maps to ${JSON.stringify(v)}, expected "host:port" or {host, port}`);
    };
    if (existsSync(spec)) {
        let doc: Record<string, unknown>;
        try {
            doc = JSON.parse(readFileSync(spec, "utf8"));
        } catch (e) {
            throw new UsageError(`--nat-map ${spec}: not valid JSON (${(e as Error).message})`);
        }
        for (const [k, v] of Object.entries(doc)) out[k] = toAddr(v, k);
        return out;
    }
    for (const pair of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
        const [from, to] = pair.split("=");
        if (!from || !to) throw new UsageError(`--nat-map: "${pair}" is not of the form announced-host:port=reachable-host:port`);
        out[from] = toAddr(to, from);
    }
    return out;
}

function readCredentialsFile(path: string): Credentials | undefined {
    if (!existsSync(path)) return undefined;
    const mode = statSync(path).mode & 0o777;
    if (mode & 0o077) throw new UsageError(`${path} holds a password but is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${path}`);
    const doc = JSON.parse(readFileSync(path, "utf8")) as Credentials;
    return { user: doc.user, password: doc.password };
}

/** Commands look nodes up by name: a name used twice would silently mean the first one. */
function refuseDuplicateNames(topology: Topology, source: string): void {
    const at = new Map<string, number[]>();
    topology.nodes.forEach((n, i) => at.set(n.name, [...(at.get(n.name) ?? []), i]));
    const dups = [...at].filter(([, is]) => is.length > 1);
    if (dups.length) {
        throw new UsageError(`Invalid topology in ${source}:\n${dups.map(([name, is]) => ` - node name "${name}" is used by ${is.map((i) => `nodes[${i}]`).join(" and ")}; every node needs its own name`).join("\n")}`);
    }
}

export async function resolveTarget(
    opts: TargetOptions,
    deps: { readStackOutputs?: StackOutputsReader; env?: NodeJS.ProcessEnv } = {},
): Promise<Target> {
    const env = deps.env ?? process.env;
    if (!!opts.topology === !!opts.stack) {
        throw new UsageError("name the nodes with exactly one of --topology FILE (e.g. .local/dev/topology.json) or --stack NAME (a deployed Pulumi stack)");
    }
    let topology: Topology;
    let stackCreds: Credentials | undefined;
    let stackCaPem: string | undefined;
    let source: string;
    let stateDir: string | undefined;
    if (opts.topology) {
        const path = resolve(opts.topology);
        if (!existsSync(path)) throw new UsageError(`--topology ${opts.topology}: no such file${opts.topology.includes(".local/") ? " (start the local cluster first: npm run local)" : ""}`);
        let doc: unknown;
        try {
            doc = JSON.parse(readFileSync(path, "utf8"));
        } catch (e) {
            throw new UsageError(`--topology ${opts.topology}: not valid JSON (${(e as Error).message})`);
        }
        try {
            topology = validateTopology(doc, opts.topology);
        } catch (e) {
            throw new UsageError((e as Error).message);
        }
        refuseDuplicateNames(topology, `--topology ${opts.topology}`);
        source = opts.topology;
        stateDir = dirname(path);
        stackCreds = readCredentialsFile(join(stateDir, "credentials.json"));
    } else {
        const read = deps.readStackOutputs ?? automationOutputs();
        const outs = await read(opts.stack!);
        if (!outs.topology) throw new UsageError(`stack "${opts.stack}" has no "topology" output: has it been deployed (pulumi up)?`);
        try {
            topology = validateTopology(outs.topology, `stack ${opts.stack} output "topology"`);
        } catch (e) {
            throw new UsageError((e as Error).message);
        }
        refuseDuplicateNames(topology, `stack ${opts.stack} output "topology"`);
        const ac = outs.adminCredentials as Credentials | undefined;
        stackCreds = ac ? { user: ac.user, password: ac.password } : undefined;
        stackCaPem = typeof outs.tlsCaCertificate === "string" ? outs.tlsCaCertificate : undefined;
        source = `stack ${opts.stack}`;
    }
    let credentials: Credentials;
    if (opts.password !== undefined) credentials = { user: opts.user ?? stackCreds?.user, password: opts.password };
    else if (env.REDISCLI_AUTH) credentials = { user: opts.user ?? stackCreds?.user ?? "admin", password: env.REDISCLI_AUTH };
    else credentials = { user: opts.user ?? stackCreds?.user, password: stackCreds?.password };

    let tls: TlsSettings | undefined;
    if (topology.tls) {
        const ca = opts.tlsCa ?? (stateDir && existsSync(join(stateDir, "ca.pem")) ? join(stateDir, "ca.pem") : undefined);
        tls = { caFile: ca, caPem: ca ? undefined : stackCaPem };
    }
    const natMap = opts.natMap ? parseNatMap(opts.natMap) : undefined;
    return { topology, credentials, tls, natMap, source, stateDir };
}

/** A node pool for the target. The caller closes it. */
export function openPool(target: Target, opts: { connectTimeoutMs?: number; commandTimeoutMs?: number } = {}): NodePool {
    return new NodePool({ credentials: target.credentials, tls: target.tls, natMap: target.natMap, connectTimeoutMs: opts.connectTimeoutMs, commandTimeoutMs: opts.commandTimeoutMs });
}
