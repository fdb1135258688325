#!/bin/sh
":" //# ; exec node --max-semi-space-size=2 "$0" "$@"
// Above: sh runs the second line, starting node with a young generation of 2 MiB (V8 takes it only at
// start-up); node reads it as a string and a comment. That flag keeps a run on a million revisions under
// 256 MiB (BENCHMARKS.md). `env -S` would say the same in one line, but busybox's env lacks it.
// The Dockerfile's ENTRYPOINT passes the same flags (a test holds the two alike).
import { main } from '../dist/src/cli/main.js';
await main(process.argv);
