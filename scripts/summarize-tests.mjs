// Prints the plain closing line CI reads, from vitest's JSON report.
import { readFileSync } from 'node:fs';
let r;
try { r = JSON.parse(readFileSync(process.argv[2], 'utf8')); }
catch { console.log('0 passed, 1 failed'); process.exit(1); }
const passed = r.numPassedTests ?? 0;
// A file that fails to load has no failed assertion of its own: count it as one failure.
const brokenFiles = (r.testResults ?? []).filter(
  (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed'),
).length;
const failed = (r.numFailedTests ?? 0) + brokenFiles;
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(failed > 0 || passed === 0 ? 1 : 0);
