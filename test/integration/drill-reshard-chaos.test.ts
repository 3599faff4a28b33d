/** `npm run drill -- reshard-chaos --quick`: killed scale runs, each rerun once. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { reshardChaos } from "../../scripts/drill/reshardChaos";
import { assertDrill } from "../helpers/drill";

test("drill reshard-chaos --quick: killed scale runs resume with every key", { timeout: 120_000 }, async (t) => {
    const r = await reshardChaos({ quick: true });
    assertDrill(t, r);
    assert.equal(r.figures.keysLost, 0);
});
