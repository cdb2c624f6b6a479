/**
 * Edits Pulumi.<stack>.yaml through yaml's Document API, so comments and layout survive: the
 * rollback latch and the promotion are reviewable one-line diffs in git.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
// yaml is required on use, not on import: most canary commands never touch a stack file.
import { writeFileAtomic } from './atomic-write';

export const CONFIG_NAMESPACE = 'memory-rollout';
export const FLAG_KEY = `${CONFIG_NAMESPACE}:enableContext7Memory`;
export const PINNED_COMMIT_KEY = `${CONFIG_NAMESPACE}:pinnedCommit`;
/** The exposure ceiling (CONTEXT7_EXPOSURE_PERCENT); the staging canary's promotion pins production's to what it judged. */
export const EXPOSURE_PERCENT_KEY = `${CONFIG_NAMESPACE}:context7ExposurePercent`;

export function stackFilePath(stackDir: string, stack: string): string {
  return join(stackDir, `Pulumi.${stack}.yaml`);
}

/** Sets plain top-level entries of the stack's `config:` map; returns the keys whose value changed. */
export function setStackConfig(path: string, entries: Record<string, string | boolean | number>): string[] {
  if (!existsSync(path)) throw new Error(`stack file ${path} does not exist`);
  const { isMap, parseDocument } = require('yaml') as typeof import('yaml');
  const doc = parseDocument(readFileSync(path, 'utf8'));
  if (doc.errors.length > 0) throw new Error(`stack file ${path} is not valid YAML: ${doc.errors[0]!.message}`);
  if (!isMap(doc.get('config', true))) doc.set('config', doc.createNode({}));
  const changed: string[] = [];
  for (const [key, value] of Object.entries(entries)) {
    if (doc.getIn(['config', key]) === value) continue;
    doc.setIn(['config', key], value);
    changed.push(key);
  }
  if (changed.length > 0) writeFileAtomic(path, doc.toString());
  return changed;
}

export function readStackConfig(path: string, key: string): unknown {
  const { parseDocument } = require('yaml') as typeof import('yaml');
  return parseDocument(readFileSync(path, 'utf8')).getIn(['config', key]);
}
