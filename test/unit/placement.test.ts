import { test } from "node:test";
import assert from "node:assert/strict";
import { planNodes, zoneOf, maxShardsThatFit, placementProblems, NodePlan } from "../../components/plan/placement";
import { cidrContains, planSubnet, splitCidr, ipToInt } from "../../components/plan/subnets";

const base = { clusterName: "c", vpcCidr: "10.42.0.0/16" };
const byName = (nodes: NodePlan[]) => new Map(nodes.map((n) => [n.name, n]));

test("placement: table of zones for 3 shards × 2 replicas over 3 zones", () => {
    const nodes = planNodes({ ...base, shards: 3, replicasPerShard: 2, zones: 3 });
    assert.deepEqual(nodes.map((n) => `${n.name}@${n.zoneIndex}:${n.privateIp}`), [
        "c-s0-r0@0:10.42.16.1", "c-s0-r1@1:10.42.48.2", "c-s0-r2@2:10.42.80.3",
        "c-s1-r0@1:10.42.48.1", "c-s1-r1@2:10.42.80.2", "c-s1-r2@0:10.42.16.3",
        "c-s2-r0@2:10.42.80.1", "c-s2-r1@0:10.42.16.2", "c-s2-r2@1:10.42.48.3",
    ]);
});

test("placement: table of zoneOf", () => {
    const cases: Array<[number, number, number, number]> = [
        [0, 0, 3, 0], [1, 0, 3, 1], [2, 0, 3, 2], [3, 0, 3, 0], [0, 1, 3, 1], [2, 1, 3, 0], [4, 5, 6, 3], [7, 2, 1, 0],
    ];
    for (const [s, r, z, want] of cases) assert.equal(zoneOf(s, r, z), want, `zoneOf(${s}, ${r}, ${z})`);
});

function* shapes() {
    for (const zones of [1, 2, 3, 4, 6]) {
        for (const replicasPerShard of [0, 1, 2, 5]) {
            for (const shards of [3, 4, 7, 12, 40]) {
                for (const vpcCidr of ["10.42.0.0/16", "10.1.0.0/20", "10.2.3.0/24"]) {
                    if (maxShardsThatFit(vpcCidr, zones, replicasPerShard) >= shards) yield { clusterName: "c", shards, replicasPerShard, zones, vpcCidr };
                }
            }
        }
    }
}

test("placement: property — distinct IPs, each inside its zone's subnet node range, distinct zones per shard, masters spread", () => {
    let count = 0;
    for (const cfg of shapes()) {
        count++;
        const nodes = planNodes(cfg);
        assert.equal(nodes.length, cfg.shards * (1 + cfg.replicasPerShard));
        const ips = new Set(nodes.map((n) => n.privateIp));
        assert.equal(ips.size, nodes.length, `duplicate IP in ${JSON.stringify(cfg)}`);
        for (const n of nodes) {
            const subnet = planSubnet(cfg.vpcCidr, n.zoneIndex);
            assert.equal(n.subnetCidr, subnet.cidr);
            assert.ok(cidrContains(subnet.nodeRangeCidr, n.privateIp), `${n.privateIp} outside ${subnet.nodeRangeCidr}`);
            const { base: sb, prefix } = splitCidr(subnet.cidr);
            const ip = ipToInt(n.privateIp)!;
            assert.ok(ip >= sb + 4 && ip < sb + 2 ** (32 - prefix) - 1, `${n.privateIp} is an AWS-reserved address of ${subnet.cidr}`);
            assert.ok(n.zoneIndex >= 0 && n.zoneIndex < cfg.zones);
        }
        for (let s = 0; s < cfg.shards; s++) {
            const zs = nodes.filter((n) => n.shard === s).map((n) => n.zoneIndex);
            assert.equal(new Set(zs).size, Math.min(cfg.zones, 1 + cfg.replicasPerShard), `shard ${s} zones ${zs} in ${JSON.stringify(cfg)}`);
        }
        const masters = nodes.filter((n) => n.replica === 0).map((n) => n.zoneIndex);
        const perZone = Array.from({ length: cfg.zones }, (_, z) => masters.filter((m) => m === z).length);
        assert.ok(Math.max(...perZone) - Math.min(...perZone) <= 1, `masters not spread: ${perZone}`);
    }
    assert.ok(count > 150, `only ${count} shapes exercised`);
});

test("placement: property — growing shards or replicas never moves an existing node", () => {
    for (const small of shapes()) {
        for (const [dS, dR] of [[1, 0], [0, 1], [5, 2]]) {
            const big = { ...small, shards: small.shards + dS, replicasPerShard: Math.min(5, small.replicasPerShard + dR) };
            if (maxShardsThatFit(big.vpcCidr, big.zones, big.replicasPerShard) < big.shards) continue;
            const after = byName(planNodes(big));
            for (const n of planNodes(small)) assert.deepEqual(after.get(n.name), n, `${n.name} moved going ${JSON.stringify(small)} -> ${JSON.stringify(big)}`);
        }
    }
});

test("placement: maxShardsThatFit is exact", () => {
    for (const cfg of [{ vpcCidr: "10.2.3.0/24", zones: 3, r: 1 }, { vpcCidr: "10.1.0.0/22", zones: 2, r: 5 }, { vpcCidr: "10.2.3.0/24", zones: 1, r: 0 }]) {
        const fit = maxShardsThatFit(cfg.vpcCidr, cfg.zones, cfg.r);
        assert.doesNotThrow(() => planNodes({ clusterName: "c", shards: fit, replicasPerShard: cfg.r, zones: cfg.zones, vpcCidr: cfg.vpcCidr }));
        assert.throws(() => planNodes({ clusterName: "c", shards: fit + 1, replicasPerShard: cfg.r, zones: cfg.zones, vpcCidr: cfg.vpcCidr }), /do not fit/);
    }
    assert.equal(maxShardsThatFit("10.2.3.0/24", 3, 1), 9);
    assert.equal(maxShardsThatFit("10.42.0.0/16", 3, 5), 2046);
});

test("placement: a shape that does not fit names the keys and what would fit", () => {
    assert.deepEqual(placementProblems({ shards: 12, replicasPerShard: 1, zones: 3, vpcCidr: "10.1.2.0/24" }), [
        `redis-cluster:shards × (1 + redis-cluster:replicasPerShard) = 12 × 2 nodes do not fit the fixed node addresses of redis-cluster:vpcCidr "10.1.2.0/24" over redis-cluster:zones 3 (each zone's subnet holds 14 node addresses, 6 reserved per shard): at most 9 shards fit with 1 replica per shard, or use a vpcCidr of /23 or larger (e.g. "10.1.2.0/23"), or more redis-cluster:zones`,
    ]);
    assert.deepEqual(placementProblems({ shards: 3, replicasPerShard: 1, zones: 3, vpcCidr: "10.1.2.0/24" }), []);
});
