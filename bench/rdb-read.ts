/**
 * RDB reader micro-benchmark (not a test): a real redis-server writes an RDB of N keys
 * (DEBUG POPULATE, 64-byte values by default), then the file is read with readRdb from a file
 * stream, (1) records only, (2) records plus the DUMP payload RESTORE needs per key (a Buffer per
 * key), (3) what the restore does: records in batches (readRdbBatches), each key's payload framed
 * in place into one reused buffer (writeDumpPayload). Prints keys/s, MiB/s and peak RSS.
 *
 *   npx tsx bench/rdb-read.ts [--keys 1000000] [--value-bytes 64] [--chunk-kib 64] [--rdb FILE]
 */
import { createReadStream, statSync } from "node:fs";
import { join } from "node:path";
import { loadavg } from "node:os";
import Redis from "ioredis";
import { startServer, stopAll, TestServer } from "../test/helpers/redisServers";
import { readRdb, readRdbBatches, dumpPayload, writeDumpPayload } from "../scripts/rdb";
import { opt } from "./args";

const KEYS = Number(opt("keys", "1000000"));
const VALUE_BYTES = Number(opt("value-bytes", "64"));
const CHUNK = Number(opt("chunk-kib", "64")) * 1024;
const RUNS = Number(opt("runs", "3"));

async function makeRdb(): Promise<{ file: string; server: TestServer }> {
    const server = await startServer({ cluster: false, extraArgs: ["--enable-debug-command", "yes"] });
    const r = new Redis({ host: server.host, port: server.port });
    try {
        await r.call("DEBUG", "POPULATE", String(KEYS), "key", String(VALUE_BYTES));
        await r.call("SAVE");
    } finally {
        r.disconnect();
    }
    return { file: join(server.dir, "dump.rdb"), server };
}

async function runBatches(file: string): Promise<{ keys: number; ms: number; payloadBytes: number }> {
    const t0 = process.hrtime.bigint();
    let keys = 0;
    let payloadBytes = 0;
    let out = Buffer.allocUnsafe(256 * 1024);
    for await (const batch of readRdbBatches(createReadStream(file, { highWaterMark: CHUNK }), { source: file })) {
        let at = 0;
        for (const rec of batch) {
            if (rec.kind !== "key") continue;
            keys++;
            if (rec.value!.length + 11 > out.length) out = Buffer.allocUnsafe(rec.value!.length + 11);
            if (at + rec.value!.length + 11 > out.length) at = 0;
            const end = writeDumpPayload(out, at, rec.rdbType, rec.value!, rec.rdbVersion);
            payloadBytes += end - at;
            at = end;
        }
    }
    return { keys, ms: Number(process.hrtime.bigint() - t0) / 1e6, payloadBytes };
}

async function run(file: string, withPayload: boolean): Promise<{ keys: number; ms: number; payloadBytes: number }> {
    const t0 = process.hrtime.bigint();
    let keys = 0;
    let payloadBytes = 0;
    for await (const rec of readRdb(createReadStream(file, { highWaterMark: CHUNK }), { source: file })) {
        if (rec.kind !== "key") continue;
        keys++;
        if (withPayload) payloadBytes += dumpPayload(rec.rdbType, rec.value!, rec.rdbVersion).length;
    }
    return { keys, ms: Number(process.hrtime.bigint() - t0) / 1e6, payloadBytes };
}

async function main(): Promise<void> {
    const given = opt("rdb", "");
    let server: TestServer | undefined;
    let file = given;
    try {
        if (!file) {
            const t = Date.now();
            ({ file, server } = await makeRdb());
            console.error(`generated ${KEYS} keys (${VALUE_BYTES}-byte values) with redis-server in ${((Date.now() - t) / 1000).toFixed(1)} s`);
        }
        const mib = statSync(file).size / 1048576;
        console.log(`RDB: ${file}, ${mib.toFixed(1)} MiB, read in ${CHUNK / 1024} KiB chunks, node ${process.version}`);
        for (const mode of ["read only         ", "read + dumpPayload", "batches + in place"]) {
            for (let i = 0; i < RUNS; i++) {
                const r = mode.startsWith("batches") ? await runBatches(file) : await run(file, mode.includes("dump"));
                console.log(
                    `${mode}  run ${i + 1}: ${r.keys} keys in ${(r.ms / 1000).toFixed(2)} s = ` +
                        `${Math.round(r.keys / (r.ms / 1000)).toLocaleString("en-US")} keys/s, ${(mib / (r.ms / 1000)).toFixed(1)} MiB/s`,
                );
            }
        }
        console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
    } finally {
        if (server) await stopAll([server]);
    }
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
