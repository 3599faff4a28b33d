/**
 * zone-loss: three "zones" as network namespaces the drill creates, each with a
 * veth to one bridge (10.213.<n>.0/24, only inside what the drill creates); the
 * nodes of a 3 x (1 + 1) cluster run in their zone's namespace, placed by the
 * stack's own rule (zoneOf: a shard's replica sits in the next zone) and formed
 * with the tool's `create`. A client outside the zones writes through the
 * cluster; then zone a is cut off from zones b and c (blackhole routes both
 * ways), while the client still reaches every zone: the worst case, in which
 * the isolated master keeps acknowledging writes until it sees it is alone.
 *
 * Run four times, on a fresh cluster each: plain writes, SET + WAIT 1, and
 * min-replicas-to-write 1 (a stack setting) with min-replicas-max-lag 10 s (the
 * default) and 1 s. Measures the time until the
 * majority side serves every slot again (and reports cluster_state:ok there),
 * how long the isolated master kept accepting writes, requests failed, and
 * writes acknowledged then lost once the zone is back.
 *
 * Needs root (ip netns, veth, bridge). Removes its namespaces, bridge and
 * servers on success, failure and Ctrl-C.
 */
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Redis from "ioredis";
import { parseStackYaml, StackConfig } from "../../components/config";
import { renderRedisConf } from "../../components/bootstrap/redisConf";
import { renderAclFile } from "../../components/bootstrap/acl";
import { ACL_USERS } from "../../components/bootstrap/contract";
import { zoneOf } from "../../components/plan/placement";
import { nodeName, Topology } from "../../components/topology";
import { UsageError } from "../errors";
import { countSlots, parseClusterNodes } from "../plan/clusterNodes";
import { runCli } from "../../test/helpers/cluster";
import { redisServerBinary, redisServerVersion, waitForPing } from "../../test/helpers/redisServers";
import { appClient, DrillReport, lostKeys, Report, sleep, startWriter, timeUntil, WriteMode } from "./common";

export interface ZoneLossOptions {
    quick?: boolean;
    /** cluster-node-timeout. @default 5000 (the stack default); quick: 1000 */
    nodeTimeoutMs?: number;
    log?: (line: string) => void;
}

/** One run of the cut: how the client writes, and the stack settings of the nodes. */
interface Mode {
    label: string;
    write: WriteMode;
    /** min-replicas-to-write 1 with this min-replicas-max-lag (s); none when undefined. */
    minReplicasMaxLagSec?: number;
}
const MODES: Mode[] = [
    { label: "plain", write: "plain" },
    { label: "wait1", write: "wait1" },
    // The stack default lag (10 s) and a lag shorter than the node timeout: the master counts a
    // replica as present until its last REPLCONF ACK (sent every second) is older than the lag.
    { label: "minReplicas1Lag10s", write: "plain", minReplicasMaxLagSec: 10 },
    { label: "minReplicas1Lag1s", write: "plain", minReplicasMaxLagSec: 1 },
];
const ZONES = ["a", "b", "c"];

function sh(cmd: string[]): void {
    const r = spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed: ${(r.stderr || r.error?.message || "").trim()}`);
}

/** The drill's network: created by up(), removed by down() whatever state it is in. */
class ZoneNet {
    readonly tag = `rcz${process.pid % 100000}`;
    readonly bridge = `${this.tag}br`;
    readonly subnet: string;
    constructor(third: number) {
        this.subnet = `10.213.${third}`;
    }
    ns(z: string) { return `${this.tag}-${z}`; }
    ip(z: string) { return `${this.subnet}.${ZONES.indexOf(z) + 1}`; }

    up(): void {
        sh(["ip", "link", "add", this.bridge, "type", "bridge"]);
        sh(["ip", "addr", "add", `${this.subnet}.254/24`, "dev", this.bridge]);
        sh(["ip", "link", "set", this.bridge, "up"]);
        for (const z of ZONES) {
            const ns = this.ns(z);
            sh(["ip", "netns", "add", ns]);
            sh(["ip", "link", "add", `${this.tag}${z}`, "type", "veth", "peer", "name", `${this.tag}${z}n`, "netns", ns]);
            sh(["ip", "link", "set", `${this.tag}${z}`, "master", this.bridge]);
            sh(["ip", "link", "set", `${this.tag}${z}`, "up"]);
            sh(["ip", "-n", ns, "addr", "add", `${this.ip(z)}/24`, "dev", `${this.tag}${z}n`]);
            sh(["ip", "-n", ns, "link", "set", `${this.tag}${z}n`, "up"]);
            sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
    }

    /** Cuts zone z off from the other zones (both directions); the bridge address (the client) stays reachable. */
    cut(z: string, on: boolean): void {
        for (const other of ZONES.filter((o) => o !== z)) {
            sh(["ip", "-n", this.ns(z), "route", on ? "add" : "del", "blackhole", `${this.ip(other)}/32`]);
            sh(["ip", "-n", this.ns(other), "route", on ? "add" : "del", "blackhole", `${this.ip(z)}/32`]);
        }
    }

    down(): void {
        // Deleting a namespace deletes its veth end, and with it the peer on the bridge.
        for (const z of ZONES) spawnSync("ip", ["netns", "del", this.ns(z)]);
        spawnSync("ip", ["link", "del", this.bridge]);
    }
}

function checkPrerequisites(): void {
    if (typeof process.getuid !== "function" || process.getuid() !== 0) {
        throw new UsageError("zone-loss needs root: it creates network namespaces, veth pairs and a bridge (ip netns, ip link). Run it as root: sudo npm run drill -- zone-loss");
    }
    if (spawnSync("ip", ["-V"]).status !== 0) throw new UsageError("zone-loss needs the ip command (iproute2): apt-get install -y iproute2");
}

/** A 10.213.<n>.0/24 no interface or route on this host uses. */
function freeSubnet(): number {
    const used = spawnSync("ip", ["-4", "-o", "addr"], { encoding: "utf8" }).stdout + spawnSync("ip", ["-4", "route"], { encoding: "utf8" }).stdout;
    for (let i = 0; i < 50; i++) {
        const n = 1 + Math.floor(Math.random() * 250);
        if (!used.includes(`10.213.${n}.`)) return n;
    }
    throw new UsageError("no free 10.213.<n>.0/24 on this host for the drill's bridge");
}

interface ZoneNode { name: string; shard: number; replica: number; zone: string; host: string; port: number; dir: string; proc?: ChildProcess }

async function phase(net: ZoneNet, mode: Mode, T: number, quick: boolean, report: Report, log: (l: string) => void): Promise<void> {
    const settings: Record<string, unknown> = { shards: 3, replicasPerShard: 1, zones: 3, clusterNodeTimeoutMs: T, ...(mode.minReplicasMaxLagSec ? { minReplicasToWrite: 1, minReplicasMaxLagSec: mode.minReplicasMaxLagSec } : {}) };
    const config: StackConfig = parseStackYaml(["config:", ...Object.entries(settings).map(([k, v]) => `  redis-cluster:${k}: ${v}`), ""].join("\n"), "zones");
    const engineVersion = redisServerVersion().join(".");
    const pw = () => randomBytes(18).toString("base64url");
    const passwords = { adminPassword: pw(), appPassword: pw(), replicationPassword: pw() };
    const admin = { user: ACL_USERS.admin, password: passwords.adminPassword };
    const root = mkdtempSync(join(tmpdir(), "rc-zones-"));
    const nodes: ZoneNode[] = [];
    for (let shard = 0; shard < 3; shard++) {
        for (let r = 0; r < 2; r++) {
            const zone = ZONES[zoneOf(shard, r, 3)];
            nodes.push({ name: nodeName(config.clusterName, shard, r), shard, replica: r, zone, host: net.ip(zone), port: 7001 + shard * 2 + r, dir: join(root, `s${shard}r${r}`) });
        }
    }
    const clients: (Redis | ReturnType<typeof appClient>)[] = [];
    const adminOf = (n: ZoneNode) => {
        const c = new Redis({ host: n.host, port: n.port, username: admin.user, password: admin.password, maxRetriesPerRequest: 1, enableReadyCheck: false, connectTimeout: 500, commandTimeout: 1000, retryStrategy: () => 100 });
        c.on("error", () => undefined);
        clients.push(c);
        return c;
    };
    try {
        for (const n of nodes) {
            mkdirSync(n.dir);
            const aclFile = join(n.dir, "users.acl");
            writeFileSync(aclFile, renderAclFile({ ...passwords, engineVersion }));
            const conf = join(n.dir, "redis.conf");
            writeFileSync(conf, renderRedisConf({
                config, announceIp: n.host, bindAddresses: [n.host], port: n.port, dataDir: n.dir, aclFile,
                maxmemoryBytes: 128 * 1024 * 1024, replicationPassword: passwords.replicationPassword, logFile: join(n.dir, "redis.log"), engineVersion,
            }));
            n.proc = spawn("ip", ["netns", "exec", net.ns(n.zone), redisServerBinary(), conf], { stdio: "ignore" });
        }
        await Promise.all(nodes.map((n) => waitForPing(n.host, n.port, admin, 10000, n.proc, join(n.dir, "redis.log"))));
        const topologyFile = join(root, "topology.json");
        const topology: Topology = { clusterName: config.clusterName, port: 7001, tls: false, nodes: nodes.map((n) => ({ name: n.name, shard: n.shard, az: `zone-${n.zone}`, host: n.host, port: n.port })) };
        writeFileSync(topologyFile, JSON.stringify(topology, null, 2));
        writeFileSync(join(root, "credentials.json"), JSON.stringify(admin), { mode: 0o600 });
        const created = await runCli(["create", "--topology", topologyFile, "--quiet"]);
        if (created.code !== 0) throw new Error(`create failed (exit ${created.code}): ${created.stderr}`);
        await timeUntil(async () => (await Promise.all(nodes.filter((n) => n.replica).map(async (n) => /master_link_status:up/.test((await adminOf(n).call("INFO", "replication")) as string)))).every(Boolean), 20000);

        const lost = "a";
        const minority = nodes.filter((n) => n.zone === lost);
        const majority = nodes.filter((n) => n.zone !== lost);
        const isolatedMaster = minority.find((n) => n.replica === 0)!;
        if (mode === MODES[0]) {
            const kept = [0, 1, 2].every((s) => nodes.some((n) => n.shard === s && n.zone !== lost));
            report.figure("placement", nodes.map((n) => `${n.name}@zone-${n.zone}`).join(" "));
            report.check(`placement leaves every shard a node outside zone ${lost}`, kept, [0, 1, 2].map((s) => `shard ${s}: ${nodes.filter((n) => n.shard === s).map((n) => `r${n.replica}@${n.zone}`).join(",")}`).join("; "));
        }
        const writer = startWriter(appClient(nodes.map((n) => ({ host: n.host, port: n.port })), { user: ACL_USERS.app, password: passwords.appPassword }), `zl-${mode.label}`, mode.write);
        await sleep(quick ? 500 : 2000);
        const ackedBefore = writer.acked.size;
        const isolatedAdmin = adminOf(isolatedMaster);
        const majorityAdmins = majority.map(adminOf);
        const tCut = Date.now();
        net.cut(lost, true);
        log(`  ${mode.label}: zone ${lost} cut off from zones b and c after ${ackedBefore} acknowledged writes`);
        // How long the isolated master keeps taking writes: until it sees it is in the minority (cluster_state:fail).
        const isolatedAcceptsMs = timeUntil(async () => /cluster_state:fail/.test((await isolatedAdmin.call("CLUSTER", "INFO")) as string), 6 * T + 10000);
        let leftOk = false;
        const servedMs = await timeUntil(async () => {
            const views = await Promise.all(majorityAdmins.map(async (c) => ({ info: (await c.call("CLUSTER", "INFO")) as string, nodes: (await c.call("CLUSTER", "NODES")) as string })));
            if (views.some((v) => !/cluster_state:ok/.test(v.info))) leftOk = true;
            // Every slot served by a master on the majority side, as every majority node sees it.
            const isolatedKey = `${isolatedMaster.host}:${isolatedMaster.port}`;
            return views.every((v) => /cluster_state:ok/.test(v.info) && parseClusterNodes(v.nodes)
                .filter((n) => n.role === "master" && !n.failing && n.key !== isolatedKey)
                .reduce((a, n) => a + countSlots(n.slots), 0) === 16384);
        }, 6 * T + 10000);
        const acceptMs = await isolatedAcceptsMs;
        await sleep(quick ? 500 : 2000);
        await writer.stop();
        net.cut(lost, false);
        // Back together: the old master must become its successor's replica and resync.
        const healedMs = await timeUntil(async () => /role:slave[\s\S]*master_link_status:up/.test((await isolatedAdmin.call("INFO", "replication")) as string)
            && (await Promise.all(nodes.map(async (n) => /cluster_state:ok/.test((await adminOf(n).call("CLUSTER", "INFO")) as string)))).every(Boolean), 6 * T + 20000);
        const reader = appClient(nodes.map((n) => ({ host: n.host, port: n.port })), { user: ACL_USERS.app, password: passwords.appPassword });
        clients.push(reader);
        const gone = await lostKeys(reader, writer.acked);
        const p = mode.label;
        report.figure(`${p}.allSlotsServedOnMajoritySideMs`, servedMs ?? "never");
        report.figure(`${p}.majoritySideLeftClusterStateOk`, leftOk);
        report.figure(`${p}.isolatedMasterTookWritesForMs`, acceptMs ?? "never stopped");
        report.figure(`${p}.writesAttempted`, writer.attempts());
        report.figure(`${p}.writesAcknowledged`, writer.acked.size);
        if (mode.write === "wait1") report.figure(`${p}.writesNotConfirmedByReplica`, writer.unconfirmed);
        report.figure(`${p}.requestsFailed`, writer.errors);
        report.figure(`${p}.acknowledgedThenLost`, gone.length);
        if (gone.length) {
            const at = gone.map((k) => writer.ackedAt.get(k)! - tCut).sort((x, y) => x - y);
            report.figure(`${p}.lostWritesAcknowledgedMsAfterCut`, `${at[0]}..${at[at.length - 1]}`);
            if (process.env.DRILL_DEBUG) {
                const slots = new Map<string, number>();
                for (const k of gone) {
                    const owner = String(await reader.call("CLUSTER", "KEYSLOT", k));
                    slots.set(owner, (slots.get(owner) ?? 0) + 1);
                }
                log(`    debug: lost keys by slot: ${[...slots].slice(0, 20).map(([s, n]) => `${s}:${n}`).join(" ")} (${slots.size} slots)`);
            }
        }
        report.figure(`${p}.healedAndResyncedMs`, healedMs ?? "never");
        report.check(`${p}: the majority side serves every slot again within 2 x cluster-node-timeout + 3 s`, servedMs !== undefined && servedMs <= 2 * T + 3000, `${servedMs ?? "never"} ms after the cut`);
        report.check(`${p}: the isolated master stops taking writes (cluster_state:fail)`, acceptMs !== undefined, `${acceptMs ?? "never"} ms after the cut`);
        report.check(`${p}: after the zone is back, its old master rejoins as a replica and every node is ok`, healedMs !== undefined, `${healedMs ?? "never"} ms`);
        const lostAt = gone.map((k) => writer.ackedAt.get(k)! - tCut);
        const lastLostMs = lostAt.length ? Math.max(...lostAt) : 0;
        if (mode.write === "wait1") {
            report.check("WAIT 1: no write acknowledged by a replica is lost", gone.length === 0, `${gone.length} of ${writer.acked.size} lost`);
        } else if (mode.minReplicasMaxLagSec) {
            // What min-replicas-to-write promises: no write accepted once the replica has been silent for the lag (plus the 1 s ACK period).
            const bound = Math.min(mode.minReplicasMaxLagSec * 1000 + 1000, (acceptMs ?? Infinity) + 250);
            report.check(`${p}: writes lost only within min(min-replicas-max-lag + 1 s, time to cluster_state:fail) of the cut`, lastLostMs <= bound, `${gone.length} lost, the last acknowledged ${lastLostMs} ms after the cut (bound ${bound} ms)`);
        } else {
            report.check(`${p}: writes lost only until the isolated master turns cluster_state:fail`, lastLostMs <= (acceptMs ?? Infinity) + 250, `${gone.length} lost, the last acknowledged ${lastLostMs} ms after the cut, the master failed at ${acceptMs ?? "never"} ms`);
        }
    } finally {
        for (const c of clients) c.disconnect();
        await Promise.all(nodes.map((n) => new Promise<void>((res) => {
            if (!n.proc || n.proc.exitCode !== null || n.proc.signalCode !== null) return res();
            n.proc.once("exit", () => res());
            n.proc.kill("SIGKILL");
        })));
        rmSync(root, { recursive: true, force: true });
    }
}

export async function zoneLoss(o: ZoneLossOptions = {}): Promise<DrillReport> {
    checkPrerequisites();
    const log = o.log ?? (() => undefined);
    const T = o.nodeTimeoutMs ?? (o.quick ? 1000 : 5000);
    const net = new ZoneNet(freeSubnet());
    const report = new Report("zone-loss", { shards: 3, replicasPerShard: 1, zones: 3, clusterNodeTimeoutMs: T, subnet: `${net.subnet}.0/24`, cut: "zone a from zones b and c; the client reaches all zones", quick: !!o.quick }, log);
    const cleanup = () => net.down();
    const onSignal = () => {
        cleanup();
        process.exit(130);
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
        net.up();
        log(`zone-loss: bridge ${net.bridge} ${net.subnet}.254/24, namespaces ${ZONES.map((z) => net.ns(z)).join(", ")}, cluster-node-timeout ${T} ms`);
        for (const mode of MODES) await phase(net, mode, T, !!o.quick, report, log);
    } finally {
        cleanup();
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
    }
    return report.done();
}
