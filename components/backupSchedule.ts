/**
 * `backupSchedule`: a systemd `OnCalendar` expression (systemd.time(7), "CALENDAR
 * EVENTS"), or `off`. Checked here, in pure TypeScript, so `pulumi preview` refuses a
 * bad expression before any node runs it; test/unit/backupSchedule.test.ts checks
 * the grammar against `systemd-analyze calendar`.
 *
 * Accepted: the shorthands (`daily`, `hourly`, `weekly` ...) and
 * `[weekdays] [[YYYY-]MM-DD] [HH:MM[:SS]] [UTC]` where each field is `*`, a number,
 * a list (`,`), a range (`..`) or a repetition (`/`). Refused on purpose, though systemd
 * takes them: seconds other than 00 (every node of a cluster derives the backup id
 * from the minute its timer fired, so two runs within a minute would share an id),
 * time zones other than UTC (backup ids are UTC), and `~` (last days of the month).
 */

export const BACKUP_SCHEDULE_OFF = "off";
export const DEFAULT_BACKUP_SCHEDULE = "daily";

const SHORTHANDS = ["minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly", "semiannually"];
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/** One calendar component: `*`, `n`, `a..b`, `n/step`, `*\/step`, or a comma list of these. */
function componentProblem(text: string, what: string, min: number, max: number): string | undefined {
    for (const item of text.split(",")) {
        const m = /^(\*|\d+(?:\.\.\d+)?)(?:\/(\d+))?$/.exec(item);
        if (!m) return `${what} "${item}" is not *, a number, a range a..b or a repetition x/step`;
        if (m[1] !== "*") {
            const [a, b] = m[1].split("..").map(Number);
            for (const n of [a, b].filter((x) => x !== undefined)) {
                if (n < min || n > max) return `${what} ${n} is outside ${min}..${max}`;
            }
            if (b !== undefined && b < a) return `${what} range ${m[1]} runs backwards`;
        }
        if (m[2] !== undefined && Number(m[2]) === 0) return `${what} repetition /0 never advances`;
    }
    return undefined;
}

/** Why the expression is not a schedule this project accepts; undefined when it is. */
export function backupScheduleProblem(expr: string): string | undefined {
    const e = expr.trim();
    if (e === "") return "it is empty (use off to disable backups)";
    if (e === BACKUP_SCHEDULE_OFF || SHORTHANDS.includes(e.toLowerCase())) return undefined;
    const tokens = e.split(/\s+/);
    if (/^utc$/i.test(tokens[tokens.length - 1])) tokens.pop();
    if (tokens.length && /^[A-Za-z]/.test(tokens[0]) && !/^utc$/i.test(tokens[0])) {
        for (const item of tokens.shift()!.split(",")) {
            const names = item.split("..");
            if (names.length > 2 || names.some((n) => !WEEKDAYS.includes(n.toLowerCase()))) return `"${item}" is not a weekday (Mon..Sun) or a range of them`;
        }
    }
    let date: string | undefined;
    let time: string | undefined;
    for (const t of tokens) {
        if (t.includes(":") && time === undefined && !t.includes("-")) time = t;
        else if (t.includes("-") && date === undefined && time === undefined) date = t;
        else if (/^[A-Za-z]/.test(t)) return `"${t}": only UTC is accepted as a time zone (backup ids are UTC)`;
        else return `"${t}" is neither a date [YYYY-]MM-DD nor a time HH:MM[:SS] (or comes in the wrong place)`;
    }
    if (e.includes("~")) return "~ (last days of the month) is not supported";
    if (date !== undefined) {
        const parts = date.split("-");
        if (parts.length < 2 || parts.length > 3) return `date "${date}" must be [YYYY-]MM-DD`;
        const [y, mo, d] = parts.length === 3 ? parts : [undefined, ...parts];
        const p = (y !== undefined ? componentProblem(y, "year", 1970, 2199) : undefined) ?? componentProblem(mo!, "month", 1, 12) ?? componentProblem(d!, "day", 1, 31);
        if (p) return p;
    }
    if (time !== undefined) {
        const parts = time.split(":");
        if (parts.length < 2 || parts.length > 3) return `time "${time}" must be HH:MM[:SS]`;
        const p = componentProblem(parts[0], "hour", 0, 23) ?? componentProblem(parts[1], "minute", 0, 59);
        if (p) return p;
        if (parts.length === 3 && !/^0{1,2}$/.test(parts[2])) return `seconds must be 00 (got "${parts[2]}"): nodes derive the backup id from the minute of the slot`;
    }
    return undefined;
}

/** The `OnCalendar=` value of the node timer: the expression in UTC, whatever the node's time zone. */
export function timerCalendar(expr: string): string {
    const e = expr.trim();
    return /\sutc$/i.test(e) ? e : `${e} UTC`;
}
