import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { tmpdir } from "node:os";

const bin = join(__dirname, "..", "..", "scripts", "bin", "redis-cluster.js");

// The installed entry point runs under plain `node` (no --import tsx): every command
// module must load through it, and usage errors must exit 2 with a readable message.
for (const args of [["status"], ["scale"], ["forget", "x"], ["reconfigure"], ["flushall"]]) {
    test(`bin: ${args[0]} loads and reports a missing topology file with exit 2`, () => {
        const r = spawnSync(process.execPath, [bin, ...args, "--topology", join(tmpdir(), "no-such-topology.json")], { encoding: "utf8", cwd: tmpdir() });
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr, /--topology .*no-such-topology\.json: no such file/);
        assert.doesNotMatch(r.stderr, /internal error|ERR_MODULE_NOT_FOUND/);
    });
}
