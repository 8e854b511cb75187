import { Guids } from '@vmsb/efi';
import { EfiStatus } from '@vmsb/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildAuthentication2, parseAuthentication2, WIN_CERT_TYPE_EFI_GUID } from './authentication2.js';
import { time } from './testing/pki.js';

const STAMP = time(2024, 5, 6, 7, 8, 9);

function descriptor(
  fields: {
    length?: number;
    certificateType?: number;
    certType?: Uint8Array;
    stamp?: Uint8Array;
    cert?: number;
    payload?: number;
  } = {},
): Uint8Array {
  const d = buildAuthentication2(
    fields.stamp ?? STAMP,
    new Uint8Array(fields.cert ?? 10).fill(0x30),
    new Uint8Array(fields.payload ?? 5).fill(0xee),
  );
  const v = new DataView(d.buffer);
  if (fields.length !== undefined) v.setUint32(16, fields.length, true);
  if (fields.certificateType !== undefined) v.setUint16(22, fields.certificateType, true);
  if (fields.certType !== undefined) d.set(fields.certType, 24);
  return d;
}

function problem(data: Uint8Array): string | undefined {
  const r = parseAuthentication2(data);
  if (r.ok) return undefined;
  expect(r.status).toBe(EfiStatus.SECURITY_VIOLATION);
  return r.problem;
}

describe('EFI_VARIABLE_AUTHENTICATION_2', () => {
  it('splits descriptor, signature and payload', () => {
    const r = parseAuthentication2(descriptor({ cert: 10, payload: 5 }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.descriptor.length).toBe(34);
    expect(r.descriptor.revision).toBe(0x0200);
    expect(r.descriptor.certificateType).toBe(WIN_CERT_TYPE_EFI_GUID);
    expect(r.descriptor.certData).toEqual(new Uint8Array(10).fill(0x30));
    expect(r.descriptor.payload).toEqual(new Uint8Array(5).fill(0xee));
    expect(r.descriptor.time).toMatchObject({ year: 2024, month: 5, day: 6, hour: 7, minute: 8, second: 9 });
  });

  it('applies edk2 framing: DataSize >= 40, 24 <= dwLength <= DataSize - 16', () => {
    const d = descriptor({ cert: 10, payload: 5 }); // 55 bytes, dwLength 34
    expect(problem(d.subarray(0, 39))).toBe('malformed-descriptor');
    expect(problem(d.subarray(0, 40))).toBe('malformed-descriptor'); // dwLength 34 > 40 - 16
    expect(problem(d.subarray(0, 50))).toBeUndefined(); // dwLength = DataSize - 16: empty payload
    expect(problem(descriptor({ length: 23 }))).toBe('malformed-descriptor');
    expect(problem(descriptor({ length: 24 }))).toBeUndefined(); // no signature at all: framing is fine
    expect(problem(descriptor({ length: 0xffffffff }))).toBe('malformed-descriptor');
    expect(problem(descriptor({ cert: 10, payload: 5, length: 34 + 5 }))).toBeUndefined();
    expect(problem(descriptor({ cert: 10, payload: 5, length: 34 + 6 }))).toBe('malformed-descriptor');
    const empty = parseAuthentication2(descriptor({ length: 24, cert: 0, payload: 0 }));
    expect(empty.ok && empty.descriptor.certData.length).toBe(0);
  });

  it('requires Pad1, Nanosecond, TimeZone, Daylight and Pad2 to be zero', () => {
    for (const [offset, value] of [
      [7, 1],
      [8, 1],
      [11, 0x80],
      [12, 1],
      [13, 0x07],
      [14, 1],
      [15, 1],
    ] as const) {
      const stamp = STAMP.slice();
      stamp[offset] = value;
      expect(problem(descriptor({ stamp })), `byte ${offset}`).toBe('timestamp-fields');
    }
    // Calendar values are not range-checked (real fixtures carry day 0).
    expect(problem(descriptor({ stamp: time(1900, 1, 0) }))).toBeUndefined();
  });

  it('requires WIN_CERT_TYPE_EFI_GUID with EFI_CERT_TYPE_PKCS7_GUID, whatever wRevision says', () => {
    expect(problem(descriptor({ certificateType: 0x0002 }))).toBe('certificate-type');
    expect(problem(descriptor({ certType: Guids.CERT_TYPE_RSA2048_SHA256 }))).toBe('certificate-type');
    const d = descriptor();
    new DataView(d.buffer).setUint16(20, 0x0100, true);
    expect(problem(d)).toBeUndefined();
  });

  it('round-trips and never throws', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), (cert, payload) => {
        const r = parseAuthentication2(buildAuthentication2(STAMP, cert, payload));
        expect(r.ok).toBe(true);
        if (r.ok) {
          expect(r.descriptor.certData).toEqual(cert);
          expect(r.descriptor.payload).toEqual(payload);
        }
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (data) => {
        const r = parseAuthentication2(data);
        if (r.ok) {
          expect(40 + r.descriptor.certData.length + r.descriptor.payload.length).toBe(data.length);
          expect(r.descriptor.length).toBeGreaterThanOrEqual(24);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
