import { describe, expect, it } from 'vitest';
import { jsonIndentedTo } from '../../canary/actions/atomic-write';

describe('jsonIndentedTo (the state file and report.json layout)', () => {
  const value = {
    run: 'r1',
    at: new Date('2026-12-07T20:00:00Z'),
    skipped: undefined,
    fn: () => 1,
    looks: [
      { at: 1, samples: [{ a: 1, b: [1, 2, { c: null }] }], note: undefined },
      { at: 2, samples: [], empty: {} },
    ],
    holes: [undefined, () => 2, 3],
    nested: { deeper: { deepest: { x: 'y' } } },
  };

  it('parses to exactly what JSON.stringify gives, at every depth (dates, undefined, functions, empty containers)', () => {
    for (const levels of [0, 1, 2, 3, 10]) expect(JSON.parse(jsonIndentedTo(value, levels))).toEqual(JSON.parse(JSON.stringify(value)));
    for (const scalar of [null, 1, 'text', true]) expect(jsonIndentedTo(scalar)).toBe(JSON.stringify(scalar));
    expect(jsonIndentedTo(undefined)).toBe('null');
  });

  it('indents down to the given level and writes everything deeper on one line', () => {
    const text = jsonIndentedTo({ a: { b: { c: [1, 2] } } }, 2);
    expect(text).toBe('{\n "a": {\n  "b": {"c":[1,2]}\n }\n}');
    // At depth 0 it is JSON.stringify's one line.
    expect(jsonIndentedTo(value, 0)).toBe(JSON.stringify(value));
  });
});
