import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The closing line CI reads must never say "0 failed" about a run that failed.
const SCRIPT = fileURLToPath(new URL('../../scripts/summarize-tests.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'summarize-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function summarize(report: object | null, vitestExit?: number): { line: string; code: number } {
  const file = join(dir, `r${n++}.json`);
  if (report) writeFileSync(file, JSON.stringify(report));
  try {
    const out = execFileSync(process.execPath, [SCRIPT, file, ...(vitestExit === undefined ? [] : [String(vitestExit)])], { encoding: 'utf8' });
    return { line: out.trim().split('\n').pop()!, code: 0 };
  } catch (e) {
    const err = e as { status: number; stdout: string };
    return { line: err.stdout.trim().split('\n').pop()!, code: err.status };
  }
}

const file = (status: string, assertions: string[]) => ({ status, assertionResults: assertions.map((s) => ({ status: s })) });

describe('scripts/summarize-tests.mjs', () => {
  it('a green run: counts, exit 0', () => {
    expect(summarize({ success: true, numPassedTests: 3, numFailedTests: 0, numPendingTests: 1, testResults: [file('passed', ['passed'])] }, 0))
      .toEqual({ line: '3 passed, 0 failed, 1 skipped', code: 0 });
  });
  it('failed tests and files that failed to load are counted', () => {
    expect(summarize({ success: false, numPassedTests: 3, numFailedTests: 2, testResults: [file('failed', ['failed', 'failed']), file('failed', [])] }, 1))
      .toEqual({ line: '3 passed, 3 failed', code: 1 });
  });
  it('an error outside any test (success: false, or vitest exiting non-zero) is a failure', () => {
    const ok = { numPassedTests: 4, numFailedTests: 0, testResults: [file('passed', ['passed'])] };
    expect(summarize({ ...ok, success: false }, 1)).toEqual({ line: '4 passed, 1 failed (vitest reported the run as failed)', code: 1 });
    expect(summarize({ ...ok, success: true }, 1)).toEqual({ line: '4 passed, 1 failed (vitest exited 1)', code: 1 });
  });
  it('no report, or nothing passed, is a failure', () => {
    expect(summarize(null, 1)).toEqual({ line: '0 passed, 1 failed (no test report; vitest exited 1)', code: 1 });
    expect(summarize({ success: true, numPassedTests: 0, numFailedTests: 0, testResults: [] }, 0))
      .toEqual({ line: '0 passed, 1 failed (no test passed)', code: 1 });
  });
});
