import { createHash } from 'node:crypto';
import { Attr, checkSignatureLists, Guids, utf16le } from '@vmsb/efi';
import { describe, expect, it } from 'vitest';
import { parseAuthentication2 } from './authentication2.js';
import { parseSignedData, signedContent, verifyWithAnchor, VerificationContext } from './pkcs7.js';
import { fixture } from './testing/pki.js';
import { verifyAuthenticatedData } from './verify.js';
import { parseCertificate } from './x509.js';

// Microsoft's real dbx update (vendored with its licence), signed by a short-lived
// "Microsoft Windows UEFI Key Exchange Key" leaf under Microsoft Corporation KEK CA 2011.
const dbxUpdate = fixture('microsoft/DBXUpdate-amd64.bin');
const kekCa2011 = fixture('microsoft/MicCorKEKCA2011_2011-06-24.der');
const kek2kCa2023 = fixture('microsoft/MicCorKEK2kCA2023.der');
const DBX = utf16le('dbx');
const APPEND_ATTRS = 0x67;
const REPLACE_ATTRS = 0x27;

function context(attributes: number) {
  const d = parseAuthentication2(dbxUpdate);
  if (!d.ok) throw new Error(d.reason);
  const sd = parseSignedData(d.descriptor.certData);
  if (!sd.ok) throw new Error(sd.reason);
  const content = signedContent(
    DBX,
    Guids.IMAGE_SECURITY_DATABASE,
    attributes,
    d.descriptor.timestamp,
    d.descriptor.payload,
  );
  return {
    descriptor: d.descriptor,
    signedData: sd.signedData,
    content,
    ctx: new VerificationContext(sd.signedData, content),
  };
}

function anchor(der: Uint8Array) {
  const r = parseCertificate(der);
  if (!r.ok) throw new Error(r.reason);
  return r.certificate;
}

describe('Microsoft DBXUpdate (amd64)', () => {
  it('has the descriptor Microsoft published', () => {
    const { descriptor, signedData } = context(APPEND_ATTRS);
    expect(descriptor.length).toBe(3321);
    expect(Buffer.from(descriptor.timestamp.subarray(0, 8)).toString('hex')).toBe('da07030613111500');
    expect(descriptor.payload.length).toBe(21292);
    expect(signedData.wrapped).toBe(false);
    expect(signedData.signerInfo.signedAttributes).toBeUndefined();
    const lists = checkSignatureLists(descriptor.payload);
    expect(lists.ok && lists.lists.length === 1 && lists.lists[0]!.signatures.length).toBe(443);
  });

  it('serializes the signed content to the published check value', () => {
    const { content } = context(APPEND_ATTRS);
    expect(content.length).toBe(21334);
    expect(createHash('sha256').update(content).digest('hex')).toBe(
      '4f65577594d9fef1e76b0dc93fb6a11a443f22fc9b3f24c61b02a9286e85d68e',
    );
  });

  it('verifies as an append against KEK CA 2011, through the leaf it carries', () => {
    const { ctx } = context(APPEND_ATTRS);
    const r = verifyWithAnchor(ctx, anchor(kekCa2011));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.signer.subjectText).toContain('Microsoft Windows UEFI Key Exchange Key');
    // The leaf's validity ended long before some runs of this test; dates are not checked.
    expect(r.chain.map((c) => c.subjectText)).toEqual([r.signer.subjectText, anchor(kekCa2011).subjectText]);
    expect(r.signer.basicConstraints).toEqual({ ca: false, pathLength: undefined });
    expect(r.signer.notAfter).toBe('2026-06-23T18:23:53Z');
  });

  it('fails as a non-append write (the attributes are part of what is signed)', () => {
    const { ctx } = context(REPLACE_ATTRS);
    const r = verifyWithAnchor(ctx, anchor(kekCa2011));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/does not verify/);
  });

  it('fails under another name, GUID or a changed payload byte', () => {
    const d = parseAuthentication2(dbxUpdate);
    if (!d.ok) throw new Error(d.reason);
    const sd = parseSignedData(d.descriptor.certData);
    if (!sd.ok) throw new Error(sd.reason);
    const payload = d.descriptor.payload.slice();
    payload[100]! ^= 1;
    const cases = [
      signedContent(
        utf16le('db'),
        Guids.IMAGE_SECURITY_DATABASE,
        APPEND_ATTRS,
        d.descriptor.timestamp,
        d.descriptor.payload,
      ),
      signedContent(DBX, Guids.GLOBAL_VARIABLE, APPEND_ATTRS, d.descriptor.timestamp, d.descriptor.payload),
      signedContent(DBX, Guids.IMAGE_SECURITY_DATABASE, APPEND_ATTRS, d.descriptor.timestamp, payload),
    ];
    for (const content of cases)
      expect(verifyWithAnchor(new VerificationContext(sd.signedData, content), anchor(kekCa2011)).ok).toBe(false);
  });

  it('does not verify against KEK 2K CA 2023', () => {
    const { ctx } = context(APPEND_ATTRS);
    const r = verifyWithAnchor(ctx, anchor(kek2kCa2023));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/does not chain to .*KEK 2K CA 2023/);
  });

  it('verifies offline through verifyAuthenticatedData, and explains the non-append failure', () => {
    const ok = verifyAuthenticatedData({
      name: 'dbx',
      guid: Guids.IMAGE_SECURITY_DATABASE,
      attributes: APPEND_ATTRS,
      data: dbxUpdate,
      trusted: [kek2kCa2023, kekCa2011],
    });
    expect(ok.ok).toBe(true);
    if (ok.ok) {
      expect(ok.trustedBy.subject).toContain('Microsoft Corporation KEK CA 2011');
      expect(ok.timestamp).toBe('2010-03-06T19:17:21');
      expect(ok.trustedBy.sha256).toBe(createHash('sha256').update(kekCa2011).digest('hex'));
    }
    const bad = verifyAuthenticatedData({
      name: 'dbx',
      guid: Guids.IMAGE_SECURITY_DATABASE,
      attributes: REPLACE_ATTRS,
      data: dbxUpdate,
      trusted: [kekCa2011],
    });
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.code).toBe('bad-signature');
      expect(bad.reason).toMatch(/APPEND_WRITE/);
    }
    expect(APPEND_ATTRS & Attr.APPEND_WRITE).toBe(Attr.APPEND_WRITE);
  });
});
