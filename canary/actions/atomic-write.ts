import { renameSync, writeFileSync } from 'node:fs';

/** Write-then-rename, so a crash mid-write never leaves a half-written state or stack file. */
export function writeFileAtomic(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}
