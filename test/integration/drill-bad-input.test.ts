/** `npm run drill -- bad-input --quick`: every refusal leaves the cluster as it was. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { badInput } from "../../scripts/drill/badInput";
import { assertDrill } from "../helpers/drill";

test("drill bad-input --quick: every bad input refused, the cluster unchanged", { timeout: 120_000 }, async (t) => {
    const r = await badInput({ quick: true });
    assertDrill(t, r);
    assert.ok(r.promises.length >= 13, `${r.promises.length} cases`);
});
