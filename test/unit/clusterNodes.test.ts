import { test } from "node:test";
import assert from "node:assert/strict";
import { parseClusterNodes, toRanges, fromRanges, countSlots, formatRanges } from "../../scripts/plan/clusterNodes";

test("parses a 7.x CLUSTER NODES line with hostname, ranges and open slots", () => {
    const text = [
        "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@40004,host-a slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected",
        "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922",
        "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [5461-<-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1] [93->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]",
        "6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@40005 slave,fail? 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 disconnected",
        "824fe116063bc5fcf9f4ffd895bc17aee7731ac3 :0@0 master,noaddr - 1426238316232 1426238316232 0 disconnected 16383",
    ].join("\n");
    const nodes = parseClusterNodes(text);
    assert.equal(nodes.length, 5);
    assert.equal(nodes[0].role, "replica");
    assert.equal(nodes[0].hostname, "host-a");
    assert.equal(nodes[0].masterId, "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca");
    assert.equal(nodes[0].key, "127.0.0.1:30004");
    assert.equal(nodes[0].busPort, 40004);
    assert.deepEqual(nodes[1].slots, [{ start: 5461, end: 10922 }]);
    assert.equal(nodes[2].myself, true);
    assert.equal(nodes[2].importing.get(5461), "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1");
    assert.equal(nodes[2].migrating.get(93), "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f");
    assert.deepEqual(nodes[2].slots, [{ start: 0, end: 5460 }]);
    assert.equal(nodes[3].failing, true);
    assert.equal(nodes[3].linkState, "disconnected");
    assert.equal(nodes[4].host, "");
    assert.deepEqual(nodes[4].slots, [{ start: 16383, end: 16383 }]);
});

test("range helpers round-trip", () => {
    const slots = [5, 1, 2, 3, 9, 10, 16383];
    const r = toRanges(slots);
    assert.equal(formatRanges(r), "1-3,5,9-10,16383");
    assert.deepEqual(fromRanges(r), [1, 2, 3, 5, 9, 10, 16383]);
    assert.equal(countSlots(r), 7);
});
