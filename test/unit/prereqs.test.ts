/**
 * The prerequisites checker's decisions, on an injected machine: what counts as
 * present, what is installed as root, the one command shown otherwise, and the
 * services stopped after installing. The real install path is exercised by
 * `npm test`'s pretest on a machine that lacks a package (see the report).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ensurePrerequisites, missingPrerequisites, PREREQUISITES, SystemProbe } from "../../scripts/prereqs";
import { UsageError } from "../../scripts/errors";

/** A machine with these commands on PATH and these absolute paths; `run` records and optionally "installs". */
function machine(opts: { uid: number; onPath: string[]; paths?: string[]; installs?: Record<string, string[]>; status?: number }) {
    const onPath = new Set(opts.onPath);
    const paths = new Set(opts.paths ?? []);
    const ran: string[] = [];
    const sys: SystemProbe = {
        uid: () => opts.uid,
        which: (c) => (onPath.has(c) ? `/usr/bin/${c}` : undefined),
        exists: (p) => paths.has(p),
        run: (cmd) => {
            ran.push(cmd);
            for (const [pkg, provides] of Object.entries(opts.installs ?? {})) {
                if (new RegExp(`install .*\\b${pkg}\\b`).test(cmd)) for (const x of provides) (x.startsWith("/") ? paths : onPath).add(x);
            }
            return opts.status ?? 0;
        },
        info: () => {},
    };
    return { sys, ran };
}

const EVERYTHING = ["apt-get", "redis-server", "redis-cli", "shellcheck", "mkfs.ext4", "ip", "openssl"];
const EVERY_PATH = ["/usr/bin/aws", "/usr/bin/promtool", "/usr/bin/prometheus"];

test("the list names every package the tests and local mode need, each once", () => {
    assert.deepEqual(PREREQUISITES.map((p) => p.apt).sort(),
        ["awscli", "e2fsprogs", "iproute2", "openssl", "prometheus", "redis-server", "redis-tools", "shellcheck"]);
    assert.deepEqual(PREREQUISITES.filter((p) => p.for.includes("local")).map((p) => p.apt), ["redis-server", "redis-tools"]);
});

test("nothing missing: nothing run", () => {
    const { sys, ran } = machine({ uid: 1000, onPath: EVERYTHING, paths: EVERY_PATH });
    assert.deepEqual(ensurePrerequisites("test", sys), []);
    assert.deepEqual(ran, []);
});

test("aws is judged at /usr/bin/aws, not by whatever `aws` PATH finds first (a pyenv shim)", () => {
    const { sys } = machine({ uid: 1000, onPath: [...EVERYTHING, "aws"], paths: ["/usr/bin/promtool", "/usr/bin/prometheus"] });
    assert.deepEqual(missingPrerequisites("test", sys).map((p) => p.apt), ["awscli"]);
});

test("AL2023's redis6-server counts as redis-server", () => {
    const { sys } = machine({ uid: 1000, onPath: ["redis6-server", "redis6-cli"] });
    assert.deepEqual(missingPrerequisites("local", sys), []);
});

test("not root: fails at once with the one command to run, installs nothing", () => {
    const { sys, ran } = machine({ uid: 1000, onPath: EVERYTHING.filter((c) => c !== "shellcheck"), paths: ["/usr/bin/aws"] });
    assert.throws(() => ensurePrerequisites("test", sys), (e: unknown) => {
        assert.ok(e instanceof UsageError);
        assert.match(e.message, /npm test needs packages this machine lacks/);
        assert.match(e.message, /shellcheck +test\/unit\/bootstrap\.test\.ts lints/);
        assert.match(e.message, /^ {2}sudo apt-get update && sudo apt-get install -y --no-install-recommends shellcheck prometheus$/m);
        return true;
    });
    assert.deepEqual(ran, []);
});

test("local mode as a user on Amazon Linux: the dnf command", () => {
    const { sys } = machine({ uid: 1000, onPath: ["dnf"] });
    assert.throws(() => ensurePrerequisites("local", sys), /\n {2}sudo dnf install -y redis6$/);
});

test("root with apt-get: one update, one install of exactly what is missing, then the services Debian started are stopped", () => {
    const { sys, ran } = machine({
        uid: 0,
        onPath: ["apt-get", "redis-cli", "mkfs.ext4", "ip", "openssl"],
        paths: ["/usr/bin/aws", "/usr/bin/promtool", "/usr/bin/prometheus", "/run/systemd/system"],
        installs: { "redis-server": ["redis-server"], shellcheck: ["shellcheck"] },
    });
    assert.deepEqual(ensurePrerequisites("test", sys), ["redis-server", "shellcheck"]);
    assert.equal(ran.length, 2);
    assert.match(ran[0], /^apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server shellcheck /);
    assert.equal(ran[0].match(/apt-get update/g)!.length, 1);
    assert.match(ran[1], /^systemctl disable --now redis-server\b/);
});

test("root, apt-get fails: says so with the command to retry", () => {
    const { sys } = machine({ uid: 0, onPath: ["apt-get"], status: 100 });
    assert.throws(() => ensurePrerequisites("local", sys), /apt-get could not install redis-server, redis-tools \(exit 100\).*apt-get update && apt-get install -y --no-install-recommends redis-server redis-tools/s);
});

test("installed but still not found: says which command is missing", () => {
    const { sys } = machine({ uid: 0, onPath: ["apt-get", "redis-server", "redis-cli"] });
    assert.throws(() => ensurePrerequisites("test", sys), /still not found/);
});

test("dnf machine missing a Debian-only package: still names the packages", () => {
    const { sys } = machine({ uid: 1000, onPath: ["dnf", "redis6-server", "redis6-cli", "mkfs.ext4", "ip", "openssl"], paths: EVERY_PATH });
    assert.throws(() => ensurePrerequisites("test", sys), /\n {2}sudo apt-get update && sudo apt-get install -y --no-install-recommends shellcheck {3}\(Debian\/Ubuntu package names\)$/);
});
