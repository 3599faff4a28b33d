/**
 * The quick versions of the drills (`npm run drill -- <name> --quick`): each
 * fails the suite when one of its promises breaks, and the report carries the
 * figures measured. zone-loss needs root and namespaces, so it runs by hand only.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DrillReport, renderReport } from "../../scripts/drill/common";
import { masterKill } from "../../scripts/drill/masterKill";
import { reshardChaos } from "../../scripts/drill/reshardChaos";
import { badInput } from "../../scripts/drill/badInput";

function verdict(t: { diagnostic(s: string): void }, r: DrillReport): void {
    t.diagnostic(renderReport(r));
    const broken = r.promises.filter((p) => !p.kept);
    assert.deepEqual(broken, [], `drill ${r.drill}: broken promises`);
    assert.ok(r.promises.length > 0);
}

test("drill master-kill --quick: promotion within bounds, no WAIT 1 write lost", { timeout: 90_000 }, async (t) => {
    const r = await masterKill({ quick: true });
    verdict(t, r);
    assert.equal(r.figures["wait1.acknowledgedThenLost"], 0);
    assert.ok(Number(r.figures["wait1.writesAcknowledged"]) > 0, "the writer wrote");
});

test("drill reshard-chaos --quick: killed scale runs resume with every key", { timeout: 120_000 }, async (t) => {
    const r = await reshardChaos({ quick: true });
    verdict(t, r);
    assert.equal(r.figures.keysLost, 0);
});

test("drill bad-input --quick: every bad input refused, the cluster unchanged", { timeout: 120_000 }, async (t) => {
    const r = await badInput({ quick: true });
    verdict(t, r);
    assert.ok(r.promises.length >= 15, `${r.promises.length} cases`);
});
