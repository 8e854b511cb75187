import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Attr, Attrs } from '@vmsb/efi';
import { EfiStatus, Limits } from '@vmsb/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyAuthFiles, readAuthFiles, type AuthFile } from './provision.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmsb-provision-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function recorder(refuse?: string) {
  const calls: string[] = [];
  const events: string[] = [];
  return {
    calls,
    events,
    set: async (file: AuthFile, attributes: number) => {
      calls.push(`${file.name}:${attributes.toString(16)}`);
      return file.name === refuse
        ? { status: EfiStatus.SECURITY_VIOLATION, reason: 'bad signature' }
        : { status: EfiStatus.SUCCESS };
    },
    on: {
      missing: (f: AuthFile) => void events.push(`missing ${f.name}`),
      setting: (f: AuthFile) => void events.push(`setting ${f.name}`),
    },
  };
}

describe('first-boot auth files', () => {
  it('reads dbx, db, KEK and PK in that order, and says why one has no data', async () => {
    await writeFile(join(dir, 'db.auth'), Uint8Array.of(1));
    await writeFile(join(dir, 'KEK.auth'), new Uint8Array(Limits.DATA_MAX + 1));
    await mkdir(join(dir, 'PK.auth'));
    const files = await readAuthFiles(dir);
    expect(files.map((f) => [f.name, f.problem?.kind ?? 'ok'])).toEqual([
      ['dbx', 'missing'],
      ['db', 'ok'],
      ['KEK', 'too-large'],
      ['PK', 'unreadable'],
    ]);
    expect(files[0]!.problem!.message).toBe(`Auth file '${join(dir, 'dbx.auth')}' is missing!`);
  });

  it('appends dbx, writes the others NV|BS|RT|AT, skips a missing dbx and stops at a missing PK', async () => {
    await writeFile(join(dir, 'db.auth'), Uint8Array.of(1));
    await writeFile(join(dir, 'KEK.auth'), Uint8Array.of(2));
    const r = recorder();
    const result = await applyAuthFiles(await readAuthFiles(dir), r.set, r.on);
    expect(result).toEqual({ ok: true, applied: ['db', 'KEK'] });
    const nvBsRtAt = Attrs.NV_BS_RT_AT.toString(16);
    expect(r.calls).toEqual([`db:${nvBsRtAt}`, `KEK:${nvBsRtAt}`]);
    expect(r.events).toEqual(['missing dbx', 'setting db', 'setting KEK', 'missing PK']);

    await writeFile(join(dir, 'dbx.auth'), Uint8Array.of(3));
    const all = recorder('KEK');
    const refused = await applyAuthFiles(await readAuthFiles(dir), all.set, all.on);
    expect(all.calls[0]).toBe(`dbx:${(Attrs.NV_BS_RT_AT | Attr.APPEND_WRITE).toString(16)}`);
    expect(refused).toMatchObject({
      ok: false,
      applied: ['dbx', 'db'],
      refused: { name: 'KEK' },
      status: EfiStatus.SECURITY_VIOLATION,
      reason: 'bad signature',
    });
  });
});
