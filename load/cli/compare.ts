/**
 * npm run load:compare -- --baseline load/baselines/<name>.json --current <summary.json>
 *   [--p95-margin 0.25] [--p95-slack-ms 5] [--error-margin 0.01] [--throughput-margin 0.15] [--min-endpoint-requests 100]
 *   [--allow-different-load]
 * Exit 0: within the margins; 1: a regression; 2: bad usage, an unreadable summary, an interrupted run, or runs
 * that offered different load.
 */
import { parseArgs } from 'node:util';
import { comparabilityProblems, compareSummaries, DEFAULT_MARGINS, renderComparison, type CompareMargins } from '../lib/compare';
import { readSummaryFile, SummaryFileError } from './summary-schema';

export const USAGE =
  'usage: npm run load:compare -- --baseline <baseline.json> --current <summary.json>\n' +
  '  [--p95-margin 0.25] [--p95-slack-ms 5] [--error-margin 0.01] [--throughput-margin 0.15] [--min-endpoint-requests 100]\n' +
  '  [--allow-different-load]   compare runs that offered different load (model, rate, profile, connections)';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

function marginFlag(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < 0) throw new SummaryFileError(`--${name} must be a number >= 0, got ${JSON.stringify(raw)}`);
  return n;
}

export function runCompare(argv: string[], io: Io): number {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        baseline: { type: 'string' },
        current: { type: 'string' },
        'p95-margin': { type: 'string' },
        'p95-slack-ms': { type: 'string' },
        'error-margin': { type: 'string' },
        'throughput-margin': { type: 'string' },
        'min-endpoint-requests': { type: 'string' },
        'allow-different-load': { type: 'boolean' },
        help: { type: 'boolean' },
      },
      strict: true,
    }).values;
  } catch (err) {
    io.err(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (!values.baseline || !values.current) {
    io.err(`--baseline and --current are required\n${USAGE}`);
    return 2;
  }
  try {
    const margins: CompareMargins = {
      p95Relative: marginFlag(values['p95-margin'], 'p95-margin', DEFAULT_MARGINS.p95Relative),
      p95AbsoluteMs: marginFlag(values['p95-slack-ms'], 'p95-slack-ms', DEFAULT_MARGINS.p95AbsoluteMs),
      errorRateAbsolute: marginFlag(values['error-margin'], 'error-margin', DEFAULT_MARGINS.errorRateAbsolute),
      throughputRelative: marginFlag(values['throughput-margin'], 'throughput-margin', DEFAULT_MARGINS.throughputRelative),
      minEndpointRequests: marginFlag(values['min-endpoint-requests'], 'min-endpoint-requests', DEFAULT_MARGINS.minEndpointRequests),
    };
    const baseline = readSummaryFile(values.baseline);
    const current = readSummaryFile(values.current);
    const problems = comparabilityProblems(baseline, current, { allowDifferentLoad: values['allow-different-load'] === true });
    if (problems.length > 0) {
      for (const problem of problems) io.err(`load:compare: refusing to compare: ${problem}`);
      return 2;
    }
    const result = compareSummaries(baseline, current, margins);
    io.out(`baseline ${values.baseline} (${baseline.tool}, ${baseline.scenario}) vs current ${values.current} (${current.tool}, ${current.scenario})`);
    io.out(renderComparison(result));
    return result.regressions.length > 0 ? 1 : 0;
  } catch (err) {
    io.err(`load:compare: ${(err as Error).message}`);
    return 2;
  }
}

if (require.main === module) {
  process.exitCode = runCompare(process.argv.slice(2), { out: (l) => console.log(l), err: (l) => console.error(l) });
}
