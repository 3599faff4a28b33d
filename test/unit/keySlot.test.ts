import { test } from "node:test";
import assert from "node:assert/strict";
import { keySlot } from "../../scripts/redis/keySlot";

test("keySlot: Redis' own values (CLUSTER KEYSLOT) including hash tags and binary keys", () => {
    // Values from redis-cli CLUSTER KEYSLOT on Redis 7.0, and the cluster spec's examples.
    assert.equal(keySlot(Buffer.from("foo")), 12182);
    assert.equal(keySlot(Buffer.from("123456789")), 0x31c3 & 16383);
    assert.equal(keySlot(Buffer.from("{user1000}.following")), keySlot(Buffer.from("user1000")));
    assert.equal(keySlot(Buffer.from("foo{}{bar}")), keySlot(Buffer.from("foo{}{bar}")));
    assert.notEqual(keySlot(Buffer.from("foo{}{bar}")), keySlot(Buffer.from("bar")), "an empty {} is not a tag: the whole key is hashed");
    assert.equal(keySlot(Buffer.from("foo{{bar}}zap")), keySlot(Buffer.from("{bar")));
    assert.equal(keySlot(Buffer.from([0xff, 0x00, 0xfe])), keySlot(Buffer.from([0xff, 0x00, 0xfe])));
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const ref = require("cluster-key-slot") as (s: string) => number;
    for (let i = 0; i < 2000; i++) assert.equal(keySlot(Buffer.from(`k:${i}`)), ref(`k:${i}`));
});
