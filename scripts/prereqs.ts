#!/usr/bin/env node
/**
 * The system packages the project needs, in one list, and the one place that
 * installs them: `npm test` (its `pretest` script runs this file) and
 * `npm run local` (which asks for the `local` subset) both go through
 * `ensurePrerequisites`.
 *
 *   tsx scripts/prereqs.ts [--for test|local] [--check]
 *
 * As root on Debian/Ubuntu the missing packages are installed with one
 * `apt-get update` and one `apt-get install`; as root on Amazon Linux/Fedora,
 * local mode's Redis comes from dnf. Otherwise nothing is installed and the run
 * fails at once with the one command to run. Debian starts a service when it
 * installs redis-server or prometheus; those services hold ports (6379, 9090,
 * 9100) and CPU the tests don't want, so they are stopped and disabled right
 * after installing. Presence is judged by the command a test runs, at the path
 * it runs it from where PATH may lie (Debian's awscli is `/usr/bin/aws`; a
 * pyenv shim of another aws-cli may come first on PATH).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { UsageError } from "./errors";
import { which } from "./redis/serverBinary";

export type Purpose = "test" | "local";

export interface Prerequisite {
    /** Debian/Ubuntu package. */
    apt: string;
    /**
     * What must exist once the package is installed: a command looked up on PATH,
     * or an absolute path checked as is. Any one of the alternatives in an inner
     * list satisfies that entry (redis-server, AL2023's redis6-server or valkey-server).
     */
    provides: (string | string[])[];
    /** Who needs it: shown when it is missing. */
    why: string;
    /** Which runs need it. */
    for: Purpose[];
    /** dnf packages to try in order (Amazon Linux 2023, Fedora), for what local mode needs. */
    dnf?: string[];
    /** systemd units the Debian package starts on install, stopped and disabled afterwards. */
    services?: string[];
}

/** Every system package the tests and local mode use. One list: add a package here, nowhere else. */
export const PREREQUISITES: readonly Prerequisite[] = [
    {
        apt: "redis-server", provides: [["redis-server", "redis6-server", "valkey-server"]], for: ["test", "local"],
        why: "local mode and the integration tests run real Redis servers", dnf: ["redis6", "redis", "valkey"], services: ["redis-server"],
    },
    // On dnf systems the server package carries the cli too.
    { apt: "redis-tools", provides: [["redis-cli", "redis6-cli", "valkey-cli"]], for: ["test", "local"], dnf: ["redis6", "redis", "valkey"], why: "tests check the cluster with redis-cli --cluster check; local mode prints how to connect with it" },
    { apt: "shellcheck", provides: ["shellcheck"], for: ["test"], why: "test/unit/bootstrap.test.ts lints every node's user data" },
    { apt: "e2fsprogs", provides: ["mkfs.ext4"], for: ["test"], why: "the bootstrap test formats a loop device as the data volume" },
    { apt: "iproute2", provides: ["ip"], for: ["test"], why: "network namespaces for the added-latency tests and benchmark" },
    { apt: "openssl", provides: ["openssl"], for: ["test"], why: "the TLS tests issue their certificates with it" },
    { apt: "awscli", provides: ["/usr/bin/aws"], for: ["test"], why: "the node scripts call aws; tests run Debian's /usr/bin/aws against local fakes" },
    {
        apt: "prometheus", provides: ["/usr/bin/promtool", "/usr/bin/prometheus"], for: ["test"],
        why: "alert rules are checked with promtool and scraped by a real prometheus",
        // The node exporter comes in as a recommended package when recommends are on.
        services: ["prometheus", "prometheus-node-exporter"],
    },
];

/** What the checker touches, injectable so its decisions are testable without root or apt. */
export interface SystemProbe {
    /** Effective uid; undefined where the platform has none (Windows). */
    uid(): number | undefined;
    /** Path of a command on PATH, or undefined. */
    which(cmd: string): string | undefined;
    exists(path: string): boolean;
    /** Runs a shell command with output to the terminal; returns its exit status. */
    run(command: string): number;
    /** Progress line on stderr. */
    info(line: string): void;
}

export const realSystem: SystemProbe = {
    uid: () => (typeof process.getuid === "function" ? process.getuid() : undefined),
    which,
    exists: existsSync,
    run: (command) => spawnSync("sh", ["-c", command], { stdio: ["ignore", "inherit", "inherit"] }).status ?? 1,
    info: (line) => process.stderr.write(`${line}\n`),
};

function present(p: Prerequisite, sys: SystemProbe): boolean {
    return p.provides.every((entry) => (Array.isArray(entry) ? entry : [entry]).some((x) => (x.startsWith("/") ? sys.exists(x) : sys.which(x) !== undefined)));
}

/** The prerequisites of a purpose that are not on this machine. */
export function missingPrerequisites(purpose: Purpose, sys: SystemProbe = realSystem, list: readonly Prerequisite[] = PREREQUISITES): Prerequisite[] {
    return list.filter((p) => p.for.includes(purpose) && !present(p, sys));
}

/** The one apt-get command that installs these packages. */
export function aptCommand(packages: readonly Prerequisite[], sudo: boolean): string {
    const s = sudo ? "sudo " : "";
    return `${s}apt-get update && ${s}apt-get install -y --no-install-recommends ${packages.map((p) => p.apt).join(" ")}`;
}

function stopServices(units: string[], sys: SystemProbe): void {
    if (units.length === 0) return;
    // systemd where it runs (a VM); containers usually have none, and Docker images forbid the start anyway (policy-rc.d).
    const systemd = sys.exists("/run/systemd/system");
    for (const u of units) {
        sys.run(systemd
            ? `systemctl disable --now ${u} >/dev/null 2>&1 || true`
            : `(service ${u} stop; update-rc.d ${u} disable) >/dev/null 2>&1 || true`);
    }
}

/**
 * Makes sure every prerequisite of `purpose` is installed: nothing to do when
 * all are present; as root, installs the missing ones (apt-get, or dnf for
 * local mode's Redis) and stops the services Debian started; otherwise throws a
 * UsageError with the one command to run. Returns the packages it installed.
 */
export function ensurePrerequisites(purpose: Purpose, sys: SystemProbe = realSystem, list: readonly Prerequisite[] = PREREQUISITES): string[] {
    const missing = missingPrerequisites(purpose, sys, list);
    if (missing.length === 0) return [];
    const what = missing.map((p) => `  ${p.apt.padEnd(14)} ${p.why}`).join("\n");
    const run = purpose === "test" ? "npm test" : "npm run local";
    const root = sys.uid() === 0;
    const apt = sys.which("apt-get") !== undefined;
    const dnfOnly = !apt && sys.which("dnf") !== undefined && missing.every((p) => p.dnf);

    if (root && apt) {
        sys.info(`${run} needs ${missing.length === 1 ? "a package" : "packages"} this machine lacks; installing with apt-get:\n${what}`);
        // One update: a fresh image has no package lists at all.
        const status = sys.run(`apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing.map((p) => p.apt).join(" ")} >/dev/null`);
        stopServices(missing.flatMap((p) => p.services ?? []), sys);
        if (status !== 0) throw new UsageError(`apt-get could not install ${missing.map((p) => p.apt).join(", ")} (exit ${status}); see its messages above, then run: ${aptCommand(missing, false)}`);
    } else if (root && dnfOnly) {
        for (const p of missing) {
            if (present(p, sys)) continue; // the previous package brought it
            sys.info(`${run} needs ${p.apt} (${p.why}); installing with dnf`);
            const status = sys.run(p.dnf!.map((pkg) => `dnf install -y -q ${pkg}`).join(" || "));
            if (status !== 0) throw new UsageError(`dnf could not install any of ${p.dnf!.join(", ")}; install one of them yourself`);
        }
    } else {
        const lines = [`${run} needs ${missing.length === 1 ? "a package" : "packages"} this machine lacks:`, what, "Install, then run it again:"];
        if (apt || !sys.which("dnf") && !sys.which("brew")) lines.push(`  ${aptCommand(missing, !root)}`);
        if (sys.which("dnf") && missing.every((p) => p.dnf)) lines.push(`  sudo dnf install -y ${[...new Set(missing.map((p) => p.dnf![0]))].join(" ")}`);
        if (sys.which("brew") && missing.every((p) => p.apt.startsWith("redis"))) lines.push("  brew install redis");
        // No package manager we know the names for: the Debian command still names the packages.
        if (lines.length === 3) lines.push(`  ${aptCommand(missing, !root)}   (Debian/Ubuntu package names)`);
        throw new UsageError(lines.join("\n"));
    }
    const still = missingPrerequisites(purpose, sys, list);
    if (still.length > 0) {
        throw new UsageError(`${still.map((p) => p.apt).join(", ")} installed, but ${still.flatMap((p) => p.provides.flat()).join(", ")} still not found; open a new shell or add its directory to PATH`);
    }
    return missing.map((p) => p.apt);
}

if (require.main === module) {
    const args = process.argv.slice(2);
    const i = args.indexOf("--for");
    const p = (i >= 0 ? args[i + 1] : "test") as Purpose;
    try {
        if (p !== "test" && p !== "local") throw new UsageError(`--for must be test or local (got ${JSON.stringify(p)})`);
        if (args.includes("--check")) {
            const missing = missingPrerequisites(p);
            for (const m of missing) process.stderr.write(`missing: ${m.apt} (${m.why})\n`);
            process.exit(missing.length === 0 ? 0 : 1);
        }
        const installed = ensurePrerequisites(p);
        if (installed.length > 0) process.stderr.write(`installed: ${installed.join(" ")}\n`);
    } catch (e) {
        process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
        process.exit(e instanceof UsageError ? 2 : 70);
    }
}
