/**
 * TLS material for local mode, shaped like what a node gets on AWS
 * (components/secrets.ts + the bootstrap): one ECDSA P-256 CA, one certificate
 * shared by every node of the cluster (CN and DNS name = cluster name; server and
 * client auth, since nodes are clients of each other on the bus and for
 * replication), and on each node the three files the bootstrap writes from SSM,
 * under the names `nodeFiles()` gives (`<confDir>/tls/ca.crt`, `redis.crt`,
 * `redis.key`). Local mode's conf dir is the node's directory.
 *
 * Generated with the `openssl` command line: the stack uses @pulumi/tls, which
 * needs the Pulumi engine, and Node's crypto cannot issue certificates.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_PATHS, nodeFiles } from "../../components/bootstrap/engine";
import { UsageError, StepError } from "../errors";

/** The cluster-wide files, in `<stackDir>/tls/`. `ca.crt` is what clients verify nodes with (`--tls-ca`). */
export function clusterTlsFiles(stackDir: string) {
    const d = join(stackDir, "tls");
    return { dir: d, caCert: join(d, "ca.crt"), caKey: join(d, "ca.key"), cert: join(d, "redis.crt"), key: join(d, "redis.key") };
}

/** A node's TLS files with the AWS names, for a node whose conf dir is `nodeDir`. */
export function nodeTlsFiles(nodeDir: string): { caFile: string; certFile: string; keyFile: string } {
    return nodeFiles({ ...DEFAULT_PATHS, confDir: nodeDir }).tls;
}

function openssl(args: string[], what: string, input?: string): string {
    const r = spawnSync("openssl", args, { encoding: "utf8", input, timeout: 20000 });
    if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new UsageError("tls is on in the stack config, and local mode makes its certificates with openssl, which is not installed: apt-get install -y openssl (or dnf install -y openssl, brew install openssl)");
    }
    if (r.status !== 0) {
        throw new StepError({ op: "local", step: "tls-certificates", cause: `openssl ${what} failed (exit ${r.status}): ${(r.stderr || "").trim()}`, state: "no node was started", resume: "fix the openssl error, then run npm run local again" });
    }
    return r.stdout;
}

/** Same lifetimes as the stack (components/secrets.ts: 10 and 3 years). */
const CA_DAYS = 3650;
const CERT_DAYS = 1095;

/**
 * Makes the cluster's CA and node certificate once (kept across `up` runs, as
 * the stack keeps them across deploys), then installs the node files into each
 * node directory. Returns the CA certificate path.
 */
export function ensureLocalTls(stackDir: string, clusterName: string, nodeDirs: string[]): string {
    const f = clusterTlsFiles(stackDir);
    if (!existsSync(f.caCert) || !existsSync(f.cert) || !existsSync(f.key)) {
        mkdirSync(f.dir, { recursive: true, mode: 0o700 });
        const ecKey = (out: string) => {
            openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", out], "genpkey");
            chmodSync(out, 0o600);
        };
        ecKey(f.caKey);
        openssl([
            "req", "-x509", "-new", "-key", f.caKey, "-days", String(CA_DAYS), "-out", f.caCert,
            "-subj", `/O=redis-cluster/CN=${clusterName} Redis CA`,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ], "req -x509 (CA)");
        ecKey(f.key);
        const csr = openssl(["req", "-new", "-key", f.key, "-subj", `/O=redis-cluster/CN=${clusterName}`], "req (node CSR)");
        const ext = join(f.dir, "node.ext");
        writeFileSync(ext, [
            "basicConstraints=CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth,clientAuth",
            `subjectAltName=DNS:${clusterName}`,
        ].join("\n") + "\n");
        openssl(["x509", "-req", "-CA", f.caCert, "-CAkey", f.caKey, "-CAcreateserial", "-days", String(CERT_DAYS), "-extfile", ext, "-out", f.cert], "x509 -req (sign node certificate)", csr);
    }
    for (const nodeDir of nodeDirs) {
        const t = nodeTlsFiles(nodeDir);
        mkdirSync(join(nodeDir, "tls"), { recursive: true, mode: 0o700 });
        const install = (from: string, to: string, mode: number) => {
            if (!existsSync(to) || readFileSync(to, "utf8") !== readFileSync(from, "utf8")) copyFileSync(from, to);
            chmodSync(to, mode);
        };
        // Certificates 0644 as the bootstrap writes them; the key 0600 (the bootstrap's 0640 is for the redis group, which local mode has not).
        install(f.caCert, t.caFile, 0o644);
        install(f.cert, t.certFile, 0o644);
        install(f.key, t.keyFile, 0o600);
    }
    return f.caCert;
}
