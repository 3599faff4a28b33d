import { test } from "node:test";
import assert from "node:assert/strict";
import { chooseBackupNode } from "../../scripts/plan/backup";

const info = (lines: string[]) => ["# Replication", "role:master", `connected_slaves:${lines.length}`, ...lines, "master_repl_offset:900", ""].join("\r\n");

test("backup node: the in-sync replica with the highest offset, ties by address, else the master", () => {
    assert.deepEqual(chooseBackupNode("10.0.0.1:6379", info([
        "slave0:ip=10.0.0.3,port=6379,state=online,offset=800,lag=0",
        "slave1:ip=10.0.0.2,port=6379,state=online,offset=900,lag=1",
    ])).key, "10.0.0.2:6379");
    assert.equal(chooseBackupNode("m:1", info([
        "slave0:ip=10.0.0.3,port=6379,state=online,offset=900,lag=0",
        "slave1:ip=10.0.0.2,port=6379,state=online,offset=900,lag=0",
    ])).key, "10.0.0.2:6379");
    // Lagging or still syncing replicas are not in sync: a fresher one with a lower offset wins.
    const c = chooseBackupNode("m:1", info([
        "slave0:ip=10.0.0.3,port=6379,state=wait_bgsave,offset=0,lag=0",
        "slave1:ip=10.0.0.2,port=6379,state=online,offset=999,lag=30",
        "slave2:ip=10.0.0.4,port=6379,state=online,offset=500,lag=2",
    ]));
    assert.deepEqual([c.key, c.role], ["10.0.0.4:6379", "replica"]);
    const m = chooseBackupNode("10.0.0.1:6379", info(["slave0:ip=10.0.0.2,port=6379,state=online,offset=1,lag=11"]));
    assert.deepEqual([m.key, m.role], ["10.0.0.1:6379", "master"]);
    assert.match(m.reason, /no replica in sync \(10\.0\.0\.2:6379 online lag 11s\)/);
    assert.equal(chooseBackupNode("10.0.0.1:6379", info([])).reason, "the shard has no replica");
});
