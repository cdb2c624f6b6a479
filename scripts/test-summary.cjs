#!/usr/bin/env node
// The end of ./scripts/test, from vitest's JSON results (argument: the file):
//   1. the time each test file took, longest first, with the sum over the workers and the wall time, so the total
//      stays watched (issue 23);
//   2. one plain closing line with the counts: `tests: N passed, N failed[, N skipped]`. A file that failed outside
//      any test (an import or a hook) counts as one failure: vitest lists its tests as skipped.
'use strict';
const path = require('node:path');

function fileTimes(results, cwd = process.cwd()) {
  const files = results.testResults.map((f) => ({
    name: path.relative(cwd, f.name),
    seconds: Math.max(0, (f.endTime - f.startTime) / 1000),
    status: f.status,
  }));
  files.sort((a, b) => b.seconds - a.seconds || a.name.localeCompare(b.name));
  const summed = files.reduce((n, f) => n + f.seconds, 0);
  const ends = results.testResults.map((f) => f.endTime).filter(Number.isFinite);
  const wall = ends.length ? (Math.max(...ends) - results.startTime) / 1000 : 0;
  return { files, summed, wall };
}

function countsLine(results) {
  const broken = results.testResults.filter((f) => f.status === 'failed' && !f.assertionResults.some((a) => a.status === 'failed'));
  const failed = results.numFailedTests + broken.length;
  return {
    broken,
    line: `tests: ${results.numPassedTests} passed, ${failed} failed` + (results.numPendingTests ? `, ${results.numPendingTests} skipped` : ''),
  };
}

function main(file) {
  const results = require(path.resolve(file));
  const { files, summed, wall } = fileTimes(results);
  console.log(`\n== time per test file (${files.length} files: ${summed.toFixed(0)} s summed over the workers, ${wall.toFixed(0)} s wall from the first file's start)`);
  for (const f of files) console.log(`${f.seconds.toFixed(1).padStart(7)} s ${f.status === 'passed' ? ' ' : '!'} ${f.name}`);
  const { broken, line } = countsLine(results);
  for (const f of broken) console.error(`file failed outside its tests: ${f.name}: ${String(f.message).split('\n')[0]}`);
  console.log(line);
}

if (require.main === module) main(process.argv[2]);
module.exports = { fileTimes, countsLine };
