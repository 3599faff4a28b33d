import assert from "node:assert/strict";
import { DrillReport, renderReport } from "../../scripts/drill/common";

/** Fails the test on any broken promise of a drill; the report goes to the test's diagnostics. */
export function assertDrill(t: { diagnostic(s: string): void }, r: DrillReport): void {
    t.diagnostic(renderReport(r));
    assert.ok(r.promises.length > 0, "the drill checked something");
    assert.deepEqual(r.promises.filter((p) => !p.kept), [], `drill ${r.drill}: broken promises`);
}
