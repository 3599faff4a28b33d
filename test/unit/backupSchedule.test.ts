import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { backupScheduleProblem, timerCalendar } from "../../components/backupSchedule";
import { ConfigError, parseStackConfig } from "../../components/config";

const SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze";
function systemdAccepts(expr: string): boolean {
    if (!existsSync(SYSTEMD_ANALYZE)) throw new Error("systemd-analyze is missing: apt-get install -y systemd");
    return spawnSync(SYSTEMD_ANALYZE, ["calendar", expr], { encoding: "utf8" }).status === 0;
}

const accepted = ["daily", "hourly", "weekly", "semiannually", "*-*-* 03:00", "*-*-* 03:00:00 UTC", "Mon..Fri 02:30", "Mon,Wed *-*-* 02:30:00",
    "2026-12-01 03:00", "12-01 03:00", "*:0/15", "Mon", "0/2:00", "*-*-1..7 04:00", "Sat,Sun 23:45 UTC"];
const systemdRefuses = ["*-*-* 25:00", "*-*-* 03:60", "Mon..Foo 03:00", "03:00 *-*-*", "*-13-01 00:00", "*-*-* 3:00/0", "sometimes"];
const oursOnly = ["*-*-* 03:00:30", "*:*:0/10", "*-*-* 03:00 Europe/Paris", "*-*~1 03:00"];

test("backupSchedule: what we accept, systemd accepts too (as the timer renders it, in UTC)", () => {
    for (const e of accepted) {
        assert.equal(backupScheduleProblem(e), undefined, e);
        assert.ok(systemdAccepts(timerCalendar(e)), `systemd-analyze calendar "${timerCalendar(e)}"`);
    }
});

test("backupSchedule: what systemd refuses, we refuse", () => {
    for (const e of systemdRefuses) {
        assert.equal(systemdAccepts(e), false, `systemd accepts "${e}": fix the table`);
        assert.ok(backupScheduleProblem(e), e);
    }
});

test("backupSchedule: seconds, time zones and ~ are refused on purpose, with the reason", () => {
    for (const e of oursOnly) assert.ok(systemdAccepts(e), e);
    assert.match(backupScheduleProblem("*-*-* 03:00:30")!, /seconds must be 00/);
    assert.match(backupScheduleProblem("*-*-* 03:00 Europe/Paris")!, /only UTC/);
    assert.match(backupScheduleProblem("*-*~1 03:00")!, /~/);
});

test("backupSchedule: stack config default, off, and the message for a bad value", () => {
    const parse = (v: Record<string, unknown>) => parseStackConfig((k) => v[k] as never, { project: "redis-cluster", stack: "u" });
    assert.equal(parse({}).backupSchedule, "daily");
    assert.equal(parse({ backupSchedule: "off" }).backupSchedule, "off");
    assert.equal(parse({ backupSchedule: "*-*-* 03:00" }).backupSchedule, "*-*-* 03:00");
    try {
        parse({ backupSchedule: "*-*-* 25:00" });
        assert.fail("expected a ConfigError");
    } catch (e) {
        assert.ok(e instanceof ConfigError);
        assert.deepEqual(e.problems, [`redis-cluster:backupSchedule must be a systemd OnCalendar expression in UTC such as daily, hourly or "*-*-* 03:00", or off: hour 25 is outside 0..23 (got "*-*-* 25:00")`]);
    }
});
