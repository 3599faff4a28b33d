import assert from "node:assert/strict";
import { test } from "node:test";
import { isAuthError, nodeKey, parseNodeKey } from "../../scripts/plan/node";

test("nodeKey and parseNodeKey are inverses; a bad key names itself", () => {
    assert.equal(nodeKey({ host: "10.0.1.5", port: 6379 }), "10.0.1.5:6379");
    assert.equal(nodeKey({ host: "10.0.1.5", port: "6379" }), "10.0.1.5:6379");
    assert.deepEqual(parseNodeKey("10.0.1.5:6379"), { host: "10.0.1.5", port: 6379 });
    assert.deepEqual(parseNodeKey("[::1]:7000"), { host: "::1", port: 7000 });
    assert.throws(() => parseNodeKey("10.0.1.5"), /Invalid node key "10.0.1.5": expected host:port/);
});

test("isAuthError: every way a node refuses our credentials, and nothing else", () => {
    for (const m of [
        "WRONGPASS invalid username-password pair or user is disabled.",
        "NOAUTH Authentication required.",
        "ERR invalid username-password pair", // Redis 6.0
        "NOPERM this user has no permissions to run the 'cluster' command",
    ]) assert.equal(isAuthError(m), true, m);
    for (const m of ["connect ECONNREFUSED 127.0.0.1:7000", "Connection is closed.", "ERR This instance has cluster support disabled", undefined]) {
        assert.equal(isAuthError(m), false, String(m));
    }
});
