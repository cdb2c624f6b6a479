/**
 * Month 1's A/B results ("Analyze snippet effectiveness", "Review Context7 costs vs benefits") over a review's
 * period, from the per-cluster tables the metrics history keeps per day. Pure. The estimator is the stepped
 * canary's own (clustered-step.ts abResults: ratio over scope clusters, 95 % delta-method interval); here it reads
 * the period's summed days instead of a step's window. Reported figures: nothing here is ever acted on.
 */
import type { MetricsHistoryResponse } from '../../service/contracts/metrics-history';
import { addClusterTables, CLUSTER_COUNT, CLUSTER_FIELD_COUNT, emptyDenseClusters } from '../../service/domain/exposure-clusters';
import { abResults } from '../exposure/clustered-step';
import type { AbResults } from '../exposure/types';

export interface PeriodAbResults extends AbResults {
  /** days of the period whose per-cluster tables the history returned (older services, or days before the rollout, have none) */
  daysWithClusters: number;
  days: number;
}

/** null when no day of the period carries per-cluster tables. */
export function periodAbResults(days: MetricsHistoryResponse['days'], pricePerCall: number, currency: string): PeriodAbResults | null {
  const withClusters = days.filter((day) => day.clusters);
  if (withClusters.length === 0) return null;
  const window = emptyDenseClusters();
  for (const day of withClusters) addClusterTables(window, day.clusters!);
  // No pre-exposure covariate: the figures are reported, not compared under CUPED.
  const pre = { values: new Float64Array(CLUSTER_COUNT * CLUSTER_FIELD_COUNT), sketch: new Float64Array(0) };
  return { ...abResults({ window, pre }, pricePerCall, currency), daysWithClusters: withClusters.length, days: days.length };
}

/** The runbook's "Review Context7 costs vs benefits" line, filled from the figures. */
export function costsVersusBenefits(ab: AbResults): string {
  const { treatment: t, control: c } = ab;
  const money = (v: number) => `${v.toFixed(3)} ${ab.currency}`;
  const snippets = (f: AbResults['treatment']['snippetsPerRead']) => (f.reads > 0 ? `${f.estimate.toFixed(2)} [${f.lower.toFixed(2)}, ${f.upper.toFixed(2)}]` : 'n/a (no reads)');
  const cost = (x: AbResults['treatment']) => (x.snippetsPerRead.reads > 0 ? `${money(x.costPerThousandReads.estimate)} [${money(x.costPerThousandReads.lower)}, ${money(x.costPerThousandReads.upper)}]` : 'n/a');
  return (
    `Context7 costs vs benefits: per 1,000 reads the treatment cost ${cost(t)} against the control's ${cost(c)} ` +
    `(${ab.pricePerCall} ${ab.currency} per call), for ${snippets(t.snippetsPerRead)} snippets applied per read against ${snippets(c.snippetsPerRead)} ` +
    `(95% intervals over scope clusters; reported, never acted on)`
  );
}
