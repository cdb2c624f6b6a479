/**
 * The emulators' docs (service/context7/README.md, render/README.md, service/README.md's pointers) name exactly the flags
 * the CLIs accept, and every fault they show is one the control API takes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RENDER_EMULATOR_FLAGS } from '../../render/emulator/main';
import { validateFaults } from '../../render/emulator/faults';
import { faultsPatchSchema, faultsSchema } from '../../service/context7/emulator';
import { CONTEXT7_EMULATOR_FLAGS } from '../../service/context7/emulator-main';

const REPO = path.resolve(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(REPO, file), 'utf8');
const DOCS = ['service/README.md', 'service/context7/README.md', 'render/README.md'];

/** Flags in the first column of a markdown table: | `--port N` | ... */
function tableFlags(markdown: string): string[] {
  return [...markdown.matchAll(/^\| `(--[a-z-]+)/gm)].map((m) => m[1]!).sort();
}

/** Flags given to `npm run <script> -- ...` anywhere in the docs (inline code or a shell block). */
function flagsInCommands(script: string): string[] {
  const flags = new Set<string>();
  for (const file of DOCS) {
    for (const line of read(file).split('\n')) {
      const at = line.indexOf(`npm run ${script} -- `);
      if (at < 0) continue;
      const command = line.slice(at).split(/`|&|#|\|\|/)[0]!;
      for (const m of command.matchAll(/(?:^|\s|\[)(--[a-z][a-z-]*)/g)) flags.add(m[1]!);
    }
  }
  return [...flags].sort();
}

/** JSON bodies of `curl ... -d '{...}'` lines, and JSON shown in inline code (`{"errorRate":0.5}`). */
function jsonShown(markdown: string): unknown[] {
  // Bodies sent to the fault control API (a memory call shown beside them is not a fault), and inline JSON.
  const bodies = [...markdown.matchAll(/__emulator\/faults[^\n]*-d '(\{.*?\})'/g), ...markdown.matchAll(/`(\{".*?\})`/g)].map((m) => m[1]!);
  return bodies.map((body) => JSON.parse(body) as unknown);
}

const accepted = (flags: object) => Object.keys(flags).map((flag) => `--${flag}`).sort();

describe('npm run context7:emulator, as documented', () => {
  const doc = read('service/context7/README.md');

  it('documents exactly the flags the CLI accepts, and every command shown uses only those', () => {
    expect(tableFlags(doc)).toEqual(accepted(CONTEXT7_EMULATOR_FLAGS));
    const used = flagsInCommands('context7:emulator');
    expect(used.length).toBeGreaterThan(0);
    for (const flag of used) expect(accepted(CONTEXT7_EMULATOR_FLAGS), flag).toContain(flag);
  });

  it('shows only faults the control API accepts, and names every one of them', () => {
    const shown = jsonShown(doc);
    expect(shown.length).toBeGreaterThan(0);
    const named = new Set<string>();
    for (const body of shown) {
      expect(faultsPatchSchema.safeParse(body).success, JSON.stringify(body)).toBe(true);
      for (const key of Object.keys(body as object)) named.add(key);
    }
    expect([...named].sort()).toEqual(Object.keys(faultsSchema.shape).sort());
  });

  it('service/README.md points to these docs from Troubleshooting', () => {
    const troubleshooting = read('service/README.md').split('## Troubleshooting')[1] ?? '';
    expect(troubleshooting).toContain('service/context7/README.md');
    expect(troubleshooting).toContain('render/README.md');
  });
});

describe('npm run render:emulator, as documented', () => {
  const doc = read('render/README.md');

  it('documents exactly the flags the CLI accepts, and every command shown uses only those', () => {
    expect(tableFlags(doc)).toEqual(accepted(RENDER_EMULATOR_FLAGS));
    const used = flagsInCommands('render:emulator');
    expect(used.length).toBeGreaterThan(0);
    for (const flag of used) expect(accepted(RENDER_EMULATOR_FLAGS), flag).toContain(flag);
  });

  it('shows only faults the control API accepts, and its fault table names the ones shown', () => {
    const shown = jsonShown(doc).filter((body) => body && typeof body === 'object' && !Array.isArray(body));
    expect(shown.length).toBeGreaterThan(0);
    const named = new Set<string>();
    for (const body of shown) {
      const result = validateFaults(body);
      expect(result.ok, `${JSON.stringify(body)}: ${result.ok ? '' : result.message}`).toBe(true);
      for (const key of Object.keys(body as object)) named.add(key);
    }
    const tabled = [...doc.matchAll(/^\| `([a-zA-Z]+):/gm)].map((m) => m[1]!).sort();
    expect(tabled).toEqual([...named].sort());
    expect(validateFaults({ notAFault: 1 }).ok).toBe(false); // the check above can fail
  });
});
