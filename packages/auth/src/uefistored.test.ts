import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Attr, Guids, utf16le, VariableStore } from '@vmsb/efi';
import { statusName } from '@vmsb/protocol';
import { describe, expect, it } from 'vitest';
import { parseAuthentication2 } from './authentication2.js';
import { createAuthenticator } from './authenticator.js';
import { signedContent } from './pkcs7.js';
import { ATTRS, guidFor } from './testing/pki.js';
import { verifyAuthenticatedData } from './verify.js';

// Cross-check against xcp-ng/uefistored's efitools-made vectors (GPL: read in place when present,
// never copied into this repository).
const DIR = '/work/shared/vectors/uefistored/certs';
const read = (name: string): Uint8Array => new Uint8Array(readFileSync(join(DIR, name)));

describe.skipIf(!existsSync(DIR))('uefistored test vectors', () => {
  it('serializes PK.auth to the published check value', () => {
    const d = parseAuthentication2(read('PK.auth'));
    if (!d.ok) throw new Error(d.reason);
    const content = signedContent(
      utf16le('PK'),
      Guids.GLOBAL_VARIABLE,
      0x27,
      d.descriptor.timestamp,
      d.descriptor.payload,
    );
    expect(content.length).toBe(1379);
    expect(createHash('sha256').update(content).digest('hex')).toBe(
      '41f82fee79ddfcbd70a3f684d132492ae9c6b96bda7cc9b9a771dc0b22f70309',
    );
  });

  it('verifies each file with the key that signed it, and only with it', () => {
    const pk = read('PK.der');
    const kek = read('KEK.der');
    const badPk = read('badPK.der');
    const cases: [file: string, variable: string, append: boolean, signer: Uint8Array, others: Uint8Array[]][] = [
      ['PK.auth', 'PK', false, pk, [kek, badPk]],
      ['KEK.auth', 'KEK', false, pk, [kek]],
      ['db.auth', 'db', false, kek, [pk]],
      ['db-signed-by-KEK.auth', 'db', false, kek, [pk]],
      ['db-signed-by-PK.auth', 'db', false, pk, [kek]],
      ['db-append.auth', 'db', true, kek, [pk]],
      ['newPK.auth', 'PK', false, pk, [badPk]],
      ['nullPK.auth', 'PK', false, pk, [kek]],
      ['badPK.auth', 'PK', false, badPk, [pk]],
    ];
    for (const [file, variable, append, signer, others] of cases) {
      const input = {
        name: variable,
        guid: guidFor(variable),
        attributes: ATTRS | (append ? Attr.APPEND_WRITE : 0),
        data: read(file),
      };
      const ok = verifyAuthenticatedData({ ...input, trusted: [signer] });
      expect(ok.ok, `${file}: ${ok.ok ? '' : ok.reason}`).toBe(true);
      expect(verifyAuthenticatedData({ ...input, trusted: others }).ok, file).toBe(false);
    }
  });

  it('accepts the ContentInfo-wrapped files as well', () => {
    for (const file of ['DB-signed-by-KEK.auth', 'DB-signed-by-PK.auth']) {
      const d = parseAuthentication2(read(file));
      expect(d.ok).toBe(true);
      if (!d.ok) continue;
      expect(Buffer.from(d.descriptor.certData.subarray(4, 15)).toString('hex')).toBe('06092a864886f70d010702');
      const r = verifyAuthenticatedData({
        name: 'db',
        guid: Guids.IMAGE_SECURITY_DATABASE,
        attributes: ATTRS,
        data: read(file),
        trusted: [],
      });
      // Parsed and signature-checked up to the (absent) trust decision.
      expect(!r.ok && r.code).toBe('wrong-signer');
    }
  });

  it('runs the uefistored scenario through VariableStore', () => {
    const store = VariableStore.create({
      platform: { secureBoot: true, authEnforce: true },
      authenticator: createAuthenticator(),
    });
    const set = (variable: string, file: string, append = false): string => {
      const r = store.setVariable(
        utf16le(variable),
        guidFor(variable),
        ATTRS | (append ? Attr.APPEND_WRITE : 0),
        read(file),
      );
      r.pending?.commit();
      return statusName(r.status);
    };
    expect(set('PK', 'PK.auth')).toBe('SUCCESS');
    expect(store.setupMode).toBe(false);
    expect(set('KEK', 'KEK.auth')).toBe('SUCCESS');
    expect(set('db', 'db.auth')).toBe('SUCCESS');
    expect(set('db', 'db-signed-by-PK.auth')).toBe('SUCCESS');
    expect(set('db', 'db-signed-by-KEK.auth')).toBe('SUCCESS');
    expect(set('db', 'db-signed-by-KEK.auth')).toBe('SECURITY_VIOLATION'); // replay
    expect(set('db', 'db-append.auth', true)).toBe('SUCCESS');
    expect(set('PK', 'badPK.auth')).toBe('SECURITY_VIOLATION');
    expect(set('PK', 'nullPK.auth')).toBe('SUCCESS');
    expect(store.setupMode).toBe(true);
  });
});
