// Prints the failed tests of vitest JSON reports (KPI_TEST_REPORT), each with
// the first lines of its error: .ci/run calls it at the end of the run, so
// that what failed is in the last lines of the CI log whatever came before.
// Usage: node .ci/failures.mjs LABEL=REPORT.json ...
import { existsSync, readFileSync } from 'node:fs';

const ESC = String.fromCharCode(27);
const strip = (text) =>
  text
    .split(ESC)
    .map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*m/, '')))
    .join('');
for (const arg of process.argv.slice(2)) {
  const at = arg.indexOf('=');
  const [label, file] = [arg.slice(0, at), arg.slice(at + 1)];
  if (!existsSync(file)) {
    console.log(`${label}: no test report (the leg stopped before vitest wrote one)`);
    continue;
  }
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    console.log(`${label}: the test report ${file} is not JSON`);
    continue;
  }
  const failed = [];
  for (const suite of report.testResults ?? []) {
    const name = suite.name.replace(/^.*?\/test\//, 'test/');
    const tests = (suite.assertionResults ?? []).filter((t) => t.status === 'failed');
    if (tests.length === 0 && suite.status === 'failed') failed.push({ where: name, message: suite.message ?? '' });
    for (const t of tests) failed.push({ where: `${name} > ${t.fullName}`, message: (t.failureMessages ?? []).join('\n') });
  }
  console.log(`${label}: ${report.numPassedTests ?? 0} passed, ${report.numFailedTests ?? 0} failed, ${report.numPendingTests ?? 0} skipped`);
  for (const f of failed) {
    console.log(`  FAILED ${f.where}`);
    for (const line of strip(f.message)
      .split('\n')
      .filter((l) => l.trim() !== '')
      .slice(0, 8))
      console.log(`    ${line}`);
  }
}
