/**
 * A bare pipelined connection for bulk writes whose replies are simple strings or
 * errors (RESTORE, ASKING): each batch is encoded into one buffer and written at once,
 * and replies are matched by counting lines. ioredis spends most of a restore's CPU
 * on per-command objects, promises and writes (profiled: GC and writeBuffer dominate);
 * this does the same work with one allocation and one write per batch. Everything
 * else (reads, admin commands, element-wise rebuilds) goes through the pool's ioredis clients.
 */
import { connect as netConnect, Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { RedisOptions } from "ioredis";

export type Arg = string | Buffer;

interface Pending {
    results: (Error | null)[];
    got: number;
    count: number;
    resolve: (r: (Error | null)[]) => void;
    reject: (e: Error) => void;
}

const CRLF = Buffer.from("\r\n");
const EMPTY = Buffer.alloc(0);

/** RESP encoding of commands into one buffer. */
export function encodeCommands(cmds: Arg[][]): Buffer {
    const parts: Buffer[] = [];
    for (const cmd of cmds) {
        let head = `*${cmd.length}\r\n`;
        for (const a of cmd) {
            if (typeof a === "string") {
                head += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
            } else {
                parts.push(Buffer.from(`${head}$${a.length}\r\n`, "latin1"), a, CRLF);
                head = "";
            }
        }
        if (head) parts.push(Buffer.from(head, "utf8"));
    }
    return Buffer.concat(parts);
}

export class RespPipe {
    private buf: Buffer = Buffer.alloc(0);
    private queue: Pending[] = [];
    private closed: Error | undefined;

    private constructor(private sock: Socket, readonly name: string) {
        sock.setNoDelay(true);
        sock.on("data", (d: Buffer) => this.onData(d));
        const fail = (e: Error) => {
            this.closed ??= e;
            for (const p of this.queue.splice(0)) p.reject(e);
        };
        sock.on("error", (e) => fail(new Error(`${name}: ${e.message}`)));
        sock.on("close", () => fail(new Error(`${name}: connection closed`)));
    }

    /** Connects with the pool's options for the node (address, TLS, ACL user and password). */
    static async open(name: string, o: RedisOptions): Promise<RespPipe> {
        const sock = await new Promise<Socket>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`${name}: connect timed out after ${o.connectTimeout ?? 3000} ms`)), o.connectTimeout ?? 3000);
            const done = (s: Socket) => { clearTimeout(timer); resolve(s); };
            const s: Socket = o.tls
                ? tlsConnect({ host: o.host, port: o.port, ...(o.tls as object) }, () => done(s))
                : netConnect({ host: o.host!, port: o.port! }, () => done(s));
            s.once("error", (e) => { clearTimeout(timer); reject(new Error(`${name}: ${e.message}`)); });
        });
        const pipe = new RespPipe(sock, name);
        if (o.password) {
            const [err] = await pipe.send([o.username ? ["AUTH", o.username, o.password] : ["AUTH", o.password]]);
            if (err) {
                pipe.close();
                throw new Error(`${name}: AUTH failed: ${err.message}`);
            }
        }
        return pipe;
    }

    /** Sends the commands in one write; resolves with one entry per command: null for a simple-string reply, the error otherwise. */
    send(cmds: Arg[][]): Promise<(Error | null)[]> {
        return this.sendEncoded(encodeCommands(cmds), cmds.length);
    }

    /** Writes `count` commands already RESP-encoded in `data` (one write); resolves as send() does. */
    sendEncoded(data: Buffer, count: number): Promise<(Error | null)[]> {
        if (this.closed) return Promise.reject(this.closed);
        return new Promise((resolve, reject) => {
            this.queue.push({ results: new Array<Error | null>(count).fill(null), got: 0, count, resolve, reject });
            this.sock.write(data);
        });
    }

    private onData(d: Buffer): void {
        const buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
        const n = buf.length;
        let pos = 0;
        while (pos < n) {
            const head = buf[pos];
            const p = this.queue[0];
            // "+OK\r\n", nearly every reply: matched by bytes, no line search and no string.
            if (head === 0x2b && pos + 5 <= n && buf[pos + 1] === 0x4f && buf[pos + 2] === 0x4b && buf[pos + 3] === 0x0d && buf[pos + 4] === 0x0a) {
                pos += 5;
            } else {
                const nl = buf.indexOf(CRLF, pos);
                if (nl < 0) break;
                if (head === 0x2d /* - */) {
                    if (p) p.results[p.got] = new Error(buf.toString("utf8", pos + 1, nl));
                } else if (head !== 0x2b /* + */) {
                    const e = new Error(`${this.name}: unexpected reply type ${String.fromCharCode(head)} (this connection carries only commands answered with +OK or an error)`);
                    this.sock.destroy(e);
                    return;
                }
                pos = nl + 2;
            }
            if (!p) continue;
            if (++p.got === p.count) {
                this.queue.shift();
                p.resolve(p.results);
            }
        }
        this.buf = pos >= n ? EMPTY : buf.subarray(pos);
    }

    close(): void {
        this.closed ??= new Error(`${this.name}: closed`);
        this.sock.end();
        this.sock.destroy();
    }
}
