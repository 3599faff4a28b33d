/**
 * A pretend EC2 instance for running the real boot script: a temporary root
 * (every path the script touches, via UserDataInput.paths), a loop device as
 * the data volume linked the way udev links an NVMe EBS volume, an IMDSv2
 * endpoint on loopback, and an `aws` on PATH that answers
 * `ssm get-parameter` from files. The disk logic (blkid, mkfs, mount, fstab)
 * is the script's own, run for real.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, Server } from "node:http";
import { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BootstrapPaths } from "../../components/bootstrap/engine";

/** Runs a command, throwing with its stderr when it fails. */
export function sh(cmd: string, args: string[]): string {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
}

/** Every path of the bootstrap under `root`. */
export function pathsUnder(root: string): BootstrapPaths {
    return {
        confDir: join(root, "etc/redis-cluster"),
        mountDir: join(root, "var/lib/redis-cluster"),
        script: join(root, "usr/local/sbin/redis-cluster-bootstrap"),
        systemdDir: join(root, "etc/systemd/system"),
        sysctlDir: join(root, "etc/sysctl.d"),
        fstab: join(root, "etc/fstab"),
        devDiskById: join(root, "dev/disk/by-id"),
        logFile: join(root, "var/log/redis-cluster-bootstrap.log"),
        lockFile: join(root, "run/redis-cluster-bootstrap.lock"),
    };
}

const attached = new Set<LoopDevice>();
// A test that times out never reaches its after(): don't leave mounts and loop devices behind.
process.on("exit", () => {
    for (const d of attached) d.detach();
});

/** A sparse file attached as a loop device. */
export class LoopDevice {
    readonly image: string;
    readonly device: string;
    constructor(dir: string, sizeMiB: number, name = "volume.img") {
        this.image = join(dir, name);
        sh("truncate", ["-s", `${sizeMiB}M`, this.image]);
        this.device = sh("losetup", ["-f", "--show", this.image]).trim();
        attached.add(this);
    }
    /** Links it as udev does for an NVMe EBS volume: nvme-Amazon_Elastic_Block_Store_vol0123... */
    linkAsEbs(devDiskById: string, volumeId: string): void {
        mkdirSync(devDiskById, { recursive: true });
        symlinkSync(this.device, join(devDiskById, `nvme-Amazon_Elastic_Block_Store_${volumeId.replace("-", "")}`));
    }
    /** SHA-256 of the first MiB (signatures and superblocks live there). */
    headSha256(): string {
        const r = spawnSync("head", ["-c", "1048576", this.device]);
        return createHash("sha256").update(r.stdout).digest("hex");
    }
    blkid(tag: "TYPE" | "UUID"): string {
        const r = spawnSync("blkid", ["-p", "-s", tag, "-o", "value", this.device], { encoding: "utf8" });
        return r.stdout.trim();
    }
    detach(): void {
        // Unmount whatever is still mounted from it (a failed test), then detach.
        const targets = spawnSync("findmnt", ["-rno", "TARGET", "-S", this.device], { encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean);
        for (const t of targets) spawnSync("umount", ["-l", t]);
        spawnSync("losetup", ["-d", this.device]);
        attached.delete(this);
    }
}

/** An IMDSv2 endpoint: PUT /latest/api/token, then GETs with the token header (401 without, like an instance requiring IMDSv2). */
export class FakeImds {
    /** Served as is: a string, or bytes (gzip-compressed user data). */
    userData: string | Buffer = "";
    region = "eu-central-1";
    instanceId = "i-0123456789abcdef0";
    readonly requests: string[] = [];
    private server?: Server;
    url = "";
    private readonly token = "test-token-" + Math.random().toString(36).slice(2);

    async start(): Promise<void> {
        this.server = createServer((req, res) => {
            this.requests.push(`${req.method} ${req.url}`);
            if (req.method === "PUT" && req.url === "/latest/api/token") {
                if (!req.headers["x-aws-ec2-metadata-token-ttl-seconds"]) { res.writeHead(400); res.end(); return; }
                res.end(this.token);
                return;
            }
            if (req.method !== "GET" || req.headers["x-aws-ec2-metadata-token"] !== this.token) { res.writeHead(401); res.end(); return; }
            const body: Record<string, string | Buffer> = {
                "/latest/meta-data/placement/region": this.region,
                "/latest/meta-data/instance-id": this.instanceId,
                "/latest/user-data": this.userData,
            };
            const v = body[req.url ?? ""];
            if (v === undefined || v.length === 0) { res.writeHead(404); res.end(); return; }
            res.end(v);
        });
        await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", () => r()));
        this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    }
    async stop(): Promise<void> {
        if (this.server) await new Promise((r) => this.server!.close(r));
    }
}

/**
 * Writes `aws` into binDir: `aws ssm get-parameter --region R --name N --with-decryption
 * --query Parameter.Value --output text` prints the value stored for N, like the real CLI
 * (value and a newline). Refuses other regions, calls without --with-decryption, and calls
 * without short CLI timeouts (--cli-connect-timeout/--cli-read-timeout, AWS_MAX_ATTEMPTS), and
 * logs each call (names only) to binDir/aws-calls.log. With FAKE_AWS_FAIL_FIRST=N in its
 * environment, the first N calls fail (counted in binDir/aws-failures).
 */
export function writeFakeAws(binDir: string, values: Record<string, string>, region: string): void {
    const store = join(binDir, "ssm");
    mkdirSync(store, { recursive: true });
    for (const [name, value] of Object.entries(values)) writeFileSync(join(store, name.replace(/\//g, "%2F")), value);
    writeFileSync(join(binDir, "aws"), `#!/bin/bash
set -euo pipefail
[[ "$1 $2" == "ssm get-parameter" ]] || { echo "fake aws: unsupported: $*" >&2; exit 252; }
shift 2
region="" name="" decrypt=0 query="" output="" connect="" read=""
while (( $# )); do
  case $1 in
    --cli-connect-timeout) connect=$2; shift 2 ;;
    --cli-read-timeout) read=$2; shift 2 ;;
    --region) region=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --with-decryption) decrypt=1; shift ;;
    --query) query=$2; shift 2 ;;
    --output) output=$2; shift 2 ;;
    *) echo "fake aws: unknown option $1" >&2; exit 252 ;;
  esac
done
echo "get-parameter $name region=$region decrypt=$decrypt" >> ${JSON.stringify(join(binDir, "aws-calls.log"))}
# FAKE_AWS_FAIL_FIRST=N: the first N calls of this run fail, like SSM throttling at boot.
if [[ -n \${FAKE_AWS_FAIL_FIRST:-} ]]; then
  c=${JSON.stringify(join(binDir, "aws-failures"))}
  n=$(cat "$c" 2>/dev/null || echo 0)
  if (( n < FAKE_AWS_FAIL_FIRST )); then
    echo $(( n + 1 )) > "$c"
    echo "An error occurred (ThrottlingException) when calling the GetParameter operation: Rate exceeded" >&2
    exit 255
  fi
fi
[[ $region == ${JSON.stringify(region)} ]] || { echo "fake aws: wrong region '$region'" >&2; exit 253; }
# The boot script must bound every call well under its unit's start timeout (CLI defaults: 60 s each).
[[ $connect =~ ^[0-9]+$ && $read =~ ^[0-9]+$ ]] && (( connect <= 10 && read <= 20 )) || { echo "fake aws: expected --cli-connect-timeout <= 10 and --cli-read-timeout <= 20 (got '$connect' '$read')" >&2; exit 252; }
[[ \${AWS_MAX_ATTEMPTS:-} =~ ^[12]$ ]] || { echo "fake aws: expected AWS_MAX_ATTEMPTS of 1 or 2 (got '\${AWS_MAX_ATTEMPTS:-}')" >&2; exit 252; }
[[ $decrypt == 1 && $query == Parameter.Value && $output == text ]] || { echo "fake aws: expected --with-decryption --query Parameter.Value --output text" >&2; exit 252; }
f=${JSON.stringify(store)}/\${name//\\//%2F}
[[ -f $f ]] || { echo "An error occurred (ParameterNotFound) when calling the GetParameter operation: Parameter $name not found." >&2; exit 254; }
cat "$f"; echo
`);
    chmodSync(join(binDir, "aws"), 0o755);
}

export interface RunResult {
    code: number | null;
    output: string;
    ms: number;
}

/** Runs a script with bash (async: the fake IMDS answers from this process). */
export function runScript(args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<RunResult> {
    const t0 = Date.now();
    return new Promise((resolve, reject) => {
        // Own process group, so a timeout also kills what the script started (tee, hooks).
        const p = spawn("bash", args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
        let output = "";
        p.stdout.on("data", (d) => (output += d));
        p.stderr.on("data", (d) => (output += d));
        const timer = setTimeout(() => {
            output += `\n[killed after ${timeoutMs} ms]`;
            try { process.kill(-p.pid!, "SIGKILL"); } catch { /* gone */ }
        }, timeoutMs);
        p.on("error", reject);
        p.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code, output, ms: Date.now() - t0 });
        });
    });
}

/** path -> "sha256 mode mtime" of every file under root (symlinks by target), except the given paths. */
export function snapshot(root: string, except: string[] = []): Map<string, string> {
    const out = new Map<string, string>();
    const walk = (dir: string) => {
        for (const e of readdirSync(dir)) {
            const p = join(dir, e);
            if (except.includes(p)) continue;
            const l = lstatSync(p);
            if (l.isSymbolicLink()) out.set(p, `link`);
            else if (l.isDirectory()) { out.set(p, `dir ${(l.mode & 0o7777).toString(8)} ${l.uid}`); walk(p); }
            else if (l.isFile()) out.set(p, `${createHash("sha256").update(readFileSync(p)).digest("hex")} ${(l.mode & 0o7777).toString(8)} ${l.uid}:${l.gid} ${l.mtimeMs}`);
        }
    };
    walk(root);
    return out;
}

export function makeRoot(): string {
    return mkdtempSync(join(tmpdir(), "rct-node-"));
}

export function removeRoot(root: string): void {
    if (!existsSync(root)) return;
    const mounted = spawnSync("findmnt", ["-rno", "TARGET"], { encoding: "utf8" }).stdout.split("\n").filter((t) => t.startsWith(root + "/"));
    for (const t of mounted.reverse()) spawnSync("umount", ["-l", t]);
    rmSync(root, { recursive: true, force: true });
}

export function fileMode(p: string): string {
    return (statSync(p).mode & 0o7777).toString(8);
}
