/**
 * The order test files start in: the longest first, so the workers end together instead of one running a
 * minute-long end-to-end file alone at the end.
 *
 * Vitest orders by the durations it cached from the last run, and without a cache (a fresh clone: every CI run) by
 * file size, largest first, which starts the short-source, long-running end-to-end files last. So the files below,
 * the longest of a full `npx vitest run` (Node 24.21.0, 2026-12-07, the shared 2-core machine, against the
 * emulators), start first in this order, the four rehearsals staggered (see the list), and the rest in vitest's own
 * order after them. A file missing from the list only starts later; a name here that matches no file changes nothing.
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export const LONGEST_FIRST = [
  'test/demo/demo-fleet.e2e.test.ts',
  'test/demo/demo.e2e.test.ts',
  // Three shorter files between the rehearsals: each rehearsal measures its clock as it starts, and the four
  // started at once measured each other's start-up (fresh clone, 4 workers: 35x and 40x for the workflow, and
  // e2e-stepped's two runs one after the other where they go side by side at 10x).
  'test/canary/stepped-two-instances.test.ts',
  'test/data-plane/postgres-store.test.ts',
  'test/data-plane/postgres-hang.test.ts',
  'test/canary/e2e-stepped.test.ts',
  'test/demo/rollout-workflow-e2e.test.ts',
  'test/demo/rollout-workflow.test.ts',
  'test/canary/operator-commands.test.ts',
  'test/data-plane/fleet.test.ts',
  'test/infra/serialization.test.ts',
  'test/canary/e2e-resume.test.ts',
  'test/data-plane/exposure-processes.test.ts',
  'test/service/sigterm-keepalive.test.ts',
  'test/data-plane/deploy-generations.processes.test.ts',
  'test/render/local-platform-memory-service.test.ts',
  'test/service/observability-browser.test.ts',
  'test/data-plane/fleet-processes.test.ts',
  'test/render/local-platform-fleet.test.ts',
  'test/load/bench-load.test.ts',
];

/** `files` with those in `first` at the front, in its order; the others keep their relative order. */
export function longestFirst<T>(files: T[], pathOf: (file: T) => string, first: string[] = LONGEST_FIRST): T[] {
  const rank = (file: T) => {
    const path = pathOf(file).replace(/\\/g, '/');
    const index = first.findIndex((name) => path.endsWith(`/${name}`) || path === name);
    return index < 0 ? first.length : index;
  };
  return files
    .map((file, index) => ({ file, index, rank: rank(file) }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index)
    .map(({ file }) => file);
}

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return longestFirst(await super.sort(files), (spec) => spec.moduleId);
  }
}
