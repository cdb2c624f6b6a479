/**
 * The end-of-run leftovers check (test/global-setup.ts) counts only names of its own run: the names the support
 * helpers make carry the run id, and another run's names never match this run's patterns.
 */
import { describe, expect, it } from 'vitest';
import { testDatabaseName } from '../data-plane/support/postgres';
import { randomPrefix } from '../data-plane/support/redis';
import { runNamePatterns, testRunId, TEST_RUN_ID_ENV } from './run-id';

/** Redis MATCH glob semantics for the only wildcard the patterns use: a trailing `*`. */
const globMatches = (glob: string, key: string) => key.startsWith(glob.replace(/\*$/, ''));

describe('test run ids', () => {
  it('this run has one (set by globalSetup before the workers started)', () => {
    expect(testRunId()).toMatch(/^[0-9a-f]{8}$/);
  });

  it("names made under one run match that run's patterns and never another's", () => {
    const mine = { database: testDatabaseName('fleet', 'aaaa1111'), prefix: randomPrefix('fleet', 'aaaa1111') };
    const theirs = { database: testDatabaseName('fleet', 'bbbb2222'), prefix: randomPrefix('fleet', 'bbbb2222') };

    const patterns = runNamePatterns('aaaa1111');
    expect(patterns.databaseNamePattern.test(mine.database)).toBe(true);
    expect(globMatches(patterns.redisKeyPattern, `${mine.prefix}fleet:instances`)).toBe(true);
    expect(globMatches(patterns.redisKeyPattern, `${mine.prefix.replace(/:$/, '')}fleet:instances`)).toBe(true);
    expect(patterns.databaseNamePattern.test(theirs.database)).toBe(false);
    expect(globMatches(patterns.redisKeyPattern, `${theirs.prefix}fleet:instances`)).toBe(false);
    // Names without a run id (an older checkout's, the service's default) are never this run's.
    expect(patterns.databaseNamePattern.test('t_fleet_0123456789ab')).toBe(false);
    expect(globMatches(patterns.redisKeyPattern, 'memsvc:fleet:instances')).toBe(false);
  });

  it('a malformed id is not used in names, and the helpers name with this run\'s id by default', () => {
    expect(testRunId({ [TEST_RUN_ID_ENV]: 'X; DROP' })).toBe('adhoc');
    expect(testRunId({})).toBe('adhoc');
    expect(testDatabaseName('fleet')).toMatch(new RegExp(`^t_${testRunId()}_fleet_`));
    expect(randomPrefix('fleet').startsWith(`t:${testRunId()}:fleet:`)).toBe(true);
  });
});
