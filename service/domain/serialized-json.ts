/**
 * An answer's JSON, made once and kept with the answer: a cache hit's answer is the same for every hit of one cache
 * entry (its snippets, origin and scope id), so its text is made at the entry's first hit and every later hit skips
 * JSON.stringify and the byte count (issue 29's eighth round). The text rides on the answer object under a
 * non-enumerable symbol: JSON.stringify, object spreads and equality checks do not see it.
 */
const SERIALIZED = Symbol('serialized JSON of this answer');

export interface SerializedJson {
  /** JSON.stringify of the answer, as it was when it was kept. */
  text: string;
  /** Its UTF-8 length (Content-Length). */
  bytes: number;
}

/**
 * Keeps `body`'s JSON with it and freezes it (and `frozen`, objects inside it that are also the answer's own), so the
 * text cannot come to differ from the object. Objects it shares with others (a cache entry's snippets) are not
 * frozen here: they are not changed after they are cached, and nothing in the service changes them.
 */
export function keepSerializedJson<T extends object>(body: T, frozen: readonly object[] = []): T {
  for (const inner of frozen) Object.freeze(inner);
  const text = JSON.stringify(body);
  Object.defineProperty(body, SERIALIZED, { value: { text, bytes: Buffer.byteLength(text) } satisfies SerializedJson });
  return Object.freeze(body);
}

/** The JSON kept with `body` (keepSerializedJson), or undefined. */
export function serializedJsonOf(body: object): SerializedJson | undefined {
  return (body as { [SERIALIZED]?: SerializedJson })[SERIALIZED];
}
