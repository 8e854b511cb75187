import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Request,
  type Response,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  encodeStatus,
  encodedRequestSize,
  encodedResponseSize,
} from './codec.js';
import { guidFromText } from './guid.js';
import { Limits } from './limits.js';
import { EfiStatus } from './status.js';
import { utf16le } from './utf16.js';

const GLOBAL = guidFromText('8be4df61-93ca-11d2-aa0d-00e098032b8c')!;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const fromHex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

function encodeReq(request: Request): Uint8Array {
  const out = new Uint8Array(Limits.BUFFER_SIZE);
  return out.subarray(0, encodeRequest(request, out));
}
function encodeRes(response: Response): Uint8Array {
  const out = new Uint8Array(Limits.BUFFER_SIZE);
  return out.subarray(0, encodeResponse(response, out));
}

// Golden layouts: packages/protocol/README.md, Encoding (little-endian, u64 lengths, no padding).
describe('request layouts (golden bytes)', () => {
  const name = utf16le('Boot'); // 8 bytes
  const guidHex = '61dfe48bca93d211aa0d00e098032b8c';

  it('GetVariable: version, command, name, guid, u64 data size, u8 at_runtime', () => {
    const bytes = encodeReq({ command: 'GetVariable', name, guid: GLOBAL, dataSize: 0x1234, atRuntime: true });
    expect(hex(bytes)).toBe(
      '01000000' + '00000000' + '0800000000000000' + hex(name) + guidHex + '3412000000000000' + '01',
    );
  });

  it('SetVariable: version, command, name, guid, data, u32 attributes, u8 at_runtime', () => {
    const bytes = encodeReq({
      command: 'SetVariable',
      name,
      guid: GLOBAL,
      data: Uint8Array.of(0xaa, 0xbb),
      attributes: 7,
      atRuntime: false,
    });
    expect(hex(bytes)).toBe(
      '01000000' +
        '01000000' +
        '0800000000000000' +
        hex(name) +
        guidHex +
        '0200000000000000' +
        'aabb' +
        '07000000' +
        '00',
    );
  });

  it('GetNextVariableName: version, command, u64 name buffer size, name, guid, u8 at_runtime', () => {
    const bytes = encodeReq({ command: 'GetNextVariableName', nameSize: 512, name, guid: GLOBAL, atRuntime: false });
    expect(hex(bytes)).toBe(
      '01000000' + '02000000' + '0002000000000000' + '0800000000000000' + hex(name) + guidHex + '00',
    );
  });

  it('QueryVariableInfo: version, command, u32 attributes', () => {
    expect(hex(encodeReq({ command: 'QueryVariableInfo', attributes: 7 }))).toBe('01000000' + '03000000' + '07000000');
  });

  it('NotifySBFailure: version and command only', () => {
    expect(hex(encodeReq({ command: 'NotifySBFailure' }))).toBe('01000000' + '04000000');
  });
});

describe('response layouts (golden bytes)', () => {
  it('GetVariable SUCCESS: status, u32 attributes, u64 length, data', () => {
    const bytes = encodeRes({
      command: 'GetVariable',
      status: EfiStatus.SUCCESS,
      attributes: 6,
      data: Uint8Array.of(1),
    });
    expect(hex(bytes)).toBe('0000000000000000' + '06000000' + '0100000000000000' + '01');
  });

  it('BUFFER_TOO_SMALL carries the required size', () => {
    expect(hex(encodeRes({ command: 'GetVariable', status: EfiStatus.BUFFER_TOO_SMALL, requiredSize: 300 }))).toBe(
      '0500000000000080' + '2c01000000000000',
    );
    expect(
      hex(encodeRes({ command: 'GetNextVariableName', status: EfiStatus.BUFFER_TOO_SMALL, requiredSize: 10 })),
    ).toBe('0500000000000080' + '0a00000000000000');
  });

  it('GetNextVariableName SUCCESS: status, u64 name length, name, guid', () => {
    const bytes = encodeRes({
      command: 'GetNextVariableName',
      status: EfiStatus.SUCCESS,
      name: utf16le('PK'),
      guid: GLOBAL,
    });
    expect(hex(bytes)).toBe('0000000000000000' + '0400000000000000' + '50004b00' + '61dfe48bca93d211aa0d00e098032b8c');
  });

  it('QueryVariableInfo SUCCESS: status and three u64 sizes', () => {
    const bytes = encodeRes({
      command: 'QueryVariableInfo',
      status: EfiStatus.SUCCESS,
      maximumStorageSize: 131072,
      remainingStorageSize: 1000,
      maximumVariableSize: 57344,
    });
    expect(hex(bytes)).toBe('0000000000000000' + '0000020000000000' + 'e803000000000000' + '00e0000000000000');
  });

  it('errors are the status alone', () => {
    for (const command of [
      'GetVariable',
      'SetVariable',
      'GetNextVariableName',
      'QueryVariableInfo',
      'NotifySBFailure',
    ] as const) {
      expect(hex(encodeRes({ command, status: EfiStatus.NOT_FOUND } as Response))).toBe('0e00000000000080');
    }
    const out = new Uint8Array(8);
    expect(encodeStatus(EfiStatus.UNSUPPORTED, out)).toBe(8);
    expect(hex(out)).toBe('0300000000000080');
  });

  it('refuses to write past the output buffer', () => {
    expect(() =>
      encodeResponse(
        { command: 'GetVariable', status: 0n, attributes: 1, data: new Uint8Array(100) },
        new Uint8Array(50),
      ),
    ).toThrow(RangeError);
    expect(() => encodeRequest({ command: 'QueryVariableInfo', attributes: 0 }, new Uint8Array(11))).toThrow(
      RangeError,
    );
  });

  it('a SUCCESS response without its fields is a programming error', () => {
    expect(() => encodeResponse({ command: 'GetVariable', status: 0n }, new Uint8Array(64))).toThrow(TypeError);
  });
});

describe('decodeRequest errors', () => {
  it('answers UNSUPPORTED to another protocol version', () => {
    const r = decodeRequest(fromHex('02000000 00000000'));
    expect(r).toMatchObject({ ok: false, status: EfiStatus.UNSUPPORTED, command: 0 });
  });

  it('answers UNSUPPORTED to an unknown command', () => {
    expect(decodeRequest(fromHex('01000000 05000000'))).toMatchObject({
      ok: false,
      status: EfiStatus.UNSUPPORTED,
      command: 5,
    });
    expect(decodeRequest(fromHex('01000000 ffffffff'))).toMatchObject({ ok: false, status: EfiStatus.UNSUPPORTED });
  });

  it('answers INVALID_PARAMETER when the header itself is cut short', () => {
    expect(decodeRequest(new Uint8Array(0))).toMatchObject({ ok: false, status: EfiStatus.INVALID_PARAMETER });
    expect(decodeRequest(fromHex('010000'))).toMatchObject({ ok: false, status: EfiStatus.INVALID_PARAMETER });
  });

  it('answers INVALID_PARAMETER to a u64 length with high bits set, before it becomes a number', () => {
    const r = decodeRequest(fromHex('01000000 00000000 0400000001000000 50004b00'));
    expect(r).toMatchObject({ ok: false, status: EfiStatus.INVALID_PARAMETER });
    if (!r.ok) expect(r.reason).toMatch(/name length/);
  });

  it('answers INVALID_PARAMETER to a length past the 64 KiB buffer', () => {
    const buf = new Uint8Array(Limits.BUFFER_SIZE);
    buf.set(fromHex('01000000 01000000 0200000000000000 4100'));
    buf.set(GLOBAL, 18);
    new DataView(buf.buffer).setUint32(34, Limits.BUFFER_SIZE, true); // data length
    expect(decodeRequest(buf)).toMatchObject({ ok: false, status: EfiStatus.INVALID_PARAMETER });
  });

  it('never looks beyond the 64 KiB buffer even when given more', () => {
    const req = encodeReq({
      command: 'SetVariable',
      name: utf16le('X'),
      guid: GLOBAL,
      data: new Uint8Array(Limits.BUFFER_SIZE - 47),
      attributes: 7,
      atRuntime: false,
    });
    expect(req.length).toBe(Limits.BUFFER_SIZE);
    expect(decodeRequest(req).ok).toBe(true);
    // One more data byte only fits if the decoder read past the buffer.
    const big = new Uint8Array(Limits.BUFFER_SIZE + 1);
    encodeRequest(
      {
        command: 'SetVariable',
        name: utf16le('X'),
        guid: GLOBAL,
        data: new Uint8Array(Limits.BUFFER_SIZE - 46),
        attributes: 7,
        atRuntime: false,
      },
      big,
    );
    expect(decodeRequest(big)).toMatchObject({ ok: false, status: EfiStatus.INVALID_PARAMETER });
  });

  it('saturates huge capacities instead of losing precision', () => {
    const bytes = fromHex('01000000 00000000 0200000000000000 4100' + '00'.repeat(16) + 'ffffffffffffffff 00');
    const r = decodeRequest(bytes);
    expect(r.ok && r.request.command === 'GetVariable' && r.request.dataSize).toBe(Number.MAX_SAFE_INTEGER);
  });
});

// ------------------------------------------------------------------------------------------
// Property tests

const bytesArb = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max });
const guidArb = fc.uint8Array({ minLength: 16, maxLength: 16 });
const u32 = fc.nat({ max: 0xffff_ffff });
const capacity = fc.nat({ max: Number.MAX_SAFE_INTEGER });

const requestArb: fc.Arbitrary<Request> = fc.oneof(
  fc.record({
    command: fc.constant('GetVariable' as const),
    name: bytesArb(300),
    guid: guidArb,
    dataSize: capacity,
    atRuntime: fc.boolean(),
  }),
  fc.record({
    command: fc.constant('SetVariable' as const),
    name: bytesArb(300),
    guid: guidArb,
    data: bytesArb(2000),
    attributes: u32,
    atRuntime: fc.boolean(),
  }),
  fc.record({
    command: fc.constant('GetNextVariableName' as const),
    nameSize: capacity,
    name: bytesArb(300),
    guid: guidArb,
    atRuntime: fc.boolean(),
  }),
  fc.record({ command: fc.constant('QueryVariableInfo' as const), attributes: u32 }),
  fc.record({ command: fc.constant('NotifySBFailure' as const) }),
);

const statusArb = fc.constantFrom(...Object.values(EfiStatus));
const responseArb: fc.Arbitrary<Response> = fc.oneof(
  fc.record({
    command: fc.constant('GetVariable' as const),
    status: fc.constant(EfiStatus.SUCCESS),
    attributes: u32,
    data: bytesArb(2000),
  }),
  fc.record({
    command: fc.constant('GetVariable' as const),
    status: fc.constant(EfiStatus.BUFFER_TOO_SMALL),
    requiredSize: capacity,
  }),
  fc.record({
    command: fc.constant('GetNextVariableName' as const),
    status: fc.constant(EfiStatus.SUCCESS),
    name: bytesArb(300),
    guid: guidArb,
  }),
  fc.record({
    command: fc.constant('GetNextVariableName' as const),
    status: fc.constant(EfiStatus.BUFFER_TOO_SMALL),
    requiredSize: capacity,
  }),
  fc.record({
    command: fc.constant('QueryVariableInfo' as const),
    status: fc.constant(EfiStatus.SUCCESS),
    maximumStorageSize: capacity,
    remainingStorageSize: capacity,
    maximumVariableSize: capacity,
  }),
  fc.record({ command: fc.constantFrom('SetVariable' as const, 'NotifySBFailure' as const), status: statusArb }),
  fc.record({
    command: fc.constantFrom('GetVariable' as const, 'GetNextVariableName' as const, 'QueryVariableInfo' as const),
    status: statusArb.filter((s) => s !== EfiStatus.SUCCESS && s !== EfiStatus.BUFFER_TOO_SMALL),
  }),
);

describe('properties', () => {
  it('decodeRequest ∘ encodeRequest is the identity for every command', () => {
    fc.assert(
      fc.property(requestArb, (request) => {
        const bytes = encodeReq(request);
        expect(bytes.length).toBe(encodedRequestSize(request));
        const decoded = decodeRequest(bytes);
        expect(decoded).toEqual({ ok: true, request });
      }),
    );
  });

  it('a request decodes the same inside a zero-filled 64 KiB buffer', () => {
    fc.assert(
      fc.property(requestArb, (request) => {
        const buffer = new Uint8Array(Limits.BUFFER_SIZE);
        encodeRequest(request, buffer);
        expect(decodeRequest(buffer)).toEqual({ ok: true, request });
      }),
      { numRuns: 50 },
    );
  });

  it('decodeResponse ∘ encodeResponse is the identity', () => {
    fc.assert(
      fc.property(responseArb, (response) => {
        const bytes = encodeRes(response);
        expect(bytes.length).toBe(encodedResponseSize(response));
        expect(decodeResponse(response.command, bytes)).toEqual({ ok: true, response });
      }),
    );
  });

  it('decodeRequest never throws and every view lies inside the input', () => {
    const check = (bytes: Uint8Array): void => {
      const r = decodeRequest(bytes);
      if (!r.ok) {
        expect(typeof r.reason).toBe('string');
        return;
      }
      const req = r.request;
      for (const part of ['name', 'guid', 'data'] as const) {
        const view = (req as unknown as Record<string, Uint8Array | undefined>)[part];
        if (view === undefined) continue;
        expect(view.buffer).toBe(bytes.buffer);
        expect(view.byteOffset + view.length).toBeLessThanOrEqual(
          bytes.byteOffset + Math.min(bytes.length, Limits.BUFFER_SIZE),
        );
      }
    };
    fc.assert(fc.property(bytesArb(600), check), { numRuns: 2000 });
    // Mutations of valid frames reach deeper than random bytes do.
    fc.assert(
      fc.property(
        requestArb,
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 8 }),
        fc.nat(),
        (request, edits, cut) => {
          const bytes = Uint8Array.from(encodeReq(request));
          for (const [at, value] of edits) bytes[at % bytes.length] = value;
          check(bytes);
          check(bytes.subarray(0, cut % (bytes.length + 1)));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('decodeResponse never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(
          'GetVariable',
          'SetVariable',
          'GetNextVariableName',
          'QueryVariableInfo',
          'NotifySBFailure' as const,
        ),
        bytesArb(100),
        (command, bytes) => {
          const r = decodeResponse(command, bytes);
          expect(typeof r.ok).toBe('boolean');
        },
      ),
      { numRuns: 2000 },
    );
  });
});
