import { readFileSync, writeFileSync } from 'node:fs';
import {
  Attr,
  Guids,
  guidToText,
  serializeSignatureLists,
  signatureListOfHashes,
  utf16le,
  VariableStore,
} from '@vmsb/efi';
import { statusName } from '@vmsb/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAuthentication2 } from './authentication2.js';
import { createAuthenticator } from './authenticator.js';
import { signedContent } from './pkcs7.js';
import { ATTRS, guidFor, Pki, run, type Issued } from './testing/pki.js';

// efitools' sign-efi-sig-list is an independent implementation of the UEFI serialization and of the
// PKCS#7 it signs: what it produces must verify here, and what it would sign must equal ours.

let pki: Pki;
let pk: Issued;
let kek: Issued;
let other: Issued;

beforeAll(() => {
  pki = new Pki();
  pk = pki.issue('efitools PK');
  kek = pki.issue('efitools KEK');
  other = pki.issue('efitools Other');
});

afterAll(() => pki.dispose());

function hashes(...values: number[]): Uint8Array {
  return serializeSignatureLists([
    signatureListOfHashes(
      Guids.CERT_SHA256,
      values.map((v) => new Uint8Array(32).fill(v)),
      Guids.MICROSOFT,
    ),
  ]);
}

/** The bundle sign-efi-sig-list would sign (`-o`). */
function efitoolsBundle(
  variable: string,
  payload: Uint8Array,
  timestamp: string,
  options: { append?: boolean; vendor?: Uint8Array } = {},
): Uint8Array {
  const inPath = pki.path('bundle-in.esl');
  const outPath = pki.path('bundle.bin');
  writeFileSync(inPath, payload);
  const args = ['-o', '-t', timestamp];
  if (options.append === true) args.push('-a');
  if (options.vendor !== undefined) args.push('-g', guidToText(options.vendor));
  run('sign-efi-sig-list', [...args, variable, inPath, outPath]);
  return new Uint8Array(readFileSync(outPath));
}

function set(store: VariableStore, name: string, data: Uint8Array, append = false, guid = guidFor(name)): bigint {
  const r = store.setVariable(utf16le(name), guid, ATTRS | (append ? Attr.APPEND_WRITE : 0), data);
  r.pending?.commit();
  return r.status;
}

describe('interoperability with efitools', () => {
  it('serializes exactly what sign-efi-sig-list signs', () => {
    const payload = pki.esl(pk);
    for (const [variable, append, vendor] of [
      ['PK', false, undefined],
      ['KEK', false, undefined],
      ['db', true, undefined],
      ['dbx', false, undefined],
      ['MyVariable', false, Guids.CITRIX],
    ] as const) {
      const auth = pki.efitoolsAuth(variable, payload, pk, {
        timestamp: '2024-02-29 23:59:58',
        append,
        ...(vendor === undefined ? {} : { vendorGuid: vendor }),
      });
      const d = parseAuthentication2(auth);
      expect(d.ok).toBe(true);
      if (!d.ok) return;
      const ours = signedContent(
        utf16le(variable),
        vendor ?? guidFor(variable),
        ATTRS | (append ? Attr.APPEND_WRITE : 0),
        d.descriptor.timestamp,
        d.descriptor.payload,
      );
      expect(ours, variable).toEqual(
        efitoolsBundle(variable, payload, '2024-02-29 23:59:58', {
          append,
          ...(vendor === undefined ? {} : { vendor }),
        }),
      );
      expect(d.descriptor.time).toMatchObject({ year: 2024, month: 2, day: 29, hour: 23, minute: 59, second: 58 });
    }
  });

  it('provisions {dbx (append), db, KEK, PK}.auth files in that order, as first boot does, then takes updates', () => {
    const files = {
      dbx: pki.efitoolsAuth('dbx', hashes(0xd0, 0xd1), kek, { timestamp: '2021-08-11 12:20:49', append: true }),
      db: pki.efitoolsAuth('db', pki.esl(other), kek, { timestamp: '2021-08-11 12:20:50' }),
      KEK: pki.efitoolsAuth('KEK', pki.esl(kek), pk, { timestamp: '2021-08-11 12:20:51' }),
      PK: pki.efitoolsAuth('PK', pki.esl(pk), pk, { timestamp: '2021-08-11 12:20:52' }),
    };
    const store = VariableStore.create({
      platform: { secureBoot: true, authEnforce: true },
      authenticator: createAuthenticator(),
    });
    expect(statusName(set(store, 'dbx', files.dbx, true))).toBe('SUCCESS');
    expect(statusName(set(store, 'db', files.db))).toBe('SUCCESS');
    expect(statusName(set(store, 'KEK', files.KEK))).toBe('SUCCESS');
    expect(statusName(set(store, 'PK', files.PK))).toBe('SUCCESS');
    expect(store.setupMode).toBe(false);
    expect(store.secureBoot).toBe(true);

    // User mode: efitools-signed updates.
    const dbAppend = pki.efitoolsAuth('db', hashes(0xdb), kek, { timestamp: '2021-01-01 00:00:00', append: true });
    expect(statusName(set(store, 'db', dbAppend, true))).toBe('SUCCESS');
    expect(statusName(set(store, 'db', dbAppend, false))).toBe('SECURITY_VIOLATION');
    const kekByKek = pki.efitoolsAuth('KEK', pki.esl(other), kek, { timestamp: '2022-01-01 00:00:00' });
    expect(statusName(set(store, 'KEK', kekByKek))).toBe('SECURITY_VIOLATION');
    const kekByPk = pki.efitoolsAuth('KEK', pki.esl(other), pk, { timestamp: '2022-01-01 00:00:00' });
    expect(statusName(set(store, 'KEK', kekByPk))).toBe('SUCCESS');
    expect(statusName(set(store, 'KEK', kekByPk))).toBe('SECURITY_VIOLATION'); // replay
    const dbByOther = pki.efitoolsAuth('db', hashes(1), other, { timestamp: '2023-01-01 00:00:00' });
    expect(statusName(set(store, 'db', dbByOther))).toBe('SUCCESS'); // other is now in KEK
  });

  it('verifies a private variable signed by sign-efi-sig-list', () => {
    const store = VariableStore.create({
      platform: { secureBoot: false, authEnforce: true },
      authenticator: createAuthenticator(),
    });
    const first = pki.efitoolsAuth('MyVariable', hashes(1), other, {
      timestamp: '2021-08-11 12:20:49',
      vendorGuid: Guids.CITRIX,
    });
    expect(statusName(set(store, 'MyVariable', first, false, Guids.CITRIX))).toBe('SUCCESS');
    const byPk = pki.efitoolsAuth('MyVariable', hashes(2), pk, {
      timestamp: '2021-08-11 12:20:50',
      vendorGuid: Guids.CITRIX,
    });
    expect(statusName(set(store, 'MyVariable', byPk, false, Guids.CITRIX))).toBe('SECURITY_VIOLATION');
  });
});
