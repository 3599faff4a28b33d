/**
 * Runs a shell command on the nodes of a deployed stack: SSM Run Command
 * (AWS-RunShellScript), so `backup --stack` starts the very service the timer starts
 * and there is one backup implementation, on the nodes. Behind an interface so tests
 * can feed it (test/integration/backupCommand.test.ts runs the node script locally).
 */

export interface NodeTarget {
    instanceId: string;
    /** Topology name, for messages. */
    name: string;
}

export interface NodeRunResult extends NodeTarget {
    ok: boolean;
    /** SSM status (Success, Failed, TimedOut ...) or the runner's own. */
    status: string;
    /** The end of the command's output (stdout, then stderr). */
    output: string;
}

export interface NodeCommandRunner {
    /** Runs `command` as root on every target in parallel and waits for all of them. */
    run(targets: NodeTarget[], command: string, opts: { timeoutSec: number; comment: string; signal?: AbortSignal; onDone?: (r: NodeRunResult) => void }): Promise<NodeRunResult[]>;
}

const TERMINAL = new Set(["Success", "Failed", "Cancelled", "TimedOut", "Cancelling", "Undeliverable", "Terminated", "InvalidPlatform", "AccessDenied", "DeliveryTimedOut", "ExecutionTimedOut"]);

/** SSM Run Command. The nodes' role has AmazonSSMManagedInstanceCore; the caller needs ssm:SendCommand and ssm:GetCommandInvocation. */
export function ssmRunner(region?: string): NodeCommandRunner {
    return {
        async run(targets, command, opts) {
            const { SSMClient, SendCommandCommand, GetCommandInvocationCommand } = await import("@aws-sdk/client-ssm");
            const ssm = new SSMClient({ region: region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION });
            const results: NodeRunResult[] = [];
            // SendCommand takes at most 50 instance ids.
            for (let i = 0; i < targets.length; i += 50) {
                const batch = targets.slice(i, i + 50);
                const sent = await ssm.send(new SendCommandCommand({
                    DocumentName: "AWS-RunShellScript",
                    InstanceIds: batch.map((t) => t.instanceId),
                    Comment: opts.comment.slice(0, 100),
                    Parameters: { commands: [command], executionTimeout: [String(opts.timeoutSec)] },
                }));
                const commandId = sent.Command!.CommandId!;
                results.push(...await Promise.all(batch.map(async (t): Promise<NodeRunResult> => {
                    let delay = 1000;
                    for (;;) {
                        if (opts.signal?.aborted) return { ...t, ok: false, status: "Interrupted", output: `SSM command ${commandId} still runs on the node` };
                        await new Promise((r) => setTimeout(r, delay));
                        delay = Math.min(delay * 1.5, 10_000);
                        try {
                            const inv = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: t.instanceId }));
                            if (inv.Status && TERMINAL.has(inv.Status)) {
                                const r = { ...t, ok: inv.Status === "Success", status: inv.Status, output: `${inv.StandardOutputContent ?? ""}${inv.StandardErrorContent ?? ""}` };
                                opts.onDone?.(r);
                                return r;
                            }
                        } catch (e) {
                            // Right after SendCommand the invocation may not exist yet.
                            if ((e as { name?: string }).name !== "InvocationDoesNotExist") throw e;
                        }
                    }
                })));
            }
            return results;
        },
    };
}
