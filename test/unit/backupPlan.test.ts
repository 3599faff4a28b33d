import { test } from "node:test";
import assert from "node:assert/strict";
import { backupCandidates } from "../../scripts/plan/backup";

const info = (lines: string[]) => ["# Replication", "role:master", `connected_slaves:${lines.length}`, ...lines, "master_repl_offset:900", ""].join("\r\n");
const ID = (c: string) => c.repeat(40);
const replicas = [{ key: "10.0.0.3:6379", id: ID("b") }, { key: "10.0.0.2:6379", id: ID("c") }, { key: "10.0.0.4:6379", id: ID("a") }];

test("backup candidates: in-sync replicas by smallest node id (not by offset, which moves), then the master", () => {
    const c = backupCandidates({ masterKey: "10.0.0.1:6379", masterId: ID("f"), replicas, infoReplication: info([
        "slave0:ip=10.0.0.3,port=6379,state=online,offset=800,lag=0",
        "slave1:ip=10.0.0.2,port=6379,state=online,offset=900,lag=1",
        "slave2:ip=10.0.0.4,port=6379,state=online,offset=100,lag=3",
    ]) });
    assert.deepEqual(c.map((x) => [x.key, x.role]), [["10.0.0.4:6379", "replica"], ["10.0.0.3:6379", "replica"], ["10.0.0.2:6379", "replica"], ["10.0.0.1:6379", "master"]]);
    assert.equal(c[0].reason, "in-sync replica with the smallest node id");
    // The same facts with other offsets give the same order: two nodes reading the master a moment apart agree.
    const later = backupCandidates({ masterKey: "10.0.0.1:6379", masterId: ID("f"), replicas, infoReplication: info([
        "slave0:ip=10.0.0.3,port=6379,state=online,offset=1800,lag=0",
        "slave1:ip=10.0.0.2,port=6379,state=online,offset=1700,lag=0",
        "slave2:ip=10.0.0.4,port=6379,state=online,offset=1900,lag=0",
    ]) });
    assert.deepEqual(later.map((x) => x.key), c.map((x) => x.key));
});

test("backup candidates: lagging, syncing or disconnected replicas are not candidates; without one the master alone", () => {
    const c = backupCandidates({ masterKey: "m:1", masterId: ID("f"), replicas, maxLagSec: 10, infoReplication: info([
        "slave0:ip=10.0.0.3,port=6379,state=wait_bgsave,offset=0,lag=0",
        "slave1:ip=10.0.0.2,port=6379,state=online,offset=999,lag=11",
    ]) });
    assert.deepEqual(c.map((x) => [x.key, x.role]), [["m:1", "master"]]);
    assert.equal(c[0].reason, "no replica in sync (10.0.0.3:6379 wait_bgsave lag 0s, 10.0.0.2:6379 online lag 11s, 10.0.0.4:6379 not connected)");
    // A replica line for a node that is not this master's replica in CLUSTER NODES does not count.
    const stray = backupCandidates({ masterKey: "m:1", masterId: ID("f"), replicas: [], infoReplication: info(["slave0:ip=10.0.0.9,port=6379,state=online,offset=9,lag=0"]) });
    assert.deepEqual(stray.map((x) => [x.key, x.reason]), [["m:1", "the shard has no replica"]]);
});
