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

/**
 * Families on the Xen hypervisor (AWS: "Instances built on the Nitro System"
 * lists everything else). Their EBS volumes are not NVMe devices with the
 * volume id as serial, which is how the boot script finds the data volume.
 * `.metal` sizes are Nitro hardware (i3.metal). lookupEnvironment also asks EC2
 * (DescribeInstanceTypes' EbsInfo.NvmeSupport), which covers any family this
 * list misses.
 */
export const XEN_FAMILIES: readonly string[] = [
    "t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "cc2", "cg1", "cr1", "r3", "r4",
    "x1", "x1e", "i2", "i3", "d2", "h1", "hi1", "hs1", "g2", "g3", "g3s", "p2", "p3", "f1",
];

/** Whether an instance type runs on Xen (no NVMe EBS), by its family. */
export function isXenInstanceType(instanceType: string): boolean {
    const [family, size] = instanceType.split(".");
    return XEN_FAMILIES.includes(family ?? "") && size !== "metal";
}

/** First Amazon Linux 2023 release with the `valkey` package (amazonlinux/amazon-linux-2023#833: 2023.6.20250203). */
export const VALKEY_FIRST_AL2023_RELEASE = "20250203";

/**
 * Release date (YYYYMMDD) of an Amazon Linux 2023 AMI from its name
 * (`al2023-ami-2023.6.20250203.1-kernel-6.1-arm64`, also `-minimal-`, `-ecs-hvm-`),
 * or undefined for any other image.
 */
export function al2023ReleaseDate(amiName: string): string | undefined {
    return /^al2023-ami-(?:[a-z-]+-)?2023\.\d+\.(\d{8})/.exec(amiName)?.[1];
}

/**
 * What an engine needs from the AMI: refusals (`errors`, each naming the key,
 * value and fix) and what cannot be checked (`warnings`). Each AMI is locked to
 * its own release's repository, so an older one cannot install valkey.
 */
export function engineAmiProblems(a: { engine: string; amiId: string; amiName: string; amiArchitecture: string; instanceType: string }): { errors: string[]; warnings: string[] } {
    const errors: string[] = [];
    const warnings: string[] = [];
    const arch = architectureOf(a.instanceType);
    if (a.amiArchitecture && a.amiArchitecture !== arch) {
        errors.push(`redis-cluster:amiId ${a.amiId} (${a.amiName}) is ${a.amiArchitecture}, but redis-cluster:instanceType ${a.instanceType} is ${arch}; pin an ${arch} AMI or unset amiId`);
    }
    const date = al2023ReleaseDate(a.amiName);
    if (date === undefined) {
        warnings.push(`redis-cluster:amiId ${a.amiId} (${a.amiName || "no name"}) is not an Amazon Linux 2023 image: the boot script needs dnf with the ${a.engine} package, systemd and curl; this could not be checked`);
    } else if (a.engine === "valkey" && date < VALKEY_FIRST_AL2023_RELEASE) {
        errors.push(`redis-cluster:engine is valkey, but redis-cluster:amiId ${a.amiId} (${a.amiName}) is an Amazon Linux 2023 release of ${date}, before valkey was added (2023.6.${VALKEY_FIRST_AL2023_RELEASE}); pin a newer AMI, unset amiId, or set redis-cluster:engine to redis6`);
    }
    return { errors, warnings };
}
