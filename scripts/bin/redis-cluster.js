#!/usr/bin/env node
// Installed entry point (package.json "bin"): runs the TypeScript CLI through
// tsx's require hook (commands are loaded lazily with require()).
require("tsx/cjs");
require("../cli").buildProgram().parseAsync(process.argv);
