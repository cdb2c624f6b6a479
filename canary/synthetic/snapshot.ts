/** What the synthetic traffic had done by a measurement (cumulative), recorded with it in the state and report. */
import { z } from 'zod';

export const syntheticSnapshotSchema = z.object({
  ratePerSecond: z.number().nonnegative(),
  sent: z.number().int().nonnegative(),
  /** arrivals not sent because maxInFlight requests were still waiting (the service could not keep up) */
  skipped: z.number().int().nonnegative(),
  /** snippet reads answered 200 (what the service counts as memory requests while the flag is on) */
  readsAnswered: z.number().int().nonnegative(),
  /** learning writes answered 2xx */
  writesAnswered: z.number().int().nonnegative(),
  /** answers whose status or body failed the load run's checks */
  failedChecks: z.number().int().nonnegative(),
  /** no answer within the deadline, or no connection */
  transportErrors: z.number().int().nonnegative(),
  /** 401/403: the caller key is missing, wrong or not allowed these scopes */
  unauthorized: z.number().int().nonnegative(),
  /**
   * readsAnswered again just after the measurement. The service counted its reads somewhere between the two, so the
   * synthetic share of what it reported lies between readsAnswered and this (both over the judged reads).
   */
  readsAnsweredAfter: z.number().int().nonnegative().optional(),
});
export type SyntheticSnapshot = z.infer<typeof syntheticSnapshotSchema>;
