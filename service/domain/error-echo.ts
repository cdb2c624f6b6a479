/**
 * How error messages quote what a client sent. A message that echoed a value whole would confirm a guessed
 * credential wherever the message ends up (a response, a log line, a proxy's error page), so only values shorter
 * than any credential this service accepts are shown whole; longer ones show a short prefix and their length.
 * Nothing here coerces: a non-string is named by its type, never String()-ed (an object's own toString or
 * valueOf can throw, or lie).
 */

/** Shorter than ADMIN_TOKEN_MIN_LENGTH (12), so no accepted admin token is ever echoed whole. */
export const ECHO_WHOLE_MAX_CHARS = 10;
/** What a longer value shows: enough to recognise a typo, too little to confirm a guess. */
export const ECHO_PREFIX_CHARS = 6;

/** A quoted, truncated rendering of a string: `"scope:..."` or `"scope:…" (41 chars)`. */
export function echoText(text: string): string {
  if (text.length <= ECHO_WHOLE_MAX_CHARS) return JSON.stringify(text);
  return `${JSON.stringify(`${text.slice(0, ECHO_PREFIX_CHARS)}…`)} (${text.length} chars)`;
}

/** Any JSON-ish value as an error message may show it: strings and numbers truncated, anything else by type. */
export function echoValue(value: unknown): string {
  if (typeof value === 'string') return echoText(value);
  // String() of a primitive is safe; only objects can run code when coerced.
  if (typeof value === 'number' || typeof value === 'boolean') return echoText(String(value));
  if (value === null) return '"null"';
  if (value === undefined) return '"undefined"';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}
