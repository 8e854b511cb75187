import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Guids, parseSignatureLists } from '@vmsb/efi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bundledDbxUpdate,
  certificateToPem,
  MICROSOFT_OWNER,
  microsoftCertificates,
  microsoftDbxInfo,
  microsoftDbxSignatureList,
  microsoftSignatureList,
  parseSignableBytes,
  signableBytes,
  splitAuthenticatedVariable,
  verifyAuthenticatedVariable,
} from './index.js';
import { opensslVerify, runOk, scratch, serialization, type Scratch } from './test-support.js';

let s: Scratch;
beforeAll(() => {
  s = scratch();
});
afterAll(() => s.remove());

/** SHA-256 of each vendored file as taken from microsoft/secureboot_objects@06fe58a31d2d. */
const VENDORED: Record<string, string> = {
  'MicCorKEKCA2011_2011-06-24.der': 'a1117f516a32cefcba3f2d1ace10a87972fd6bbe8fe0d0b996e09e65d802a503',
  'MicCorKEK2kCA2023.der': '3cd3f0309edae228767a976dd40d9f4affc4fbd5218f2e8cc3c9dd97e8ac6f9d',
  'MicWinProPCA2011_2011-10-19.der': 'e8e95f0733a55e8bad7be0a1413ee23c51fcea64b3c8fa6a786935fddcc71961',
  'MicCorUEFCA2011_2011-06-27.der': '48e99b991f57fc52f76149599bff0a58c47154229b9f8d603ac40d3500248507',
  'WindowsUEFICA2023.der': '076f1fea90ac29155ebf77c17682f75f1fdd1be196da302dc8461e350a9ae330',
  'MicUEFICA2023.der': 'f6124e34125bee3fe6d79a574eaa7b91c0e7bd9d929c1a321178efd611dad901',
  'MicOptionROMUEFICA2023.der': 'e5be3e64c6e66a281457ecdece0d6d0787577aad2a3a0144262c10c14ba8d8f1',
  'WindowsOEMDevicesPK.der': '2f569e8edaf9657dc4951c29598725255c7f821472db71374211fe44d082546f',
};
const DBX_SHA256 = '2089e3125e611376cb44326b5765674255443b2484f88de97251939d18055f68';

describe('microsoftCertificates', () => {
  it('lists the 2011 and 2023 KEK and db CAs and the OEM devices PK, with the vendored bytes', () => {
    const all = microsoftCertificates();
    expect(all.map((c) => [c.id, c.name, c.generation, c.role, c.purpose])).toEqual([
      ['kek-2011', 'Microsoft Corporation KEK CA 2011', 2011, 'KEK', undefined],
      ['kek-2023', 'Microsoft Corporation KEK 2K CA 2023', 2023, 'KEK', undefined],
      ['db-windows-2011', 'Microsoft Windows Production PCA 2011', 2011, 'db', 'windows'],
      ['db-uefi-2011', 'Microsoft Corporation UEFI CA 2011', 2011, 'db', 'uefi'],
      ['db-windows-2023', 'Windows UEFI CA 2023', 2023, 'db', 'windows'],
      ['db-uefi-2023', 'Microsoft UEFI CA 2023', 2023, 'db', 'uefi'],
      ['db-oprom-2023', 'Microsoft Option ROM UEFI CA 2023', 2023, 'db', 'oprom'],
      ['pk-windows-oem-devices', 'Windows OEM Devices PK', 2023, 'PK', undefined],
    ]);
    for (const c of all) {
      expect(createHash('sha256').update(c.der).digest('hex')).toBe(VENDORED[c.fileName]);
      expect(c.sha256).toBe(VENDORED[c.fileName]);
    }
  });

  it('reports subject and expiry as OpenSSL does', () => {
    for (const c of microsoftCertificates()) {
      const pem = s.write(`${c.id}.pem`, certificateToPem(c.der));
      const out = runOk('openssl', [
        'x509',
        '-in',
        pem,
        '-noout',
        '-enddate',
        '-subject',
        '-nameopt',
        'sep_comma_plus_space,utf8,sname',
      ]);
      const end = /notAfter=(.*)/.exec(out)![1]!;
      expect(c.notAfter.getTime()).toBe(new Date(end).getTime());
      expect(out).toContain(`subject=${c.subject}`);
    }
    const kek2011 = microsoftCertificates({ role: 'KEK', generation: 2011 })[0]!;
    expect(kek2011.notAfter.toISOString()).toBe('2026-06-24T20:51:29.000Z');
    expect(kek2011.subject).toBe(
      'C=US, ST=Washington, L=Redmond, O=Microsoft Corporation, CN=Microsoft Corporation KEK CA 2011',
    );
  });

  it('filters by generation, role and purpose', () => {
    expect(microsoftCertificates({ role: 'db', generation: 2023 }).map((c) => c.id)).toEqual([
      'db-windows-2023',
      'db-uefi-2023',
      'db-oprom-2023',
    ]);
    expect(microsoftCertificates({ purpose: 'uefi' }).map((c) => c.id)).toEqual(['db-uefi-2011', 'db-uefi-2023']);
    expect(microsoftCertificates({ role: 'PK', generation: 2011 })).toEqual([]);
  });

  it('builds signature lists equal to cert-to-efi-sig-list with the Microsoft owner', () => {
    const expected = microsoftCertificates({ role: 'KEK' }).map((c) => {
      const pem = s.write(`${c.id}-esl.pem`, certificateToPem(c.der));
      runOk('cert-to-efi-sig-list', ['-g', MICROSOFT_OWNER, pem, s.path(`${c.id}.esl`)]);
      return Buffer.from(s.read(`${c.id}.esl`));
    });
    expect(microsoftSignatureList({ role: 'KEK' })).toEqual(new Uint8Array(Buffer.concat(expected)));
    const db2023 = parseSignatureLists(microsoftSignatureList({ role: 'db', generation: 2023 }));
    expect(db2023.ok && db2023.lists.length).toBe(3);
    expect(() => microsoftSignatureList({ role: 'PK', generation: 2011 })).toThrow(/no Microsoft certificate/);
  });
});

describe('bundledDbxUpdate', () => {
  it("is Microsoft's amd64 DBXUpdate.bin: 443 SHA-256 hashes, owner Microsoft, timestamp 2010-03-06 19:17:21", () => {
    const u = bundledDbxUpdate();
    expect(createHash('sha256').update(u.bytes).digest('hex')).toBe(DBX_SHA256);
    expect(u.hashCount).toBe(443);
    expect(u.attributes).toBe(0x67);
    expect(u.guid).toEqual(Guids.IMAGE_SECURITY_DATABASE);
    expect(Array.from(u.timestamp.subarray(0, 7))).toEqual([0xda, 0x07, 3, 6, 19, 17, 21]);
    const lists = parseSignatureLists(u.payload);
    expect(lists.ok && lists.lists.map((l) => [l.signatureSize, l.signatures.length])).toEqual([[48, 443]]);
    expect(lists.ok && lists.lists[0]!.signatures.every((e) => e.owner.every((b, i) => b === Guids.MICROSOFT[i]))).toBe(
      true,
    );
  });

  it('verifies with OpenSSL against the Microsoft KEK CA 2011, as an append only', () => {
    const u = bundledDbxUpdate();
    const { certData, payload, timestamp } = splitAuthenticatedVariable(u.bytes);
    const kek2011 = certificateToPem(microsoftCertificates({ role: 'KEK', generation: 2011 })[0]!.der);
    const kek2023 = certificateToPem(microsoftCertificates({ role: 'KEK', generation: 2023 })[0]!.der);
    const signed = signableBytes({ name: 'dbx', attributes: u.attributes, timestamp, payload });
    expect(signed).toEqual(serialization('dbx', Guids.IMAGE_SECURITY_DATABASE, 0x67, timestamp, payload));
    expect(createHash('sha256').update(signed).digest('hex')).toBe(
      '4f65577594d9fef1e76b0dc93fb6a11a443f22fc9b3f24c61b02a9286e85d68e',
    );
    expect(opensslVerify(s, certData, signed, kek2011).status).toBe(0);
    expect(opensslVerify(s, certData, signed, kek2023).status).not.toBe(0);
    expect(
      opensslVerify(s, certData, serialization('dbx', Guids.IMAGE_SECURITY_DATABASE, 0x27, timestamp, payload), kek2011)
        .status,
    ).not.toBe(0);
    expect(parseSignableBytes(signed, 'dbx').attributes).toBe(0x67);
  });

  it('verifies through @vmsb/auth against the KEK CA 2011 and not the 2023 one', () => {
    const u = bundledDbxUpdate();
    const kek2011 = microsoftCertificates({ role: 'KEK', generation: 2011 })[0]!.der;
    const kek2023 = microsoftCertificates({ role: 'KEK', generation: 2023 })[0]!.der;
    const ok = verifyAuthenticatedVariable({ name: 'dbx', append: true, auth: u.bytes, trusted: [kek2023, kek2011] });
    expect(ok.ok).toBe(true);
    if (ok.ok) expect(ok.trustedBy.subject).toContain('Microsoft Corporation KEK CA 2011');
    const wrongAnchor = verifyAuthenticatedVariable({ name: 'dbx', append: true, auth: u.bytes, trusted: [kek2023] });
    expect(wrongAnchor.ok).toBe(false);
    const notAppend = verifyAuthenticatedVariable({ name: 'dbx', auth: u.bytes, trusted: [kek2011] });
    expect(notAppend.ok).toBe(false);
  });
});

describe('microsoftDbxInfo', () => {
  it('describes every architecture; the x64 list is exactly the bundled update payload', () => {
    const info = microsoftDbxInfo();
    expect(Object.fromEntries(Object.entries(info.images).map(([k, v]) => [k, v.length]))).toEqual({
      x64: 443,
      ia32: 94,
      aarch64: 26,
      arm: 110,
    });
    expect(info.certificates.map((c) => c.value)).toContain('MicWinProPCA2011_2011-10-19.der');
    expect(info.svns).toHaveLength(3);
    expect(microsoftDbxSignatureList('x64')).toEqual(bundledDbxUpdate().payload);
    const arm = parseSignatureLists(microsoftDbxSignatureList('arm'));
    expect(arm.ok && arm.lists[0]!.signatures.length).toBe(110);
  });
});

describe('vendored data', () => {
  it('ships with the licence, a provenance note, and in the package files', () => {
    const dir = new URL('../data/microsoft/', import.meta.url);
    expect(readFileSync(new URL('License.txt', dir), 'utf8')).toMatch(/BSD-2-Clause-Patent/);
    const readme = readFileSync(new URL('README.md', dir), 'utf8');
    for (const name of [...Object.keys(VENDORED), 'DBXUpdate-amd64.bin', 'dbx_info_msft_latest.json']) {
      expect(existsSync(new URL(name, dir))).toBe(true);
      expect(readme).toContain(name);
    }
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('data');
  });
});
