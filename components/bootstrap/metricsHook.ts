/**
 * The metrics hook: installed into /etc/redis-cluster/hooks.d/ by the bootstrap
 * (contract.ts `hooks`) and run at the end of every boot. It
 *   1. installs Amazon Linux's `nodejs` and `amazon-cloudwatch-agent` when missing;
 *   2. fetches the collector bundle the stack published to the backup bucket
 *      (tools/metrics-collector.cjs, built by esbuild from scripts/metrics/node.ts:
 *      the tool's own collector, so the node's mapping cannot drift from the tool's);
 *   3. writes the admin password (from SSM) to a root-only environment file;
 *   4. configures the agent with its EMF listener (tcp/udp 25888) only: the
 *      documents name the node log group themselves, so the agent needs no metric
 *      or file section and the node only talks to CloudWatch Logs;
 *   5. installs redis-cluster-metrics.timer: the collector every 60 s.
 *
 * Why EMF through the agent and not PutMetricData: the agent batches and retries,
 * the raw samples stay queryable in the log group (Logs Insights), the node needs
 * only the `logs` endpoint (no `monitoring` endpoint), and log ingestion of ~2 KB a
 * minute costs less than one PutMetricData request a minute per node.
 * No `@pulumi/*` import.
 */
import { join } from "node:path";
import type { StackConfig } from "../config";
import { METRICS_NAMESPACE, nodeLogGroupName } from "../naming";
import { BootstrapPaths, DEFAULT_PATHS, nodeFiles } from "./engine";
import { ssmParameterNames } from "./contract";

/** Key of the collector bundle in the backup bucket. */
export const COLLECTOR_KEY = "tools/metrics-collector.cjs";
/** Name of the hook file (hooks run in name order). */
export const METRICS_HOOK_NAME = "60-metrics";
/** systemd units the hook installs. */
export const METRICS_UNIT = "redis-cluster-metrics";
/** Where the bundle, its environment file and the agent's configuration live on the node. */
export const METRICS_DIR = "/opt/redis-cluster-metrics";
/** The agent's EMF listener (its default). */
export const AGENT_EMF_ENDPOINT = "tcp:127.0.0.1:25888";

export interface MetricsHookInput {
    config: Pick<StackConfig, "clusterName" | "tls">;
    node: { name: string };
    /** The node's fixed private IP: the collector reaches Redis (and its master) by the address the cluster knows. */
    privateIp: string;
    paths?: Partial<BootstrapPaths>;
    /** Tests move the hook's own files under a temporary root. @default METRICS_DIR and the agent package's ctl */
    metricsDir?: string;
    agentCtl?: string;
}

const AGENT_CTL = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl";

/** The agent's configuration: the EMF listener, nothing else. */
export function agentConfig(): string {
    return JSON.stringify({ agent: { run_as_user: "cwagent" }, logs: { metrics_collected: { emf: {} } } }, null, 2) + "\n";
}

/** The collector's unit and timer. */
export function metricsUnits(input: MetricsHookInput): { service: string; timer: string } {
    const paths = { ...DEFAULT_PATHS, ...(input.paths ?? {}) };
    const files = nodeFiles(paths);
    const env: [string, string][] = [
        ["REDIS_CLUSTER_NAME", input.config.clusterName],
        ["REDIS_NODE_NAME", input.node.name],
        ["REDIS_HOST", input.privateIp],
        ["REDIS_TLS", input.config.tls ? "1" : "0"],
        ["REDIS_TLS_CA", files.tls.caFile],
        ["REDIS_DATA_DIR", paths.mountDir],
        ["METRICS_NAMESPACE", METRICS_NAMESPACE],
        ["METRICS_LOG_GROUP", nodeLogGroupName(input.config.clusterName)],
        ["METRICS_STATE_FILE", `/var/lib/${METRICS_UNIT}/state.json`],
        ["METRICS_AGENT", AGENT_EMF_ENDPOINT],
    ];
    const service = [
        "[Unit]",
        "Description=Redis Cluster metrics: collect this node, send EMF to the CloudWatch agent",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        // REDISCLI_AUTH, REDIS_SHARD and REDIS_PORT: written by the hook at every boot.
        `EnvironmentFile=${input.metricsDir ?? METRICS_DIR}/env`,
        ...env.map(([k, v]) => `Environment=${k}=${v}`),
        `ExecStart=/usr/bin/node ${input.metricsDir ?? METRICS_DIR}/collector.cjs`,
        `StateDirectory=${METRICS_UNIT}`,
        // One run must end before the next tick.
        "TimeoutStartSec=50",
        "Nice=10",
    ].join("\n") + "\n";
    const timer = [
        "[Unit]",
        "Description=Redis Cluster metrics every minute",
        "",
        "[Timer]",
        "OnBootSec=60",
        "OnUnitActiveSec=60",
        "AccuracySec=1s",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ].join("\n") + "\n";
    return { service, timer };
}

/** The hook script (bash), run by the bootstrap with REDIS_* , BACKUP_BUCKET and AWS_REGION set. */
export function metricsHook(input: MetricsHookInput): { name: string; script: string } {
    const { service, timer } = metricsUnits(input);
    const ssm = ssmParameterNames(input.config.clusterName);
    const unitDir = { ...DEFAULT_PATHS, ...(input.paths ?? {}) }.systemdDir;
    const script = `#!/bin/bash
# Metrics publisher for ${input.node.name}, by components/bootstrap/metricsHook.ts.
set -euo pipefail
umask 077
dir=${input.metricsDir ?? METRICS_DIR}
agent_ctl=${input.agentCtl ?? AGENT_CTL}
pkgs=()
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
[[ -x $agent_ctl ]] || pkgs+=(amazon-cloudwatch-agent)
if (( \${#pkgs[@]} )); then dnf -y -q install "\${pkgs[@]}"; fi
mkdir -p "$dir"
aws s3 cp --only-show-errors --region "$AWS_REGION" "s3://$BACKUP_BUCKET/${COLLECTOR_KEY}" "$dir/collector.cjs.new"
mv -f "$dir/collector.cjs.new" "$dir/collector.cjs"
pw=$(aws ssm get-parameter --region "$AWS_REGION" --with-decryption --name '${ssm.adminPassword}' --query Parameter.Value --output text)
printf 'REDISCLI_AUTH=%s\\nREDIS_SHARD=%s\\nREDIS_PORT=%s\\n' "$pw" "$REDIS_SHARD" "$REDIS_PORT" >"$dir/env.new"
mv -f "$dir/env.new" "$dir/env"
cat >"$dir/agent.json" <<'AGENT_EOF'
${agentConfig().trimEnd()}
AGENT_EOF
chmod 0644 "$dir/agent.json"
"$agent_ctl" -a fetch-config -m ec2 -s -c "file:$dir/agent.json" >/dev/null
cat >${unitDir}/${METRICS_UNIT}.service <<'SERVICE_EOF'
${service.trimEnd()}
SERVICE_EOF
cat >${unitDir}/${METRICS_UNIT}.timer <<'TIMER_EOF'
${timer.trimEnd()}
TIMER_EOF
chmod 0644 ${unitDir}/${METRICS_UNIT}.service ${unitDir}/${METRICS_UNIT}.timer
systemctl daemon-reload
systemctl enable -q --now ${METRICS_UNIT}.timer
`;
    return { name: METRICS_HOOK_NAME, script };
}

let bundled: string | undefined;
/**
 * The node's collector (scripts/metrics/node.ts with the tool's collector and
 * ioredis) as one CommonJS file for Amazon Linux's `nodejs` (18 or later). esbuild
 * output is a pure function of the sources and esbuild's version, so an unchanged
 * collector never shows as a change.
 */
export function bundleCollector(): string {
    if (bundled === undefined) {
        // eslint-disable-next-line @typescript-eslint/no-var-requires
        const esbuild = require("esbuild") as typeof import("esbuild");
        const r = esbuild.buildSync({
            entryPoints: [join(__dirname, "..", "..", "scripts", "metrics", "node.ts")],
            bundle: true,
            platform: "node",
            target: "node18",
            format: "cjs",
            minify: true,
            legalComments: "none",
            write: false,
            logLevel: "silent",
        });
        bundled = r.outputFiles[0].text;
    }
    return bundled;
}

