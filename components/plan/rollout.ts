/**
 * Pure rollout decisions: which instance properties the engine must hold at
 * their deployed values for a node, and what differs between a node's deployed
 * and desired instance. No `@pulumi/*` import. Design: docs/operations-roll.md.
 */
import { createHash } from "node:crypto";

/**
 * Instance inputs that stop or replace a running instance when they change
 * (instance type, user data: stop/start; AMI: replacement). `creditSpecification`
 * follows the instance type (set only for burstable types), so it is held with it.
 */
export const ROLLED_INSTANCE_FIELDS = ["instanceType", "creditSpecification", "userDataBase64", "ami"] as const;

/**
 * The `ignoreChanges` of a node's instance. Every node but the one named in the
 * `rollout` config key keeps its deployed values (the engine uses the state's, and
 * the program's only when creating). A looked-up AMI is never rolled: it moves
 * whenever Amazon publishes an image; pin `amiId` to patch the OS.
 */
export function instanceIgnoreChanges(node: string, rollout: string | undefined, amiPinned: boolean): string[] {
    if (node === rollout) return amiPinned ? [] : ["ami"];
    return [...ROLLED_INSTANCE_FIELDS];
}

/** What a node's instance runs, or should run. */
export interface InstanceSpec {
    instanceType: string;
    ami: string;
    userDataBase64: string;
}

export interface FieldChange {
    field: "instanceType" | "ami" | "userData";
    from: string;
    to: string;
}

/** One node whose instance differs from the desired state: the `pendingNodeChanges` output. */
export interface PendingNodeChange {
    node: string;
    /** URN of the node's EC2 instance: what `roll` targets. */
    instanceUrn: string;
    changes: FieldChange[];
}

/** Short, stable fingerprint of a user-data blob (the blob itself is kilobytes of base64). */
export function userDataDigest(userDataBase64: string): string {
    return `sha256:${createHash("sha256").update(userDataBase64).digest("hex").slice(0, 12)}`;
}

/**
 * The fields in which `deployed` differs from `desired`. The AMI counts only when
 * pinned (a looked-up one is never rolled, see instanceIgnoreChanges).
 */
export function instanceChanges(deployed: InstanceSpec, desired: InstanceSpec, amiPinned: boolean): FieldChange[] {
    const out: FieldChange[] = [];
    if (deployed.instanceType !== desired.instanceType) out.push({ field: "instanceType", from: deployed.instanceType, to: desired.instanceType });
    if (amiPinned && deployed.ami !== desired.ami) out.push({ field: "ami", from: deployed.ami, to: desired.ami });
    if (deployed.userDataBase64 !== desired.userDataBase64) {
        out.push({ field: "userData", from: userDataDigest(deployed.userDataBase64), to: userDataDigest(desired.userDataBase64) });
    }
    return out;
}

/** Problems with a `rollout` value: it must name one node of the shape. */
export function rolloutProblems(rollout: string | undefined, nodeNames: string[], key: string): string[] {
    if (rollout === undefined) return [];
    if (nodeNames.includes(rollout)) return [];
    return [`${key} must name one node of the cluster (got ${JSON.stringify(rollout)}; nodes: ${nodeNames.join(", ")}). ` +
        `Only \`npm run cluster -- roll\` sets it, for one node at a time; remove it with: pulumi config rm ${key}`];
}
