import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ArchiveError,
  decodeTar,
  decodeUefiCertificates,
  encodeTar,
  encodeUefiCertificates,
} from './uefi-certificates.js';

describe('Pool.custom_uefi_certificates archives', () => {
  it('round-trips any members', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({
            name: fc.constantFrom('PK.auth', 'KEK.auth', 'db.auth', 'dbx.auth', 'x.auth'),
            data: fc.uint8Array({ maxLength: 2000 }),
          }),
          { selector: (m) => m.name, maxLength: 5 },
        ),
        (members) => {
          expect(decodeUefiCertificates(encodeUefiCertificates(members, 1_700_000_000))).toEqual(members);
        },
      ),
    );
  });

  it('is read and written by GNU tar (the peer XAPI and secureboot-certs interoperate with)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmsb-tar-'));
    try {
      const members = [
        { name: 'PK.auth', data: new Uint8Array([1, 2, 3]) },
        { name: 'db.auth', data: new Uint8Array(1500).fill(7) },
      ];
      writeFileSync(join(dir, 'ours.tar'), encodeTar(members, 1_700_000_000));
      expect(execFileSync('tar', ['-tvf', join(dir, 'ours.tar')]).toString()).toMatch(/root\/root\s+3 2023-11-14/);
      execFileSync('tar', ['-xf', join(dir, 'ours.tar'), '-C', dir]);
      expect(new Uint8Array(readFileSync(join(dir, 'db.auth')))).toEqual(members[1]!.data);
      // GNU tar's own archive, with a directory prefix as XAPI's reader of /var/lib/varstored writes.
      execFileSync('mkdir', ['-p', join(dir, 'var/lib/varstored')]);
      writeFileSync(join(dir, 'var/lib/varstored/KEK.auth'), 'kek');
      execFileSync('tar', ['-cf', join(dir, 'theirs.tar'), '-C', dir, 'var']);
      expect(decodeTar(new Uint8Array(readFileSync(join(dir, 'theirs.tar'))))).toEqual([
        { name: 'KEK.auth', data: new Uint8Array(Buffer.from('kek')) },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses what is not a bounded tar of regular files', () => {
    expect(decodeUefiCertificates('')).toEqual([]);
    expect(() => decodeUefiCertificates('not base64!')).toThrow(ArchiveError);
    const good = encodeTar([{ name: 'PK.auth', data: new Uint8Array(10) }], 0);
    const bad = good.slice();
    bad[0] = 0x51; // name changed, checksum not
    expect(() => decodeTar(bad)).toThrow(/checksum/);
    expect(() => decodeTar(good.subarray(0, 300))).toThrow(/inside a tar header/);
    const big = encodeTar([{ name: 'db.auth', data: new Uint8Array(60_000) }], 0);
    expect(() => decodeTar(big)).toThrow(/more than a variable can hold/);
    expect(() => encodeTar([{ name: '../PK.auth', data: new Uint8Array(1) }], 0)).toThrow(ArchiveError);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (bytes) => {
        try {
          decodeTar(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(ArchiveError);
        }
      }),
    );
  });
});
