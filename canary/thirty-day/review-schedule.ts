/**
 * The runbook's post-rollout reviews ("Post-Rollout Actions": Day 1, Week 1, Month 1; "Success Metrics: After 30
 * days"), scheduled from the production sign-off. Pure: sign-off time, recorded reviews and today -> the review due.
 *
 * Each review judges complete UTC days after the sign-off day: Day 1 the first day, Week 1 the first 7, Day 30 the
 * first 30 (the success-metrics verdict), Month 1 the first calendar month. A review is due from the day after its
 * period ends ("its day") for GRACE_DAYS days (a missed daily run catches up), unless already recorded for this
 * sign-off. When several are due, the earliest runs first; the next daily run takes the next one.
 */
export const REVIEW_IDS = ['day-1', 'week-1', 'day-30', 'month-1'] as const;
export type ReviewId = (typeof REVIEW_IDS)[number];

/** How long after its day a review that has not run is still run (then it is reported as missed, never run late). */
export const GRACE_DAYS = 7;
const DAY_MS = 86_400_000;

export interface ReviewWindow {
  review: ReviewId;
  /** first day judged, YYYY-MM-DD */
  from: string;
  /** exclusive end of the period, and the first day the review is due */
  to: string;
  days: number;
  /** last day the review is still due */
  dueUntil: string;
}

export interface RecordedReview {
  review: string;
  signedOffAt: string | null;
}

function dayOf(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function plusDays(day: string, days: number): string {
  return dayOf(new Date(Date.parse(`${day}T00:00:00Z`) + days * DAY_MS));
}

/** The same day of the next month, clamped to its last day (Jan 31 -> Feb 28/29). */
function plusOneMonth(day: string): string {
  const [year, month, date] = day.split('-').map(Number) as [number, number, number];
  const lastOfNext = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  return dayOf(new Date(Date.UTC(year, month, Math.min(date, lastOfNext))));
}

export function reviewSchedule(signedOffAt: string): ReviewWindow[] {
  const from = plusDays(dayOf(new Date(signedOffAt)), 1);
  const ends: Record<ReviewId, string> = {
    'day-1': plusDays(from, 1),
    'week-1': plusDays(from, 7),
    'day-30': plusDays(from, 30),
    'month-1': plusOneMonth(from),
  };
  return REVIEW_IDS.map((review) => {
    const to = ends[review];
    return { review, from, to, days: Math.round((Date.parse(to) - Date.parse(from)) / DAY_MS), dueUntil: plusDays(to, GRACE_DAYS) };
  });
}

/** The review to run today (YYYY-MM-DD, UTC), or null. Reviews recorded for another sign-off do not count. */
export function dueReview(signedOffAt: string, recorded: readonly RecordedReview[], today: string): ReviewWindow | null {
  const done = new Set(recorded.filter((r) => r.signedOffAt === signedOffAt).map((r) => r.review));
  const due = reviewSchedule(signedOffAt)
    .filter((w) => !done.has(w.review) && w.to <= today && today <= w.dueUntil)
    // Earliest day first; on the same day, the list's order (Day 30 before Month 1).
    .sort((a, b) => a.to.localeCompare(b.to));
  return due[0] ?? null;
}
