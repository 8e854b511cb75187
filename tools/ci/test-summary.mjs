// Adds up every package's Vitest JSON report into one plain line: "N passed, N failed, N skipped".
// Exits 1 when a test failed or a package that has a test script left no report (it crashed or
// never ran), so the line can be trusted by CI.
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { workspacePackages } from './workspace.mjs';

const root = process.cwd();
let passed = 0;
let failed = 0;
let skipped = 0;
const problems = [];

for (const { dir, manifest } of workspacePackages(root)) {
  if (!manifest.scripts?.test) continue;
  const name = manifest.name ?? relative(root, dir);
  const reportPath = join(dir, '.vitest', 'report.json');
  if (!existsSync(reportPath)) {
    problems.push(`${name}: no test report (the test task failed before Vitest wrote one)`);
    continue;
  }
  const report = JSON.parse(readFileSync(reportPath, 'utf8'));
  passed += report.numPassedTests ?? 0;
  failed += report.numFailedTests ?? 0;
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  for (const suite of report.testResults ?? []) {
    if (suite.status === 'failed' && (suite.assertionResults ?? []).length === 0) {
      problems.push(`${name}: ${relative(root, suite.name)} failed to load: ${(suite.message ?? '').split('\n')[0]}`);
      failed += 1;
    }
  }
  if (report.success === false && report.numFailedTests === 0 && report.numFailedTestSuites === 0) {
    problems.push(`${name}: Vitest reported an unsuccessful run`);
  }
}

for (const p of problems) console.log(`problem: ${p}`);
const exitCode = failed > 0 || problems.length > 0 ? 1 : 0;
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(exitCode);
