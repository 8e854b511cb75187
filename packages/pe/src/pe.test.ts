/**
 * Authenticode hashing and edk2's image verification, cross-checked against real peers: pesign
 * (the Authenticode hash), sbsign/sbverify (signing and verification), openssl (keys), and the
 * signed shim and GRUB binaries Debian ships (shim-signed, grub-efi-amd64-signed: scripts/setup
 * installs them).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Guids, serializeSignatureLists, signatureListOfCertificate, signatureListOfHashes } from '@vmsb/efi';
import { microsoftCertificates } from '@vmsb/keys';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  authenticodeDigest,
  parsePeImage,
  readCertificateTable,
  verifyImage,
  type ImageSecurityDatabases,
} from './index.js';
import { pseudoRandomBytes, syntheticImage } from './testing/images.js';

vi.setConfig({ testTimeout: 60_000 });

const SHIM = '/usr/lib/shim/shimx64.efi.signed';
const SHIM_UNSIGNED = '/usr/lib/shim/shimx64.efi';
const GRUB = '/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed';
const OWNER = new Uint8Array(16).fill(0x11);

function run(command: string, args: readonly string[]): { code: number; out: string } {
  try {
    return { code: 0, out: execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString() };
  } catch (e) {
    const err = e as { status?: number; stdout?: Buffer; stderr?: Buffer };
    return { code: err.status ?? -1, out: `${err.stdout?.toString() ?? ''}${err.stderr?.toString() ?? ''}` };
  }
}

function requireFile(path: string, pkg: string): void {
  if (!existsSync(path))
    throw new Error(`${path} is missing: install the Debian package "${pkg}" (scripts/setup does)`);
}

function requireTool(command: string, pkg: string): void {
  if (run('sh', ['-c', `command -v ${command}`]).code !== 0)
    throw new Error(`${command} is missing: install the Debian package "${pkg}" (scripts/setup does)`);
}

/** pesign's Authenticode SHA-256 of a file. */
function pesignHash(path: string): string {
  const r = run('pesign', ['-h', '-P', '-i', path]);
  const m = /hash:\s*([0-9a-f]{64})/.exec(r.out);
  if (m === null) throw new Error(`pesign -h ${path}: ${r.out}`);
  return m[1]!;
}

function sha256Of(bytes: Uint8Array): string {
  const p = parsePeImage(bytes);
  if (!p.ok) throw new Error(p.reason);
  const d = authenticodeDigest(bytes, p.image);
  if (!d.ok) throw new Error(d.reason);
  return Buffer.from(d.digest).toString('hex');
}

const certList = (...ders: Uint8Array[]): Uint8Array =>
  serializeSignatureLists(ders.map((der) => signatureListOfCertificate(der, OWNER)));
const hashList = (type: Uint8Array, ...hashes: Uint8Array[]): Uint8Array =>
  serializeSignatureLists([signatureListOfHashes(type, hashes, OWNER)]);
const ms = (id: string): Uint8Array => microsoftCertificates().find((c) => c.id === id)!.der;

let work: string;
let key: string;
let crt: string;
let der: Uint8Array;

beforeAll(() => {
  for (const [tool, pkg] of [
    ['pesign', 'pesign'],
    ['sbsign', 'sbsigntool'],
    ['sbverify', 'sbsigntool'],
    ['openssl', 'openssl'],
  ] as const)
    requireTool(tool, pkg);
  requireFile(SHIM, 'shim-signed');
  requireFile(GRUB, 'grub-efi-amd64-signed');
  work = mkdtempSync(join(tmpdir(), 'vmsb-pe-'));
  key = join(work, 'signer.key');
  crt = join(work, 'signer.crt');
  const r = run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    crt,
    '-subj',
    '/CN=Image Signer',
    '-days',
    '30',
  ]);
  if (r.code !== 0) throw new Error(r.out);
  der = new Uint8Array(execFileSync('openssl', ['x509', '-in', crt, '-outform', 'DER']));
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A Microsoft certificate as a PEM file (what sbverify --cert reads). */
function pemOf(id: string): string {
  const path = join(work, `${id}.pem`);
  if (!existsSync(path)) {
    writeFileSync(join(work, `${id}.der`), ms(id));
    run('openssl', ['x509', '-inform', 'DER', '-in', join(work, `${id}.der`), '-out', path]);
  }
  return path;
}

/** Writes `bytes`, signs it with sbsign (the test key), returns the signed image. */
function sbsign(name: string, bytes: Uint8Array, signer = { key: '', crt: '' }): Uint8Array {
  const input = join(work, `${name}.efi`);
  const output = join(work, `${name}.signed.efi`);
  writeFileSync(input, bytes);
  const r = run('sbsign', ['--key', signer.key || key, '--cert', signer.crt || crt, '--output', output, input]);
  if (r.code !== 0) throw new Error(`sbsign: ${r.out}`);
  return new Uint8Array(readFileSync(output));
}

describe('Authenticode hash', () => {
  it("equals pesign on Debian's signed shim and GRUB (PE32+, several signatures, gaps between sections)", () => {
    for (const path of [SHIM, GRUB]) {
      expect(sha256Of(new Uint8Array(readFileSync(path)))).toBe(pesignHash(path));
    }
  });

  it('equals the digest sbsign signs and pesign, for PE32 and PE32+, with trailing data and sections out of file order', () => {
    for (const [name, image, inOrder] of [
      ['pe32', syntheticImage({ format: 'PE32', trailer: pseudoRandomBytes(8, 3) }), true],
      ['pe32plus', syntheticImage({ format: 'PE32+', trailer: pseudoRandomBytes(16, 4) }), true],
      // edk2 and sbsign sort sections by file offset; pesign hashes them in table order.
      [
        'pe32-reversed',
        syntheticImage({ format: 'PE32', reverseFileOrder: true, trailer: pseudoRandomBytes(8, 5) }),
        false,
      ],
      ['pe32plus-reversed', syntheticImage({ format: 'PE32+', reverseFileOrder: true }), false],
    ] as const) {
      const signed = sbsign(name, image);
      const hash = sha256Of(signed);
      if (inOrder) expect(hash).toBe(pesignHash(join(work, `${name}.signed.efi`)));
      else expect(hash).not.toBe(pesignHash(join(work, `${name}.signed.efi`)));
      // The signature's SpcIndirectDataContent ends with the digest sbsign computed itself.
      expect(Buffer.from(signed).includes(Buffer.from(hash, 'hex'))).toBe(true);
      // Signing adds only the table: the hash of the unsigned image (8-byte aligned) is the same.
      expect(sha256Of(image)).toBe(hash);
    }
  });

  it('leaves out CheckSum and the certificate-table entry, and counts every section byte', () => {
    const image = syntheticImage();
    const base = sha256Of(image);
    const p = parsePeImage(image);
    if (!p.ok) throw new Error(p.reason);
    const checksum = image.slice();
    checksum[p.image.checksumOffset] = (checksum[p.image.checksumOffset] ?? 0) ^ 0xff;
    expect(sha256Of(checksum)).toBe(base);
    const section = image.slice();
    const at = p.image.sections[0]!.pointerToRawData + 5;
    section[at] = (section[at] ?? 0) ^ 1;
    expect(sha256Of(section)).not.toBe(base);
    // A header without a certificate-table entry hashes everything after CheckSum.
    expect(sha256Of(syntheticImage({ numberOfRvaAndSizes: 4 }))).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is the SHA-256 of the exact ranges edk2 hashes for an unsigned image', () => {
    const image = syntheticImage({ trailer: pseudoRandomBytes(5, 9) });
    const p = parsePeImage(image);
    if (!p.ok) throw new Error(p.reason);
    const c = p.image.checksumOffset;
    const s = p.image.securityEntryOffset!;
    const expected = createHash('sha256')
      .update(image.subarray(0, c))
      .update(image.subarray(c + 4, s))
      .update(image.subarray(s + 8))
      .digest('hex');
    expect(sha256Of(image)).toBe(expected);
  });
});

describe('verifyImage against db and dbx, as sbverify --cert decides', () => {
  it('accepts the real shim by UEFI CA 2011 (signature 1) or UEFI CA 2023 (signature 2), refuses it with only the Windows CA', () => {
    // sbverify is no oracle here: it reports "Signature verification OK" for this shim with any
    // --cert at all (an unrelated self-signed one too). The signatures themselves are: each
    // carries the digest Microsoft's signing computed, and it equals ours.
    const shim = new Uint8Array(readFileSync(SHIM));
    const p = parsePeImage(shim);
    if (!p.ok) throw new Error(p.reason);
    expect(readCertificateTable(shim, p.image).entries).toHaveLength(2);
    for (const [id, decidedBy] of [
      ['db-uefi-2011', 0],
      ['db-uefi-2023', 1],
    ] as const) {
      const v = verifyImage(shim, { db: certList(ms(id)), dbx: undefined });
      expect([v.allowed, v.decidedBy, v.match?.database, v.match?.type]).toEqual([true, decidedBy, 'db', 'CERT_X509']);
    }
    const v = verifyImage(shim, { db: certList(ms('db-windows-2011'), der), dbx: undefined });
    expect(v.allowed).toBe(false);
    expect(v.signatures.map((s) => s.outcome)).toEqual(['untrusted', 'untrusted']);
    // Revoking UEFI CA 2011 in dbx refuses it even though UEFI CA 2023 in db would accept signature 2.
    const revoked = verifyImage(shim, { db: certList(ms('db-uefi-2023')), dbx: certList(ms('db-uefi-2011')) });
    expect([revoked.allowed, revoked.decidedBy, revoked.match?.database]).toEqual([false, 0, 'dbx']);
  });

  it("accepts Debian's GRUB by the Debian CA that shim carries, and refuses it by Microsoft's CAs, as sbverify does", () => {
    // The CA shim trusts for GRUB is in shim's vendor-certificate section: a 16-byte header
    // (authorized size, deauthorized size, authorized offset, deauthorized offset), then the DER.
    const shim = new Uint8Array(readFileSync(SHIM));
    const p = parsePeImage(shim);
    if (!p.ok) throw new Error(p.reason);
    const view = new DataView(shim.buffer, shim.byteOffset, shim.byteLength);
    const section = p.image.sections.find((s) => {
      const at = s.pointerToRawData;
      return (
        s.sizeOfRawData >= 20 && view.getUint32(at + 8, true) === 16 && shim[at + 16] === 0x30 && shim[at + 17] === 0x82
      );
    });
    if (section === undefined) throw new Error('no vendor certificate section in shim');
    const debianCa = shim.slice(
      section.pointerToRawData + 16,
      section.pointerToRawData + 16 + view.getUint32(section.pointerToRawData, true),
    );
    writeFileSync(join(work, 'debian.der'), debianCa);
    run('openssl', ['x509', '-inform', 'DER', '-in', join(work, 'debian.der'), '-out', join(work, 'debian.pem')]);
    const grub = new Uint8Array(readFileSync(GRUB));
    expect(run('sbverify', ['--cert', join(work, 'debian.pem'), GRUB]).code).toBe(0);
    const ok = verifyImage(grub, { db: certList(debianCa), dbx: undefined });
    expect([ok.allowed, ok.match?.certificate?.subject]).toEqual([true, 'CN=Debian Secure Boot CA']);
    for (const id of ['db-uefi-2011', 'db-uefi-2023', 'db-windows-2011']) {
      expect(run('sbverify', ['--cert', pemOf(id), GRUB]).code).not.toBe(0);
      expect(verifyImage(grub, { db: certList(ms(id)), dbx: undefined }).allowed).toBe(false);
    }
    expect(run('sbverify', ['--cert', crt, GRUB]).code).not.toBe(0);
    expect(verifyImage(grub, { db: certList(der), dbx: undefined }).allowed).toBe(false);
  });

  it('follows sbverify for an image signed with a test key: allowed by its certificate, refused by another', () => {
    const signed = sbsign('own', syntheticImage());
    const path = join(work, 'own.signed.efi');
    expect(run('sbverify', ['--cert', crt, path]).code).toBe(0);
    expect(verifyImage(signed, { db: certList(der), dbx: undefined }).allowed).toBe(true);
    expect(run('sbverify', ['--cert', pemOf('db-windows-2011'), path]).code).not.toBe(0);
    expect(verifyImage(signed, { db: certList(ms('db-windows-2011')), dbx: undefined }).allowed).toBe(false);
  });

  it('refuses when dbx holds the signer certificate, its TBS hash, or the image hash; dbx wins over db', () => {
    const signed = sbsign('revoked', syntheticImage({ trailer: pseudoRandomBytes(8, 7) }));
    const db = certList(der);
    const hash = Buffer.from(sha256Of(signed), 'hex');
    const tbs = (() => {
      const out = execFileSync('openssl', ['asn1parse', '-in', crt, '-strparse', '4', '-noout', '-out', '-']);
      return createHash('sha256').update(out).digest();
    })();
    const cases: [string, ImageSecurityDatabases, string][] = [
      ['certificate', { db, dbx: certList(der) }, 'CERT_X509'],
      [
        'TBS hash',
        {
          db,
          dbx: serializeSignatureLists([
            signatureListOfHashes(Guids.CERT_X509_SHA256, [new Uint8Array([...tbs, ...new Uint8Array(16)])], OWNER),
          ]),
        },
        'CERT_X509_SHA256',
      ],
      ['image hash', { db, dbx: hashList(Guids.CERT_SHA256, hash) }, 'CERT_SHA256'],
    ];
    for (const [what, dbs, type] of cases) {
      const v = verifyImage(signed, dbs);
      expect([what, v.allowed, v.match?.database, v.match?.type]).toEqual([what, false, 'dbx', type]);
    }
    // Unrelated dbx entries change nothing.
    expect(verifyImage(signed, { db, dbx: hashList(Guids.CERT_SHA256, new Uint8Array(32)) }).allowed).toBe(true);
  });

  it('accepts an unsigned image only by its hash in db, and a signed one by hash too', () => {
    const image = syntheticImage();
    const hash = Buffer.from(sha256Of(image), 'hex');
    expect(verifyImage(image, { db: certList(der), dbx: undefined }).reason).toBe(
      'unsigned, and its SHA-256 hash is not in db',
    );
    const v = verifyImage(image, { db: hashList(Guids.CERT_SHA256, hash), dbx: undefined });
    expect([v.allowed, v.signed, v.match?.type]).toEqual([true, false, 'CERT_SHA256']);
    expect(
      verifyImage(image, { db: hashList(Guids.CERT_SHA256, hash), dbx: hashList(Guids.CERT_SHA256, hash) }).allowed,
    ).toBe(false);
    const signed = sbsign('byhash', image);
    const s = verifyImage(signed, { db: hashList(Guids.CERT_SHA256, hash), dbx: undefined });
    expect([s.allowed, s.signed, s.decidedBy]).toEqual([true, true, 0]);
  });

  it('refuses an image changed after signing, and one whose certificate table is corrupt', () => {
    const signed = sbsign('tampered', syntheticImage());
    const p = parsePeImage(signed);
    if (!p.ok) throw new Error(p.reason);
    const changed = signed.slice();
    const at = p.image.sections[1]!.pointerToRawData;
    changed[at] = (changed[at] ?? 0) ^ 1;
    const v = verifyImage(changed, { db: certList(der), dbx: undefined });
    expect(v.allowed).toBe(false);
    expect(v.signatures[0]!.detail).toContain('changed after signing');
    // dwLength of the first entry one byte larger than the table.
    const corrupt = signed.slice();
    const table = p.image.certificateTable!;
    new DataView(corrupt.buffer).setUint32(table.offset, table.size + 1, true);
    const c = verifyImage(corrupt, { db: certList(der), dbx: undefined });
    expect(c.allowed).toBe(false);
    expect(c.reason).toContain('certificate table is corrupt');
  });

  it('never throws, whatever the bytes', () => {
    const base = sbsign('fuzz', syntheticImage());
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.nat(base.length),
        (edits, cut) => {
          const bytes = base.slice(0, Math.max(cut, 2));
          for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
          const v = verifyImage(bytes, { db: certList(der), dbx: certList(ms('db-uefi-2011')) });
          expect(typeof v.allowed).toBe('boolean');
        },
      ),
      { numRuns: 200 },
    );
    for (const junk of [new Uint8Array(0), new Uint8Array([0x4d, 0x5a]), new Uint8Array(4096)])
      expect(verifyImage(junk, { db: undefined, dbx: undefined }).allowed).toBe(false);
  });

  it('refuses TE images and non-PE files with a reason', () => {
    expect(verifyImage(new Uint8Array([0x56, 0x5a, 0, 0]), { db: undefined, dbx: undefined }).reason).toContain(
      'TE image',
    );
    expect(
      verifyImage(new Uint8Array(readFileSync(SHIM_UNSIGNED)).subarray(0, 100), { db: undefined, dbx: undefined })
        .allowed,
    ).toBe(false);
  });
});
