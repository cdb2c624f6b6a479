/**
 * Setup of the shared-servers project (vitest.config.mts): run before each of its files, in the one worker they share.
 * The harness's module-level afterAll ran in the first file only (the module is imported once per worker), so each
 * file removes its own temporary data directories here.
 */
import { afterAll } from 'vitest';
import { removeTempDataDirs } from '../service/support/harness';

afterAll(removeTempDataDirs);
