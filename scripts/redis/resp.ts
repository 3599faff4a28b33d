/**
 * RESP on the wire for the slot mover: a pipeline of commands, some written as
 * prepared bytes (MIGRATE with the keys spliced in as the source returned them, so
 * no key is decoded into its own Buffer and re-encoded), and the encoders for them.
 */
import Redis, { Command } from "ioredis";

export type Reply = [Error | null, unknown];
export type Cmd = { name: string; args: (string | number | Buffer)[]; buffer?: boolean; raw?: Buffer };

/**
 * A command written as prepared RESP bytes: MIGRATE with the keys spliced in as the
 * source returned them, so no key is decoded into its own Buffer and re-encoded
 * (ioredis' Script class overrides toWritable the same way).
 */
class RawCommand extends Command {
    constructor(name: string, private readonly raw: Buffer) {
        super(name, []);
    }
    toWritable(): Buffer {
        return this.raw;
    }
}

export async function pipe(c: Redis, cmds: Cmd[]): Promise<Reply[]> {
    if (cmds.length === 0) return [];
    // ChainableCommander's type hides Pipeline.sendCommand, which every pipeline has.
    const p = c.pipeline() as ReturnType<Redis["pipeline"]> & { sendCommand(cmd: Command): unknown };
    for (const cmd of cmds) {
        if (cmd.raw) p.sendCommand(new RawCommand(cmd.name, cmd.raw));
        else if (cmd.buffer) p.callBuffer(cmd.name, ...cmd.args);
        else p.call(cmd.name, ...cmd.args);
    }
    const res = await p.exec();
    return res as Reply[];
}

export const setslot = (slot: number, ...rest: string[]): Cmd => ({ name: "CLUSTER", args: ["SETSLOT", String(slot), ...rest] });
export const getkeys = (slot: number, n: number): Cmd => ({ name: "CLUSTER", args: ["GETKEYSINSLOT", String(slot), String(n)], buffer: true });

/** "$<len>\r\n<key>\r\n" for each key: RESP bulk strings, ready to follow "KEYS". */
export function encodeKeys(keys: Buffer[]): Buffer {
    const parts: Buffer[] = [];
    for (const k of keys) parts.push(Buffer.from(`$${k.length}\r\n`), k, CRLF);
    return Buffer.concat(parts);
}
const CRLF = Buffer.from("\r\n");

/** The whole MIGRATE command as RESP: the arguments of migrateArgs up to KEYS, then `count` encoded keys. */
export function migrateCommand(head: (string | Buffer)[], blob: Buffer, count: number): Buffer {
    let h = `*${1 + head.length + count}\r\n$7\r\nMIGRATE\r\n`;
    for (const a of head) h += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
    return Buffer.concat([Buffer.from(h), blob]);
}

