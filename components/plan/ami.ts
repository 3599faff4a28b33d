/**
 * Pure AMI selection helpers: which Amazon Linux 2023 image fits an instance type.
 * No `@pulumi/*` import.
 */

export type Architecture = "arm64" | "x86_64";

/**
 * Graviton families carry a "g" right after the generation digit (t4g, r7g,
 * m7gd, c7gn, x2gd, is4gen, g5g, hpc7g); a1 is the first Graviton. Everything
 * else (m7i, r7a, c6in, g4dn, ...) is x86_64.
 */
export function architectureOf(instanceType: string): Architecture {
    const family = instanceType.split(".")[0] ?? "";
    if (family === "a1") return "arm64";
    return /^[a-z]+\d+g[a-z]*$/.test(family) ? "arm64" : "x86_64";
}

/** Name filter for Amazon Linux 2023 standard AMIs (not minimal, not ECS) of an architecture. */
export function al2023AmiNamePattern(arch: Architecture): string {
    return `al2023-ami-2023.*-kernel-*-${arch}`;
}

/** Burstable families (T) bill CPU credits; `unlimited` would hide a saturated node behind a bill. */
export function isBurstable(instanceType: string): boolean {
    return /^t\d/.test(instanceType);
}
