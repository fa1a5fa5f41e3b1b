// Prints the plain closing line CI reads, from vitest's JSON report and vitest's exit code
// (`node summarize-tests.mjs REPORT [VITEST_EXIT_CODE]`). A run that failed in any way — a failed
// test, a file that failed to load, an error outside any test (a hook, an unhandled rejection),
// a report that says success: false, or a non-zero exit — never ends with "0 failed".
import { readFileSync } from 'node:fs';
const vitestExit = process.argv[3] === undefined ? 0 : Number(process.argv[3]);
let r;
try { r = JSON.parse(readFileSync(process.argv[2], 'utf8')); }
catch { console.log(`0 passed, 1 failed (no test report${vitestExit ? `; vitest exited ${vitestExit}` : ''})`); process.exit(1); }
const passed = r.numPassedTests ?? 0;
// A file that fails to load (or whose hooks fail) has no failed assertion of its own: count it as one failure.
const brokenFiles = (r.testResults ?? []).filter(
  (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed'),
).length;
let failed = (r.numFailedTests ?? 0) + brokenFiles;
const notes = [];
if (failed === 0 && (r.success === false || vitestExit !== 0 || passed === 0)) {
  // Vitest failed the run for something no test or file owns (e.g. an unhandled error).
  failed = 1;
  notes.push(r.success === false ? 'vitest reported the run as failed' : passed === 0 ? 'no test passed' : `vitest exited ${vitestExit}`);
}
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : '') + (notes.length ? ` (${notes.join('; ')})` : ''));
process.exit(failed > 0 ? 1 : 0);
