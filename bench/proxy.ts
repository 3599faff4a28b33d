/**
 * A delaying TCP proxy: every chunk is forwarded `delayMs` after it arrived, in
 * order, in both directions, so a round trip through it costs about 2 × delayMs
 * more (the kernel here has no netem). Used by bench/reshard.ts between the tools
 * and the nodes.
 *
 *   tsx bench/proxy.ts <delayMs | upMs,downMs> <listenHost:port=upstreamHost:port> ...
 *
 * Node timers have 1 ms granularity, so a chunk waits until its due time rounded
 * up to the next timer tick; the bench measures the resulting round trip instead
 * of trusting the nominal delay.
 */
import { createConnection, createServer, Server, Socket } from "node:net";

interface Pending {
    due: number;
    chunk: Buffer;
}

/** Forwards from `from` to `to`, each chunk `delayMs` late, order kept. */
function delayedPipe(from: Socket, to: Socket, delayMs: number): void {
    const queue: Pending[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
        timer = undefined;
        const now = performance.now();
        while (queue.length && queue[0].due <= now + 0.2) to.write(queue.shift()!.chunk);
        if (queue.length) timer = setTimeout(flush, Math.max(1, Math.ceil(queue[0].due - now)));
    };
    from.on("data", (chunk: Buffer) => {
        queue.push({ due: performance.now() + delayMs, chunk });
        if (!timer) timer = setTimeout(flush, Math.max(1, Math.ceil(delayMs)));
    });
    from.on("end", () => {
        const wait = queue.length ? Math.ceil(queue[queue.length - 1].due - performance.now()) + 1 : 0;
        setTimeout(() => to.end(), Math.max(0, wait));
    });
}

export interface ProxyRoute {
    listenHost: string;
    listenPort: number;
    upstreamHost: string;
    upstreamPort: number;
}

/**
 * @param delayMs added delay per direction; a pair [toUpstream, toClient] sets them apart
 *   (node timers tick in whole ms, so 2 + 3 gives a ~5 ms round trip where 2.5 + 2.5 gives ~6.5)
 */
export async function startProxy(routes: ProxyRoute[], delayMs: number | [number, number]): Promise<Server[]> {
    const [up, down] = typeof delayMs === "number" ? [delayMs, delayMs] : delayMs;
    return Promise.all(routes.map((r) => new Promise<Server>((resolve, reject) => {
        const server = createServer((client) => {
            client.setNoDelay(true);
            const upstream = createConnection({ host: r.upstreamHost, port: r.upstreamPort });
            upstream.setNoDelay(true);
            const close = () => {
                client.destroy();
                upstream.destroy();
            };
            client.on("error", close);
            upstream.on("error", close);
            client.on("close", close);
            upstream.on("close", close);
            delayedPipe(client, upstream, up);
            delayedPipe(upstream, client, down);
        });
        server.once("error", reject);
        server.listen(r.listenPort, r.listenHost, () => resolve(server));
    })));
}

export function parseRoute(spec: string): ProxyRoute {
    const [l, u] = spec.split("=");
    const li = l.lastIndexOf(":");
    const ui = u.lastIndexOf(":");
    return { listenHost: l.slice(0, li), listenPort: Number(l.slice(li + 1)), upstreamHost: u.slice(0, ui), upstreamPort: Number(u.slice(ui + 1)) };
}

if (require.main === module) {
    const [delay, ...specs] = process.argv.slice(2);
    const d = delay.split(",").map(Number);
    startProxy(specs.map(parseRoute), d.length === 2 ? [d[0], d[1]] : d[0]).then(() => {
        process.stdout.write("ready\n");
    }, (e) => {
        process.stderr.write(`proxy: ${(e as Error).message}\n`);
        process.exit(1);
    });
}
