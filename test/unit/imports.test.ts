/**
 * The layers of docs/design.md, kept by the compiler's own reading of every import.
 *
 * Every `.ts` file under components/ and scripts/ (and index.ts) is parsed with the
 * TypeScript compiler API; an import is any `import … from`, `export … from`,
 * `import x = require()`, `require()`, `import()` or `typeof import()` naming a string.
 * Type-only imports count like value imports, for direction and for cycles: a type
 * still ties the importer to the layer that owns it, and one edit turns it into a
 * value import (structure review 2026-12, §2.1).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";

const ROOT = resolve(__dirname, "../..");

interface Edge {
    from: string;
    /** As written in the file. */
    spec: string;
    /** Repository-relative file for a relative import, else the package (`ioredis`, `@pulumi/aws`, `node:fs`). */
    to: string;
    typeOnly: boolean;
    line: number;
}

function tsFiles(dir: string): string[] {
    return readdirSync(join(ROOT, dir)).flatMap((name) => {
        const rel = `${dir}/${name}`;
        if (statSync(join(ROOT, rel)).isDirectory()) return tsFiles(rel);
        return name.endsWith(".ts") && !name.endsWith(".d.ts") ? [rel] : [];
    });
}

function resolveSpec(from: string, spec: string): string {
    if (!spec.startsWith(".")) {
        if (spec.startsWith("node:")) return spec;
        const parts = spec.split("/");
        return spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
    }
    const base = join(dirname(from), spec);
    for (const cand of [`${base}.ts`, `${base}/index.ts`, base]) {
        if (existsSync(join(ROOT, cand)) && statSync(join(ROOT, cand)).isFile()) return relative(ROOT, join(ROOT, cand));
    }
    return relative(ROOT, join(ROOT, base));
}

function importsOf(file: string): Edge[] {
    const sf = ts.createSourceFile(file, readFileSync(join(ROOT, file), "utf8"), ts.ScriptTarget.Latest, true);
    const edges: Edge[] = [];
    const add = (lit: ts.StringLiteral, typeOnly: boolean) => edges.push({
        from: file, spec: lit.text, to: resolveSpec(file, lit.text), typeOnly, line: sf.getLineAndCharacterOfPosition(lit.getStart()).line + 1,
    });
    const visit = (n: ts.Node) => {
        if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
            const c = n.importClause;
            const allTypes = !!c && (c.isTypeOnly || (!c.name && !!c.namedBindings && ts.isNamedImports(c.namedBindings) && c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly)));
            add(n.moduleSpecifier, allTypes);
        } else if (ts.isExportDeclaration(n) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
            add(n.moduleSpecifier, n.isTypeOnly);
        } else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference) && ts.isStringLiteral(n.moduleReference.expression)) {
            add(n.moduleReference.expression, n.isTypeOnly);
        } else if (ts.isCallExpression(n) && n.arguments.length >= 1 && ts.isStringLiteral(n.arguments[0])
            && (n.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(n.expression) && n.expression.text === "require"))) {
            add(n.arguments[0], false);
        } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
            add(n.argument.literal, true);
        }
        ts.forEachChild(n, visit);
    };
    visit(sf);
    return edges;
}

const FILES = ["index.ts", ...tsFiles("components"), ...tsFiles("scripts")].sort();
const EDGES = FILES.flatMap(importsOf);
const bySource = new Map<string, Edge[]>(FILES.map((f) => [f, EDGES.filter((e) => e.from === f)]));

/**
 * The layers, lowest first. A file may import its own layer and those below it.
 *  - model: what the stack and the tool share, and the pure planners of both sides
 *    (components/ minus its resources, components/plan/, scripts/plan/, scripts/errors.ts)
 *  - stack: components that declare Pulumi resources, index.ts
 *  - support: scripts/output.ts and scripts/context.ts (progress, results, the context every executor gets)
 *  - executor: scripts/redis/ (one node at a time), scripts/backup/, scripts/rdb/, scripts/metrics/,
 *    scripts/autoscale/: they take a pool or a store and a context, never a command line
 *  - target: scripts/inventory.ts (which cluster: stack outputs, topology file, credentials)
 *  - command: scripts/cli.ts, scripts/commands/, scripts/local*, scripts/drill/, scripts/render.ts, scripts/prereqs.ts
 * The stack side never imports the tool (scripts/); that is checked separately.
 */
const LAYERS = ["model", "stack", "support", "executor", "target", "command"] as const;
type Layer = typeof LAYERS[number];
const EXECUTOR_DIRS = ["scripts/redis/", "scripts/backup/", "scripts/rdb/", "scripts/metrics/", "scripts/autoscale/"];
const PURE_DIRS = ["components/plan/", "scripts/plan/"];

/** Whether a file declares Pulumi resources or imports one that does (the barrels components/index.ts, parts.ts). */
function reachesPulumi(file: string, seen = new Set<string>()): boolean {
    seen.add(file);
    return (bySource.get(file) ?? []).some((e) => e.to.startsWith("@pulumi/") || (FILES.includes(e.to) && !seen.has(e.to) && reachesPulumi(e.to, seen)));
}

function layerOf(file: string): Layer {
    if (file.startsWith("components/plan/") || file.startsWith("scripts/plan/") || file === "scripts/errors.ts") return "model";
    if (file === "index.ts") return "stack";
    if (file.startsWith("components/")) return reachesPulumi(file) ? "stack" : "model";
    if (file === "scripts/output.ts" || file === "scripts/context.ts") return "support";
    if (EXECUTOR_DIRS.some((d) => file.startsWith(d))) return "executor";
    if (file === "scripts/inventory.ts") return "target";
    return "command";
}

const show = (e: Edge) => `${e.from}:${e.line} imports ${e.typeOnly ? "type from " : ""}"${e.spec}"`;

test("imports: every relative import resolves to a file in the repository", () => {
    const missing = EDGES.filter((e) => e.spec.startsWith(".") && !existsSync(join(ROOT, e.to)));
    assert.deepEqual(missing.map(show), []);
    assert.ok(FILES.length > 100 && EDGES.length > 500, `read ${FILES.length} files and ${EDGES.length} imports`);
});

test("imports: dependencies point down the layers (model < stack < support < executor < target < command)", () => {
    const wrong: string[] = [];
    for (const e of EDGES) {
        if (!FILES.includes(e.to)) continue;
        const a = layerOf(e.from), b = layerOf(e.to);
        if (LAYERS.indexOf(b) > LAYERS.indexOf(a)) wrong.push(`${show(e)}: the ${a} layer must not import the ${b} layer (${e.to})`);
    }
    assert.deepEqual(wrong, []);
});

test("imports: the stack (components/, index.ts) never imports the tool (scripts/) or tests", () => {
    const wrong = EDGES.filter((e) => (e.from === "index.ts" || e.from.startsWith("components/")) && (e.to.startsWith("scripts/") || e.to.startsWith("test/")));
    assert.deepEqual(wrong.map(show), []);
});

/** Packages and built-ins that talk to the network, the disk, other processes or a Pulumi engine. */
const IO = /^(ioredis|@pulumi\/.*|@aws-sdk\/.*|commander|esbuild|node:(fs|fs\/promises|net|tls|dgram|http|https|http2|child_process|readline|readline\/promises|worker_threads|cluster|os|stream|stream\/promises))$/;

test("imports: planners (components/plan/, scripts/plan/) reach nothing that does I/O, directly or through what they import", () => {
    const wrong: string[] = [];
    for (const start of FILES.filter((f) => PURE_DIRS.some((d) => f.startsWith(d)))) {
        // Breadth-first over the files the planner reaches, remembering the path for the message.
        const via = new Map<string, Edge | undefined>([[start, undefined]]);
        const queue = [start];
        while (queue.length) {
            const f = queue.shift()!;
            for (const e of bySource.get(f) ?? []) {
                const bad = IO.test(e.to) ? `does I/O` : e.to.startsWith("scripts/") && !PURE_DIRS.some((d) => e.to.startsWith(d)) && e.to !== "scripts/errors.ts" ? `is outside the pure layer` : undefined;
                if (bad) {
                    const path: string[] = [];
                    for (let p: string | undefined = f; p && p !== start; p = via.get(p)?.from) path.unshift(p);
                    wrong.push(`${start} reaches ${show(e)}${path.length ? ` (through ${path.join(" → ")})` : ""}: "${e.to}" ${bad}`);
                    continue;
                }
                if (FILES.includes(e.to) && !via.has(e.to)) {
                    via.set(e.to, e);
                    queue.push(e.to);
                }
            }
        }
    }
    assert.deepEqual(wrong, []);
});

test("imports: no import cycles (type-only imports included)", () => {
    // Tarjan's strongly connected components; each component of more than one file is a cycle.
    const index = new Map<string, number>(), low = new Map<string, number>(), onStack = new Set<string>();
    const stack: string[] = [];
    const sccs: string[][] = [];
    let next = 0;
    const targets = (f: string) => [...new Set((bySource.get(f) ?? []).map((e) => e.to).filter((t) => FILES.includes(t)))];
    const strong = (v: string) => {
        index.set(v, next); low.set(v, next); next++;
        stack.push(v); onStack.add(v);
        for (const w of targets(v)) {
            if (!index.has(w)) { strong(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
            else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
        }
        if (low.get(v) === index.get(v)) {
            const scc: string[] = [];
            let w: string;
            do { w = stack.pop()!; onStack.delete(w); scc.push(w); } while (w !== v);
            if (scc.length > 1 || targets(v).includes(v)) sccs.push(scc);
        }
    };
    for (const f of FILES) if (!index.has(f)) strong(f);
    // One concrete cycle per component, as the imports that close it.
    const cycles = sccs.map((scc) => {
        const inScc = new Set(scc);
        const start = [...scc].sort()[0];
        const prev = new Map<string, Edge>();
        const queue = [start];
        const seen = new Set([start]);
        let closing: Edge | undefined;
        while (queue.length && !closing) {
            const f = queue.shift()!;
            for (const e of bySource.get(f) ?? []) {
                if (!inScc.has(e.to)) continue;
                if (e.to === start) { closing = e; break; }
                if (!seen.has(e.to)) { seen.add(e.to); prev.set(e.to, e); queue.push(e.to); }
            }
        }
        const path: Edge[] = [closing!];
        for (let f = closing!.from; f !== start; f = prev.get(f)!.from) path.unshift(prev.get(f)!);
        return `import cycle: ${path.map(show).join(" → ")}${scc.length > path.length ? ` (and more cycles among ${[...scc].sort().join(", ")})` : ""}`;
    });
    assert.deepEqual(cycles, []);
});
