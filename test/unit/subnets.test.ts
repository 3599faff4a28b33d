import { test } from "node:test";
import assert from "node:assert/strict";
import {
    planSubnets, planSubnet, nodeCapacityPerSubnet, cidrContains, ipToInt, intToIp, splitCidr, SUBNET_SLOTS,
} from "../../components/plan/subnets";

const sizeOf = (cidr: string) => 2 ** (32 - splitCidr(cidr).prefix);

test("subnets: table of VPC CIDRs", () => {
    const cases: Array<[string, number, string[], string, number]> = [
        // vpcCidr, zones, subnet CIDRs, zone 0 node range, node capacity per subnet
        ["10.42.0.0/16", 3, ["10.42.0.0/19", "10.42.32.0/19", "10.42.64.0/19"], "10.42.16.0/20", 4094],
        ["10.0.0.0/20", 2, ["10.0.0.0/23", "10.0.2.0/23"], "10.0.1.0/24", 254],
        ["192.168.7.0/24", 1, ["192.168.7.0/27"], "192.168.7.16/28", 14],
        ["172.16.0.0/16", 6, ["172.16.0.0/19", "172.16.32.0/19", "172.16.64.0/19", "172.16.96.0/19", "172.16.128.0/19", "172.16.160.0/19"], "172.16.16.0/20", 4094],
    ];
    for (const [vpc, zones, cidrs, range0, cap] of cases) {
        const plan = planSubnets(vpc, zones);
        assert.deepEqual(plan.map((s) => s.cidr), cidrs, vpc);
        assert.equal(plan[0].nodeRangeCidr, range0, vpc);
        assert.equal(plan[0].nodeCapacity, cap, vpc);
        assert.equal(nodeCapacityPerSubnet(vpc), cap, vpc);
    }
});

test("subnets: a zone's subnet does not depend on the zone count", () => {
    for (const vpc of ["10.42.0.0/16", "10.8.0.0/18", "10.9.3.0/24"]) {
        for (let z = 1; z <= 6; z++) {
            const plan = planSubnets(vpc, z);
            plan.forEach((s, i) => assert.deepEqual(s, planSubnet(vpc, i)));
        }
    }
});

test("subnets: property — inside the VPC, disjoint, node range is the upper half and at least /28 subnets", () => {
    let seed = 7;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
    for (let i = 0; i < 300; i++) {
        const prefix = 16 + rnd(9); // 16..24
        const size = 2 ** (32 - prefix);
        const base = (10 * 2 ** 24) + Math.floor(rnd(2 ** 24) / size) * size;
        const vpc = `${intToIp(base)}/${prefix}`;
        const zones = 1 + rnd(6);
        const plan = planSubnets(vpc, zones);
        assert.equal(plan.length, zones);
        const spans = plan.map((s) => { const c = splitCidr(s.cidr); return [c.base, c.base + 2 ** (32 - c.prefix)] as const; });
        for (const [i, s] of plan.entries()) {
            assert.ok(splitCidr(s.cidr).prefix <= 28, `${s.cidr} smaller than /28`);
            assert.ok(cidrContains(vpc, intToIp(spans[i][0])) && cidrContains(vpc, intToIp(spans[i][1] - 1)), `${s.cidr} outside ${vpc}`);
            assert.equal(sizeOf(s.nodeRangeCidr) * 2, sizeOf(s.cidr));
            assert.equal(ipToInt(s.nodeRangeCidr.split("/")[0]), spans[i][0] + sizeOf(s.cidr) / 2);
            assert.ok(cidrContains(s.nodeRangeCidr, s.firstNodeAddress));
            for (const [j] of plan.entries()) if (j !== i) assert.ok(spans[i][1] <= spans[j][0] || spans[j][1] <= spans[i][0], `${s.cidr} overlaps ${plan[j].cidr}`);
        }
    }
});

test("subnets: malformed input is refused with the reason", () => {
    assert.throws(() => planSubnets("10.42.0.1/16", 3), /host bits are set \(the network is 10\.42\.0\.0\/16\)/);
    assert.throws(() => planSubnets("10.42.0.0", 3), /expected an IPv4 CIDR/);
    assert.throws(() => planSubnets("10.42.0.0/26", 3), /too small: 8 subnets of at least \/28 need a \/25 or larger VPC/);
    assert.throws(() => planSubnets("10.42.0.0/16", SUBNET_SLOTS + 1), /zones must be an integer from 1 to 8 \(got 9\)/);
    assert.equal(ipToInt("10.0.0.256"), undefined);
});
