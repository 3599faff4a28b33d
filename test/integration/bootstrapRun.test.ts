/**
 * The real boot script, run as root against a temporary root: a loop device
 * as the data volume, a fake IMDSv2 endpoint and a fake `aws` for SSM. Package
 * installation, sysctl/THP and systemctl are skipped by their env flags; the
 * disk, file and template logic is the script's own.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import Redis from "ioredis";
import { renderAclFile } from "../../components/bootstrap/acl";
import { ACL_USERS, ssmParameterNames, UserDataInput } from "../../components/bootstrap/contract";
import { ENGINE_FACTS, nodeFiles } from "../../components/bootstrap/engine";
import { renderRedisConf } from "../../components/bootstrap/redisConf";
import { nodeSettingsOf, renderNodeSettings } from "../../components/bootstrap/nodeSettings";
import type { StackConfig } from "../../components/config";
import { gzipUserData, renderUserData } from "../../components/bootstrap/userData";
import { planNodes } from "../../components/plan/placement";
import { freePortPair, redisServerBinary, redisServerVersion, waitForPing } from "../helpers/redisServers";
import { makeTestPki, maxmemoryForThisMachine, TestPki, testStacks } from "../helpers/bootstrapConfigs";
import { FakeImds, LoopDevice, makeRoot, pathsUnder, removeRoot, runScript, sh, snapshot, writeFakeAws } from "../helpers/bootstrapNode";

const stack = testStacks().find((s) => s.config.tls)!;
/** The stack's config, on a free loopback port (set in before()). */
let cfg = stack.config;
const facts = ENGINE_FACTS[cfg.engine];
const node = planNodes(cfg)[1];
const VOLUME_ID = "vol-0feedc0ffee000001";
const PASSWORDS = { adminPassword: "admin-Zq3", appPassword: "app 'pw' $HOME `x`", replicationPassword: 'rep"l\\pw&1' };
const ENGINE_VERSION = redisServerVersion().join(".");

const root = makeRoot();
const paths = pathsUnder(root);
const files = nodeFiles(paths);
const binDir = join(root, "test-bin");
const imds = new FakeImds();
let pki: TestPki;
let volume: LoopDevice;
let port: number;
let server: ChildProcess | undefined;
const hookLog = join(root, "hook-runs.log");
const SERVICE_USER = "nobody";
const SERVICE_GROUP = sh("id", ["-gn", SERVICE_USER]).trim();

/** What a real root file system has before the bootstrap: world-traversable system directories. */
function makeSkeleton(r: string): void {
    chmodSync(r, 0o755);
    for (const d of ["etc", "var/lib", "var/log", "usr/local/sbin", "run"]) {
        mkdirSync(join(r, d), { recursive: true, mode: 0o755 });
        chmodSync(join(r, d), 0o755);
    }
}

function input(extra: Partial<UserDataInput> = {}): UserDataInput {
    return {
        config: cfg,
        node: { name: node.name, shard: node.shard, replica: node.replica, az: "us-east-1b" },
        privateIp: "127.0.0.1",
        dataVolumeId: VOLUME_ID,
        region: "us-east-1",
        backupBucket: "test-backups",
        hooks: [{ name: "50-record", script: `#!/bin/bash\necho "$REDIS_NODE_NAME $REDIS_SHARD $REDIS_PORT $REDIS_TLS $BACKUP_BUCKET $AWS_REGION $REDIS_DATA_DIR" >> ${hookLog}\n` }],
        paths,
        ...extra,
    };
}

const env = () => ({
    PATH: `${binDir}:${process.env.PATH}`,
    REDIS_BOOTSTRAP_IMDS_URL: imds.url,
    REDIS_BOOTSTRAP_SKIP_PACKAGES: "1",
    REDIS_BOOTSTRAP_SKIP_KERNEL: "1",
    REDIS_BOOTSTRAP_SKIP_SYSTEMD: "1",
    // An unprivileged user, so the file modes are tested for real: the server below runs as it.
    REDIS_BOOTSTRAP_USER: SERVICE_USER,
    REDIS_BOOTSTRAP_DEVICE_TIMEOUT: "2",
});

const userDataFile = join(root, "user-data");
/** Runs the user data as cloud-init does on an instance's first boot. */
function firstBoot() {
    return runScript([userDataFile], env());
}
/** Runs the installed script as redis-bootstrap.service does on every boot. */
function reboot() {
    return runScript([paths.script, "--run"], env());
}
function expectedConf(engineVersion: string, config = cfg): string {
    return renderRedisConf({
        config, announceIp: "127.0.0.1", bindAddresses: ["127.0.0.1", "127.0.0.1"], port, dataDir: files.dataDir, aclFile: files.aclFile,
        maxmemoryBytes: maxmemoryForThisMachine(config.maxmemoryPercent), replicationPassword: PASSWORDS.replicationPassword,
        tls: files.tls, engineVersion,
    });
}
/** The fake `aws` serves the secrets and the node-settings document of `config`, as the stack writes them. */
function serveSsm(config: StackConfig): void {
    const ssm = ssmParameterNames(cfg.clusterName);
    writeFakeAws(binDir, {
        [ssm.adminPassword]: PASSWORDS.adminPassword, [ssm.appPassword]: PASSWORDS.appPassword, [ssm.replicationPassword]: PASSWORDS.replicationPassword,
        [ssm.tlsCaCert]: pki.ca.trimEnd(), [ssm.tlsCert]: pki.cert.trimEnd(), [ssm.tlsKey]: pki.key.trimEnd(),
        // `aws ssm get-parameter --output text` prints the value and a newline, whatever the value ends with.
        [ssm.nodeSettings]: renderNodeSettings(nodeSettingsOf(config)).trimEnd(),
    }, imds.region);
}
const hookRuns = () => (existsSync(hookLog) ? readFileSync(hookLog, "utf8").trim().split("\n").length : 0);

before(async () => {
    // The boot script formats and mounts a loop device, as it would an EBS volume: that takes root.
    // Fail with the reason rather than a losetup error (never skip: CI runs as root).
    if (typeof process.getuid === "function" && process.getuid() !== 0) {
        throw new Error("the bootstrap run test executes the boot script as root on a loop device: run npm test as root (as CI does), e.g. in a disposable VM or container with /dev/loop*");
    }
    makeSkeleton(root);
    port = await freePortPair();
    cfg = { ...stack.config, port };
    pki = makeTestPki(stack.config.clusterName, join(root, "pki"));
    mkdirSync(binDir, { recursive: true });
    // The engine binary under its AL2023 name: this machine's redis-server.
    symlinkSync(redisServerBinary(), join(binDir, facts.serverBin));
    await imds.start();
    serveSsm(cfg);
    volume = new LoopDevice(root, 64);
    volume.linkAsEbs(paths.devDiskById, VOLUME_ID);
    const ud = renderUserData(input());
    writeFileSync(userDataFile, ud);
    imds.userData = ud;
});

after(async () => {
    if (server && server.exitCode === null) server.kill("SIGKILL");
    await imds.stop();
    removeRoot(root); // unmounts first
    volume?.detach();
});

describe(`boot script of ${node.name} (stack ${stack.name}, ${cfg.engine}, tls) on a loop device`, () => {
    test("first boot: formats the blank volume, mounts it by UUID with nofail, writes the config from SSM values", async () => {
        const r = await firstBoot();
        assert.equal(r.code, 0, r.output);
        assert.match(r.output, /is blank: creating an ext4 filesystem/);
        assert.equal(volume.blkid("TYPE"), "ext4");
        const uuid = volume.blkid("UUID");
        assert.equal(readFileSync(paths.fstab, "utf8"), `UUID=${uuid} ${paths.mountDir} ext4 defaults,noatime,nofail,x-systemd.device-timeout=10s 0 2\n`);
        assert.equal(sh("findmnt", ["-rno", "SOURCE", "--mountpoint", paths.mountDir]).trim(), volume.device);

        // Same bytes as the renderers give for the values the node read at boot.
        assert.equal(readFileSync(files.redisConf, "utf8"), expectedConf(ENGINE_VERSION));
        assert.equal(readFileSync(files.aclFile, "utf8"), renderAclFile({ ...PASSWORDS, engineVersion: ENGINE_VERSION }));
        assert.equal(readFileSync(files.tls.caFile, "utf8"), pki.ca);
        assert.equal(readFileSync(files.tls.keyFile, "utf8"), pki.key);
        const gid = Number(sh("id", ["-g", SERVICE_USER]).trim());
        for (const [f, mode] of [[files.tls.keyFile, 0o640], [files.redisConf, 0o640], [files.aclFile, 0o640], [paths.confDir, 0o750], [files.tlsDir, 0o750]] as const) {
            const st = statSync(f);
            assert.equal(st.mode & 0o777, mode, `${f} mode`);
            assert.deepEqual([st.uid, st.gid], [0, gid], `${f} owner root:${SERVICE_GROUP}`);
        }
        assert.equal(statSync(files.dataDir).uid, Number(sh("id", ["-u", SERVICE_USER]).trim()), "data dir owned by the engine's user");

        // Secrets came from SSM in the region IMDSv2 reported, decrypted; no clear password in any file.
        const calls = readFileSync(join(binDir, "aws-calls.log"), "utf8");
        assert.match(calls, new RegExp(`get-parameter ${ssmParameterNames(cfg.clusterName).adminPassword} region=${imds.region} decrypt=1`));
        assert.ok(imds.requests.includes("PUT /latest/api/token"));
        for (const f of [files.aclFile, paths.script, userDataFile, join(paths.systemdDir, "redis-bootstrap.service")]) {
            const text = readFileSync(f, "utf8");
            for (const pw of Object.values(PASSWORDS)) assert.ok(!text.includes(pw), `${f} contains a password in clear`);
        }

        // Installed for every boot, with the engine's unit extended.
        assert.equal(readFileSync(paths.script, "utf8"), readFileSync(userDataFile, "utf8"));
        assert.match(readFileSync(join(paths.systemdDir, "redis-bootstrap.service"), "utf8"), new RegExp(`ExecStart=${paths.script} --run`));
        const dropIn = readFileSync(join(paths.systemdDir, `${facts.service}.d`, "redis-cluster.conf"), "utf8");
        assert.match(dropIn, /Restart=always/);
        // Type=notify only for a binary that can send READY=1 (linked with libsystemd, as Debian's redis-server is).
        const linked = /libsystemd/.test(sh("ldd", [redisServerBinary()]));
        assert.match(dropIn, linked ? /^Type=notify$/m : /^Type=simple$/m);
        assert.match(dropIn, new RegExp(`--supervised ${linked ? "systemd" : "no"} --daemonize no$`, "m"));
        assert.doesNotMatch(dropIn, /@@/);
        const unit = readFileSync(join(paths.systemdDir, "redis-bootstrap.service"), "utf8");
        assert.match(unit, /^Restart=on-failure$/m);
        assert.match(unit, /^RestartSec=30$/m);
        assert.match(unit, new RegExp(`^ExecStartPost=/usr/bin/systemctl start --no-block ${facts.service}$`, "m"));
        assert.match(dropIn, /LimitNOFILE=65536/);
        assert.match(dropIn, new RegExp(`RequiresMountsFor=${paths.mountDir}`));
        assert.match(readFileSync(join(paths.sysctlDir, "90-redis-cluster.conf"), "utf8"), /vm.overcommit_memory = 1/);

        // The hook ran with the node's values.
        assert.equal(readFileSync(hookLog, "utf8"), `${node.name} ${node.shard} ${cfg.port} 1 test-backups ${imds.region} ${files.dataDir}\n`);
    });

    test("second boot changes nothing and keeps the data (even when SSM throttles at first)", async () => {
        writeFileSync(join(files.dataDir, "marker"), "keep me");
        const uuid = volume.blkid("UUID");
        // The loop device's backing file is written by the kernel whenever it flushes the mounted
        // filesystem (ext4 commits every 5 s), not by the script: its content is checked below.
        const except = [paths.logFile, paths.lockFile, hookLog, join(root, "pki"), binDir, volume.image];
        const before = snapshot(root, except);
        const r = await runScript([paths.script, "--run"], { ...env(), FAKE_AWS_FAIL_FIRST: "1" });
        assert.equal(r.code, 0, r.output);
        assert.match(r.output, /ssm get-parameter \S+ failed \(attempt 1\): An error occurred \(ThrottlingException\)/);
        assert.match(r.output, /has an ext4 filesystem: keeping it/);
        assert.doesNotMatch(r.output, /creating an ext4|wrote /);
        assert.deepEqual(snapshot(root, except), before);
        assert.equal(volume.blkid("UUID"), uuid);
        assert.equal(readFileSync(join(files.dataDir, "marker"), "utf8"), "keep me");
        assert.equal(hookRuns(), 2);
    });

    test("a minimal AMI without aws, cmp and gunzip gets them from dnf before they are needed; a failed dnf says what to check", async () => {
        // PATH as on a minimal image: this machine's commands, minus the three (and Debian's real aws).
        const sys = join(root, "minimal-bin");
        const installed = join(root, "installed-bin");
        const dnfLog = join(root, "dnf.log");
        mkdirSync(sys);
        mkdirSync(installed);
        const hidden = new Set(["aws", "cmp", "gunzip", "dnf"]);
        for (const d of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
            if (!existsSync(d)) continue;
            for (const f of readdirSync(d)) if (!hidden.has(f) && !existsSync(join(sys, f))) symlinkSync(join(d, f), join(sys, f));
        }
        symlinkSync(redisServerBinary(), join(sys, facts.serverBin));
        // dnf "installs" by putting the real commands (and the fake SSM aws) on PATH.
        const dnf = (ok: boolean) => writeFileSync(join(sys, "dnf"), `#!/bin/bash\necho "$*" >> ${dnfLog}\n${ok ? "" : "exit 1\n"}` +
            `ln -sf ${join(binDir, "aws")} ${installed}/aws\nln -sf ${sh("sh", ["-c", "command -v cmp"]).trim()} ${installed}/cmp\nln -sf ${sh("sh", ["-c", "command -v gunzip"]).trim()} ${installed}/gunzip\n`, { mode: 0o755 });
        const minimalEnv = { ...env(), PATH: `${sys}:${installed}`, REDIS_BOOTSTRAP_SKIP_PACKAGES: "" };
        try {
            dnf(false);
            const failed = await runScript([paths.script, "--run"], minimalEnv);
            assert.equal(failed.code, 1, failed.output);
            assert.match(failed.output, /ERROR: dnf install awscli-2 diffutils gzip failed: check the S3 gateway endpoint and its route/);
            dnf(true);
            const r = await runScript([paths.script, "--run"], minimalEnv);
            assert.equal(r.code, 0, r.output);
            assert.match(r.output, /installing awscli-2 diffutils gzip/);
            // Once for the failed run, once for this one: nothing was missing any more after it.
            assert.equal(readFileSync(dnfLog, "utf8"), "install -y -q --setopt=timeout=20 --setopt=retries=3 awscli-2 diffutils gzip\n".repeat(2));
            assert.match(r.output, /bootstrap done/);
        } finally {
            rmSync(sys, { recursive: true, force: true });
            rmSync(installed, { recursive: true, force: true });
        }
    });

    test("a settings change in SSM reaches redis.conf at the next boot; the user data stays as it is", async () => {
        const changed: StackConfig = { ...cfg, maxmemoryPercent: 35, maxmemoryPolicy: "allkeys-lru", clusterNodeTimeoutMs: 12000, clusterReplicaValidityFactor: 3, minReplicasToWrite: 0, minReplicasMaxLagSec: 25 };
        const script = readFileSync(paths.script, "utf8");
        serveSsm(changed);
        try {
            assert.equal(renderUserData(input({ config: changed })), script, "a node setting reached the user data");
            const r = await reboot();
            assert.equal(r.code, 0, r.output);
            assert.doesNotMatch(r.output, /user data changed/);
            assert.match(r.output, new RegExp(`wrote ${files.redisConf.replace(/[.]/g, "\\.")}`));
            assert.equal(readFileSync(files.redisConf, "utf8"), expectedConf(ENGINE_VERSION, changed));
            assert.match(readFileSync(files.redisConf, "utf8"), /^maxmemory-policy allkeys-lru$/m);
            assert.equal(readFileSync(paths.script, "utf8"), script);
        } finally {
            serveSsm(cfg);
        }
        const back = await reboot();
        assert.equal(back.code, 0, back.output);
        assert.equal(readFileSync(files.redisConf, "utf8"), expectedConf(ENGINE_VERSION));
    });

    test("the redis.conf the node wrote starts redis-server in cluster mode, TLS only, data on the volume", async () => {
        // As the engine's user, like the unit's User=: it must read conf, ACL and key through the group, and write the volume.
        server = spawn("setpriv", [`--reuid=${SERVICE_USER}`, `--regid=${SERVICE_GROUP}`, "--init-groups", "--", redisServerBinary(), files.redisConf], { stdio: "ignore" });
        const tls = { ca: pki.ca, servername: cfg.clusterName };
        try {
            await waitForPing("127.0.0.1", port, { user: ACL_USERS.admin, password: PASSWORDS.adminPassword, tls }, 10_000, server);
            const c = new Redis({ host: "127.0.0.1", port, username: ACL_USERS.app, password: PASSWORDS.appPassword, tls, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
            c.on("error", () => undefined);
            try {
                await c.connect();
                assert.match((await c.info("cluster")) as string, /cluster_enabled:1/);
                await assert.rejects(c.call("FLUSHALL"), /NOPERM/);
            } finally {
                c.disconnect();
            }
            const a = new Redis({ host: "127.0.0.1", port, username: ACL_USERS.admin, password: PASSWORDS.adminPassword, tls, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
            a.on("error", () => undefined);
            await a.connect();
            await a.call("SHUTDOWN").catch(() => undefined); // graceful: fsyncs the AOF, as SIGTERM from systemd does
            a.disconnect();
            await new Promise((r) => (server!.exitCode !== null ? r(null) : server!.once("exit", r)));
        } finally {
            if (server.exitCode === null) server.kill("SIGKILL");
        }
        assert.ok(existsSync(join(files.dataDir, "nodes.conf")), "nodes.conf on the data volume");
        assert.ok(existsSync(join(files.dataDir, "appendonlydir")), "AOF on the data volume");
    });

    test("a replaced instance (fresh root disk, same volume) mounts the data without formatting", async () => {
        const uuid = volume.blkid("UUID");
        sh("umount", [paths.mountDir]);
        for (const p of [join(root, "etc"), join(root, "usr"), join(root, "run"), join(root, "var/log")]) rmSync(p, { recursive: true, force: true });
        makeSkeleton(root);
        const r = await firstBoot();
        assert.equal(r.code, 0, r.output);
        assert.match(r.output, /has an ext4 filesystem: keeping it/);
        assert.doesNotMatch(r.output, /creating an ext4/);
        assert.equal(volume.blkid("UUID"), uuid);
        assert.equal(readFileSync(join(files.dataDir, "marker"), "utf8"), "keep me");
        assert.ok(existsSync(join(files.dataDir, "nodes.conf")), "the node keeps its cluster identity");
        assert.match(readFileSync(paths.fstab, "utf8"), new RegExp(`^UUID=${uuid} `));
        assert.equal(readFileSync(files.redisConf, "utf8"), expectedConf(ENGINE_VERSION));
    });

    test("on Redis 6.2 the node writes the 6.2 variant of the same templates", async () => {
        const bin = join(binDir, facts.serverBin);
        unlinkSync(bin);
        writeFileSync(bin, "#!/bin/sh\necho 'Redis server v=6.2.14 sha=00000000:0 malloc=jemalloc-5.1.0 bits=64 build=0'\n");
        chmodSync(bin, 0o755);
        try {
            const r = await reboot();
            assert.equal(r.code, 0, r.output);
            assert.match(r.output, /engine \S+ 6\.2/);
            const conf = readFileSync(files.redisConf, "utf8");
            assert.equal(conf, expectedConf("6.2.14"));
            assert.notEqual(conf, expectedConf(ENGINE_VERSION));
            assert.doesNotMatch(conf, /cluster-port|enable-debug-command/);
            assert.equal(readFileSync(files.aclFile, "utf8"), renderAclFile({ ...PASSWORDS, engineVersion: "6.2.14" }));
            assert.doesNotMatch(readFileSync(files.aclFile, "utf8"), /cluster\|shards/);
            // A binary without libsystemd never sends READY=1: a plain service, not one systemd waits on.
            const dropIn = readFileSync(join(paths.systemdDir, `${facts.service}.d`, "redis-cluster.conf"), "utf8");
            assert.match(dropIn, /^Type=simple$/m);
            assert.match(dropIn, /--supervised no --daemonize no$/m);
        } finally {
            unlinkSync(bin);
            symlinkSync(redisServerBinary(), bin);
        }
    });

    test("user data changed by a stop/start (gzip-compressed) is installed and run at boot", async () => {
        const runsBefore = hookRuns();
        const newUd = renderUserData(input({ hooks: [...input().hooks!, { name: "60-new", script: `#!/bin/bash\necho new >> ${hookLog}\n` }] }));
        // As the instance would serve it with userDataBase64 = gzipUserData(...).
        imds.userData = Buffer.from(gzipUserData(newUd), "base64");
        const r = await reboot();
        assert.equal(r.code, 0, r.output);
        assert.match(r.output, /user data changed since this script was installed/);
        assert.equal(readFileSync(paths.script, "utf8"), newUd);
        assert.ok(existsSync(join(files.hooksDir, "60-new")));
        assert.equal(hookRuns(), runsBefore + 2, "both hooks ran once, in the re-executed script only");
        const again = await reboot();
        assert.doesNotMatch(again.output, /user data changed/);
    });

    test("a volume enlarged in place is grown online by the next run, mounted and with its data", async () => {
        // What ModifyVolume does to a live NVMe volume; the run below is what Run Command or the next boot does.
        const size = () => Number(sh("df", ["-B1", "--output=size", paths.mountDir]).split("\n")[1].trim());
        const before = size();
        sh("truncate", ["-s", "96M", volume.image]);
        sh("losetup", ["-c", volume.device]);
        const r = await reboot();
        assert.equal(r.code, 0, r.output);
        // Online growth (EXT4_IOC_RESIZE_FS) needs CAP_SYS_RESOURCE, which root has on an instance but not
        // in every container: there the run must say why and still bring the node up at its old size.
        const capEff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))![1]}`);
        if ((capEff >> 24n) & 1n) {
            assert.doesNotMatch(r.output, /resize2fs .* failed/);
            assert.ok(size() >= before + 28 * 1024 * 1024, `filesystem still ${size()} bytes (was ${before}) after the volume grew by 32 MiB`);
        } else {
            assert.match(r.output, /resize2fs \/dev\/loop\d+ failed \(resize2fs: Permission denied to resize filesystem\); the filesystem keeps its size/);
            assert.equal(size(), before);
        }
        assert.equal(sh("findmnt", ["-rno", "SOURCE", "--mountpoint", paths.mountDir]).trim(), volume.device, "stayed mounted");
        assert.ok(existsSync(join(files.dataDir, "nodes.conf")), "the node keeps its cluster identity");
    });

    test("a device holding something else is never formatted or mounted", async () => {
        const other = new LoopDevice(root, 8, "other.img");
        const otherRoot = join(root, "other-root");
        try {
            sh("mkswap", [other.device]);
            const head = other.headSha256();
            const p2 = pathsUnder(otherRoot);
            other.linkAsEbs(p2.devDiskById, "vol-0000000000000bad1");
            const ud = join(otherRoot, "user-data");
            // Another instance: IMDS serves its own user data.
            imds.userData = renderUserData(input({ paths: p2, dataVolumeId: "vol-0000000000000bad1", hooks: [] }));
            writeFileSync(ud, imds.userData);
            const r = await runScript([ud], env());
            assert.equal(r.code, 1, r.output);
            assert.match(r.output, /holds swap, not the ext4 filesystem this bootstrap creates; refusing to format or mount it/);
            assert.equal(other.headSha256(), head);
            assert.equal(spawnSync("findmnt", ["-rno", "TARGET", "-S", other.device], { encoding: "utf8" }).stdout.trim(), "", "not mounted");
        } finally {
            imds.userData = readFileSync(paths.script, "utf8");
            removeRoot(otherRoot);
            other.detach();
        }
    });

    test("a volume that never attaches fails the bootstrap with the volume id and what to check", async () => {
        const otherRoot = join(root, "no-volume-root");
        try {
            const p2 = pathsUnder(otherRoot);
            const ud = join(otherRoot, "user-data");
            mkdirSync(otherRoot, { recursive: true });
            imds.userData = renderUserData(input({ paths: p2, dataVolumeId: "vol-0000000000000abs1", hooks: [] }));
            writeFileSync(ud, imds.userData);
            const r = await runScript([ud], env());
            assert.equal(r.code, 1, r.output);
            assert.match(r.output, /data volume vol-0000000000000abs1 is not attached after 2s .*check the volume attachment/);
        } finally {
            imds.userData = readFileSync(paths.script, "utf8");
            removeRoot(otherRoot);
        }
    });
});
