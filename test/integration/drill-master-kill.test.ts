/** `npm run drill -- master-kill --quick`: fails on a broken promise (zone-loss needs root and runs by hand). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { masterKill } from "../../scripts/drill/masterKill";
import { assertDrill } from "../helpers/drill";

test("drill master-kill --quick: promotion within bounds, no WAIT 1 write lost", { timeout: 90_000 }, async (t) => {
    const r = await masterKill({ quick: true });
    assertDrill(t, r);
    assert.equal(r.figures["wait1.acknowledgedThenLost"], 0);
    assert.ok(Number(r.figures["wait1.writesAcknowledged"]) > 0, "the writer wrote");
});
