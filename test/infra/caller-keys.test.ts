/** Issue 13: the CallerKeys provider draws keys once per stack and keeps them across updates (rotation by name). */
import { describe, expect, it } from 'vitest';
import { parseCallerKeys } from '../../service/domain/caller-keys';
import { callerKeysProvider } from '../../infra/providers/caller-keys';

const spec = (...names: string[]) => names.map((name) => ({ name, locations: name.startsWith('tenant') ? ['loc-a', 'loc-b'] : [] }));

describe('CallerKeys provider', () => {
  it('create draws a distinct 64-hex key per name and a MEMORY_API_KEYS value the service accepts', async () => {
    const created = await callerKeysProvider.create({ keys: spec('agents', 'canary', 'tenant-eu') });
    const { secrets, memoryApiKeys } = created.outs!;
    expect(Object.keys(secrets)).toEqual(['agents', 'canary', 'tenant-eu']);
    for (const secret of Object.values(secrets)) expect(secret).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(Object.values(secrets)).size).toBe(3);
    const parsed = parseCallerKeys(memoryApiKeys);
    expect(parsed.map((key) => [key.name, key.secret, key.locations && [...key.locations]])).toEqual([
      ['agents', secrets.agents, null],
      ['canary', secrets.canary, null],
      ['tenant-eu', secrets['tenant-eu'], ['loc-a', 'loc-b']],
    ]);
  });

  it('rotation: an update keeps the keys of names that stay, draws new ones only for new names, drops removed ones', async () => {
    const before = (await callerKeysProvider.create({ keys: spec('agents', 'canary') })).outs!;
    expect((await callerKeysProvider.diff!('id', before, { keys: spec('agents', 'canary') })).changes).toBe(false);
    const added = { keys: spec('agents', 'canary', 'agents-2026-12') };
    expect(await callerKeysProvider.diff!('id', before, added)).toMatchObject({ changes: true, replaces: [] });
    const during = (await callerKeysProvider.update!('id', before, added)).outs!;
    expect(during.secrets.agents).toBe(before.secrets.agents);
    expect(during.secrets.canary).toBe(before.secrets.canary);
    expect(during.secrets['agents-2026-12']).toMatch(/^[0-9a-f]{64}$/);
    const after = (await callerKeysProvider.update!('id', during, { keys: spec('canary', 'agents-2026-12') })).outs!;
    expect(after.secrets).toEqual({ canary: before.secrets.canary, 'agents-2026-12': during.secrets['agents-2026-12'] });
    expect(after.memoryApiKeys).not.toContain(before.secrets.agents);
  });
});
