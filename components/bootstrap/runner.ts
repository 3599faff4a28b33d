/**
 * The AWS autoscale runner's machine, as text (no `@pulumi/*` import): its user data, the
 * systemd timer that runs `autoscale --once` every `autoscale.intervalSeconds`, the two
 * scripts the service runs, and the project bundle the stack publishes for it.
 *
 * What the runner needs to run `pulumi up` with nobody at the keyboard:
 * - the project (Pulumi.yaml, Pulumi.<stack>.yaml, the program and the tool, package-lock):
 *   published by every `pulumi up` to the backup bucket (RUNNER_BUNDLE_KEY), fetched before
 *   each run, `npm ci` (dev dependencies included, as on the operator's machine) only when
 *   package-lock.json changed. The stack config it runs with is
 *   the one the last update deployed, whoever ran it; the runner's own config change is
 *   published by its own `pulumi up`. An operator's checkout catches up with
 *   `pulumi config refresh` (https://www.pulumi.com/docs/iac/cli/commands/pulumi_config_refresh/).
 * - the state backend: PULUMI_BACKEND_URL (https://www.pulumi.com/docs/iac/cli/environment-variables/);
 * - the key to the stack's secrets: PULUMI_CONFIG_PASSPHRASE (passphrase provider) or
 *   PULUMI_ACCESS_TOKEN (Pulumi Cloud), read from Secrets Manager at each run into the
 *   process environment only (never a file); with an awskms:// provider, the role's KMS grant;
 * - Node.js (Amazon Linux's namespaced nodejs22: https://docs.aws.amazon.com/linux/al2023/ug/nodejs.html),
 *   the Pulumi CLI of the SDK's version (checksum-verified), and its plugins, which
 *   `pulumi up` installs on first use.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { zipSync } from "fflate";

/** Key of the project bundle in the backup bucket. */
export const RUNNER_BUNDLE_KEY = "tools/autoscale-project.zip";
/** systemd unit (template, instance = stack) and the user it runs as. */
export const RUNNER_UNIT = "redis-autoscale";
/** Releases of the project, `current` pointing at the one in use. */
export const RUNNER_DIR = "/opt/redis-autoscale";
/** HOME of the service user: PULUMI_HOME (plugins), npm cache, the decision history. */
export const RUNNER_STATE_DIR = "/var/lib/redis-autoscale";
/** Node.js major from Amazon Linux 2023's namespaced packages (package.json engines: >= 20). */
export const RUNNER_NODE_MAJOR = 22;

export interface RunnerInput {
    clusterName: string;
    stack: string;
    region: string;
    /** The backup bucket, where RUNNER_BUNDLE_KEY is. */
    bucket: string;
    /** `autoscale.intervalSeconds`: the timer starts the next decision this long after the last one ended. */
    intervalSeconds: number;
    backendUrl: string;
    /** The Secrets Manager secret unlocking the stack, and the variable it goes to. */
    secret?: { arn: string; env: "PULUMI_CONFIG_PASSPHRASE" | "PULUMI_ACCESS_TOKEN" };
    /** Pulumi CLI version: the @pulumi/pulumi SDK's. */
    pulumiVersion: string;
}

/** Which variable the runner's secret fills, by backend: a token for Pulumi Cloud, a passphrase for S3. */
export function secretEnvFor(backendUrl: string): "PULUMI_CONFIG_PASSPHRASE" | "PULUMI_ACCESS_TOKEN" {
    return backendUrl.startsWith("https://") ? "PULUMI_ACCESS_TOKEN" : "PULUMI_CONFIG_PASSPHRASE";
}

/** The installed @pulumi/pulumi version: the CLI the runner installs matches the SDK the lockfile pins. */
export function pulumiSdkVersion(): string {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return (require("@pulumi/pulumi/package.json") as { version: string }).version;
}

/** Non-secret environment of the service (EnvironmentFile): the secret itself is read by the run script. */
export function runnerEnv(input: RunnerInput): string {
    const env: [string, string][] = [
        ["AWS_REGION", input.region],
        ["PULUMI_BACKEND_URL", input.backendUrl],
        ["PULUMI_SKIP_UPDATE_CHECK", "true"],
        // The CLI's own directory first: it holds the language host (pulumi-language-nodejs) the engine starts.
        ["PATH", `/opt/pulumi-${input.pulumiVersion}:/usr/local/bin:/usr/bin:/bin`],
        ["PULUMI_HOME", `${RUNNER_STATE_DIR}/.pulumi`],
        ["HOME", RUNNER_STATE_DIR],
        ["RUNNER_BUNDLE_URI", `s3://${input.bucket}/${RUNNER_BUNDLE_KEY}`],
        ["RUNNER_SECRET_ARN", input.secret?.arn ?? ""],
        ["RUNNER_SECRET_ENV", input.secret?.env ?? ""],
    ];
    return env.map(([k, v]) => `${k}=${v}`).join("\n") + "\n";
}

export function runnerUnits(input: RunnerInput): { service: string; timer: string } {
    const service = [
        "# One autoscale decision for stack %i (docs/autoscale.md, \"The AWS runner\"), by components/bootstrap/runner.ts.",
        "# systemd never runs two starts of one unit at once; the cluster lease (docs/lease.md) keeps it",
        "# from acting while another run (a person's scale, a roll) changes the cluster.",
        "[Unit]",
        "Description=Redis Cluster autoscaler, one decision for stack %i",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        `User=${RUNNER_UNIT}`,
        `Group=${RUNNER_UNIT}`,
        `EnvironmentFile=/etc/${RUNNER_UNIT}/%i.env`,
        `ExecStart=/usr/local/libexec/${RUNNER_UNIT}-run %i`,
        "# A shape change (pulumi up + scale) can take a while; a killed run's lease expires 60 s later.",
        "TimeoutStartSec=3600",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        `ReadWritePaths=${RUNNER_DIR} ${RUNNER_STATE_DIR}`,
        "PrivateTmp=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ].join("\n") + "\n";
    const timer = [
        `# Every autoscale.intervalSeconds (${input.intervalSeconds} s), counted from the end of the last run, so a long`,
        "# scale is never overlapped by the next decision.",
        "[Unit]",
        "Description=Redis Cluster autoscaler timer for stack %i",
        "",
        "[Timer]",
        "OnBootSec=2min",
        `OnUnitInactiveSec=${input.intervalSeconds}s`,
        "AccuracySec=1s",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ].join("\n") + "\n";
    return { service, timer };
}

/** The script the service runs: fetch the project if it changed, unlock the stack, decide once. */
export function runnerRunScript(): string {
    return `#!/bin/bash
# One autoscale decision for stack $1 (components/bootstrap/runner.ts).
set -euo pipefail
umask 077
stack=$1
dir=${RUNNER_DIR}
mkdir -p "$dir/releases"
# The project as the last pulumi up published it (code and Pulumi.<stack>.yaml alike).
aws s3 cp --only-show-errors --region "$AWS_REGION" "$RUNNER_BUNDLE_URI" "$dir/bundle.zip.new"
sum=$(sha256sum "$dir/bundle.zip.new" | cut -d' ' -f1)
if [[ ! -e $dir/current || $(readlink "$dir/current") != "$dir/releases/$sum" ]]; then
    rel=$dir/releases/$sum
    rm -rf "$rel" && mkdir -p "$rel"
    python3 -m zipfile -e "$dir/bundle.zip.new" "$rel"
    if [[ -e $dir/current/node_modules ]] && cmp -s "$dir/current/package-lock.json" "$rel/package-lock.json"; then
        cp -al "$dir/current/node_modules" "$rel/node_modules"
    else
        # Dev dependencies too: pulumi up type-checks the program with the project's typescript and @types/node, as on your machine.
        (cd "$rel" && npm-${RUNNER_NODE_MAJOR} ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    fi
    ln -sfn "$rel" "$dir/current.new"
    mv -Tf "$dir/current.new" "$dir/current"
    # Keep the release in use and the one before it.
    find "$dir/releases" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\\n' | sort -rn | tail -n +3 | cut -d' ' -f2- | xargs -r rm -rf
fi
rm -f "$dir/bundle.zip.new"
if [[ -n $RUNNER_SECRET_ARN ]]; then
    secret=$(aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$RUNNER_SECRET_ARN" --query SecretString --output text)
    export "$RUNNER_SECRET_ENV=$secret"
fi
cd "$dir/current"
exec npm-${RUNNER_NODE_MAJOR} run --silent cluster -- autoscale --stack "$stack" --once --json --state-file "${RUNNER_STATE_DIR}/$stack.json"
`;
}

/** The runner's user data (bash): packages, user, Pulumi CLI, units, timer. */
export function renderRunnerUserData(input: RunnerInput): string {
    const { service, timer } = runnerUnits(input);
    const v = input.pulumiVersion;
    const tarball = `pulumi-v${v}-linux-arm64.tar.gz`;
    const release = `https://github.com/pulumi/pulumi/releases/download/v${v}`;
    return `#!/bin/bash
# Autoscale runner of ${input.clusterName}, stack ${input.stack}, by components/bootstrap/runner.ts.
set -euo pipefail
umask 022
dnf -y -q install nodejs${RUNNER_NODE_MAJOR} nodejs${RUNNER_NODE_MAJOR}-npm python3 tar gzip
# tsx's "#!/usr/bin/env node" must find this Node.js.
alternatives --set node /usr/bin/node-${RUNNER_NODE_MAJOR}
id -u ${RUNNER_UNIT} >/dev/null 2>&1 || useradd --system --home-dir ${RUNNER_STATE_DIR} --shell /sbin/nologin ${RUNNER_UNIT}
install -d -o ${RUNNER_UNIT} -g ${RUNNER_UNIT} -m 0750 ${RUNNER_DIR} ${RUNNER_STATE_DIR}
# The Pulumi CLI of the SDK's version, checked against the release's checksums.
tmp=$(mktemp -d)
curl -fsSL --retry 5 -o "$tmp/${tarball}" "${release}/${tarball}"
curl -fsSL --retry 5 -o "$tmp/checksums.txt" "${release}/pulumi-${v}-checksums.txt"
(cd "$tmp" && grep " ${tarball}\\$" checksums.txt | sha256sum -c --quiet -)
rm -rf /opt/pulumi-${v} && mkdir -p /opt/pulumi-${v}
tar -xzf "$tmp/${tarball}" -C /opt/pulumi-${v} --strip-components=1
ln -sfn /opt/pulumi-${v}/pulumi /usr/local/bin/pulumi
rm -rf "$tmp"
install -d -m 0755 /etc/${RUNNER_UNIT} /usr/local/libexec
cat >/etc/${RUNNER_UNIT}/${input.stack}.env <<'ENV_EOF'
${runnerEnv(input).trimEnd()}
ENV_EOF
cat >/usr/local/libexec/${RUNNER_UNIT}-run <<'RUN_EOF'
${runnerRunScript().trimEnd()}
RUN_EOF
chmod 0755 /usr/local/libexec/${RUNNER_UNIT}-run
cat >/etc/systemd/system/${RUNNER_UNIT}@.service <<'SERVICE_EOF'
${service.trimEnd()}
SERVICE_EOF
cat >/etc/systemd/system/${RUNNER_UNIT}@.timer <<'TIMER_EOF'
${timer.trimEnd()}
TIMER_EOF
chmod 0644 /etc/${RUNNER_UNIT}/${input.stack}.env /etc/systemd/system/${RUNNER_UNIT}@.service /etc/systemd/system/${RUNNER_UNIT}@.timer
systemctl daemon-reload
systemctl enable -q --now ${RUNNER_UNIT}@${input.stack}.timer
`;
}

/** The files of the project the runner needs: the program, the tool, and how to install them. */
const BUNDLE_TOP = ["Pulumi.yaml", "package.json", "package-lock.json", "tsconfig.json", "index.ts"];
const BUNDLE_DIRS = ["components", "scripts"];

/**
 * The project as a zip (deterministic: sorted entries, fixed times), with the stack's config
 * file. `root` is the repository (the stack program's directory).
 */
export function projectBundle(root: string, stack: string): { zip: Uint8Array; files: string[]; sha256: string } {
    const files = [...BUNDLE_TOP, `Pulumi.${stack}.yaml`].filter((f) => existsSync(join(root, f)));
    const walk = (d: string): string[] => readdirSync(join(root, d)).sort().flatMap((n) => {
        const p = join(d, n);
        return statSync(join(root, p)).isDirectory() ? walk(p) : [p];
    });
    for (const d of BUNDLE_DIRS) files.push(...walk(d));
    const missing = BUNDLE_TOP.filter((f) => !files.includes(f));
    if (missing.length) throw new Error(`the autoscale runner's project bundle needs ${missing.join(", ")} in ${root}: the runner runs the stack program (index.ts) of a repository checkout`);
    files.sort();
    const mtime = new Date("2026-01-01T00:00:00Z");
    const entries = Object.fromEntries(files.map((f) => [relative(root, join(root, f)).split("\\").join("/"), [readFileSync(join(root, f)), { mtime }] as [Uint8Array, { mtime: Date }]]));
    const zip = zipSync(entries, { level: 6 });
    return { zip, files, sha256: createHash("sha256").update(zip).digest("hex") };
}
