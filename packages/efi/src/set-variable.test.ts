import type { FirmwareClient } from '@vmsb/protocol';
import { describe, expect, it } from 'vitest';
import { Attr, Attrs } from './attributes.js';
import { Guids } from './guid.js';
import { D, G, RecordingAuthenticator, S, V, auth2, bytes, client, n, newStore } from './test-helpers.js';
import type { VariableStore } from './store.js';

const { NV_BS_RT, BS, NV_BS, BS_RT, NV_BS_RT_AT } = Attrs;
const AW = Attr.AUTHENTICATED_WRITE_ACCESS;
const AT = Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS;
const AP = Attr.APPEND_WRITE;
const HR = Attr.HARDWARE_ERROR_RECORD;

/** A valid EFI_LOAD_OPTION: attributes, FilePathListLength, L"A", one end node. */
const LOAD_OPTION = bytes(1, 0, 0, 0, 4, 0, 0x41, 0, 0, 0, 0x7f, 0xff, 4, 0);

interface Row {
  readonly row: string;
  readonly what: string;
  readonly setup?: (fw: FirmwareClient, store: VariableStore) => void;
  readonly name?: Uint8Array;
  readonly guid?: Uint8Array;
  readonly attributes: number;
  readonly data: Uint8Array;
  readonly runtime?: boolean;
  readonly status: bigint;
  /** Checked after the write. */
  readonly then?: (fw: FirmwareClient, store: VariableStore) => void;
}

const create =
  (name: string, attributes: number, data: Uint8Array, guid = V) =>
  (fw: FirmwareClient) => {
    expect(fw.setVariable(n(name), guid, attributes, data)).toBe(S.SUCCESS);
  };
const unchanged =
  (name: string, data: Uint8Array, guid = V) =>
  (fw: FirmwareClient) => {
    expect(fw.getVariable(n(name), guid).data).toEqual(data);
  };
const absent =
  (name: string, guid = V) =>
  (fw: FirmwareClient) => {
    expect(fw.getVariable(n(name), guid).status).toBe(S.NOT_FOUND);
  };

// docs/variable-services.md §2, in edk2's check order; each row names the step it exercises.
const rows: Row[] = [
  {
    row: '0 (wire)',
    what: 'name longer than 4096 bytes → DEVICE_ERROR (varstored limit)',
    name: new Uint8Array(4098).fill(0x41),
    attributes: NV_BS_RT,
    data: bytes(1),
    status: S.DEVICE_ERROR,
  },
  {
    row: '0 (wire)',
    what: 'a 4096-byte name is accepted',
    name: new Uint8Array(4096).fill(0x41),
    attributes: NV_BS_RT,
    data: bytes(1),
    status: S.SUCCESS,
  },
  {
    row: '1',
    what: 'empty name → INVALID_PARAMETER',
    name: new Uint8Array(0),
    attributes: NV_BS_RT,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '1',
    what: 'odd-length name → INVALID_PARAMETER',
    name: bytes(0x41, 0, 0x42),
    attributes: NV_BS_RT,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '1',
    what: 'name with an embedded NUL → INVALID_PARAMETER',
    name: bytes(0x41, 0, 0, 0, 0x42, 0),
    attributes: NV_BS_RT,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '1',
    what: 'empty name is checked before attributes',
    name: new Uint8Array(0),
    attributes: 0x100,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '3',
    what: 'reserved bit 0x100 → INVALID_PARAMETER',
    attributes: NV_BS_RT | 0x100,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '3',
    what: 'ENHANCED_AUTHENTICATED_ACCESS (0x80) is reserved in edk2 → INVALID_PARAMETER',
    attributes: NV_BS_RT | 0x80,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '3',
    what: 'bit 31 → INVALID_PARAMETER',
    attributes: (NV_BS_RT | 0x8000_0000) >>> 0,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '3',
    what: 'reserved bits win over AW',
    attributes: AW | 0x80 | NV_BS_RT,
    data: new Uint8Array(560),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '4',
    what: 'RT without BS → INVALID_PARAMETER',
    attributes: Attr.RUNTIME_ACCESS,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '4',
    what: 'NV|RT without BS → INVALID_PARAMETER',
    attributes: Attr.NON_VOLATILE | Attr.RUNTIME_ACCESS,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '4',
    what: 'RT without BS with AW → UNSUPPORTED',
    attributes: Attr.RUNTIME_ACCESS | AW,
    data: bytes(1),
    status: S.UNSUPPORTED,
  },
  {
    row: '5',
    what: 'NV alone → INVALID_PARAMETER',
    attributes: Attr.NON_VOLATILE,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  { row: '5', what: 'NV|AW → UNSUPPORTED', attributes: Attr.NON_VOLATILE | AW, data: bytes(1), status: S.UNSUPPORTED },
  {
    row: '5',
    what: 'NV|APPEND is not "NV alone": no access bits → NOT_FOUND',
    attributes: Attr.NON_VOLATILE | AP,
    data: bytes(1),
    status: S.NOT_FOUND,
  },
  {
    row: '6',
    what: 'HR (no hardware error storage, as OVMF) → INVALID_PARAMETER',
    attributes: NV_BS_RT | HR,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '6',
    what: 'HwErrRec0001 in its own GUID → INVALID_PARAMETER',
    name: n('HwErrRec0001'),
    guid: Guids.HARDWARE_ERROR_VARIABLE,
    attributes: NV_BS_RT | HR,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '6',
    what: 'HR with AT reaches the namespace check → INVALID_PARAMETER',
    attributes: NV_BS_RT | HR | AT,
    data: auth2(bytes(1)),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '7',
    what: 'AW and AT together → UNSUPPORTED',
    attributes: NV_BS_RT | AW | AT,
    data: auth2(bytes(1)),
    status: S.UNSUPPORTED,
  },
  {
    row: '7',
    what: 'AW with DataSize ≠ 560 → UNSUPPORTED',
    attributes: NV_BS_RT | AW,
    data: bytes(1, 2, 3),
    status: S.UNSUPPORTED,
  },
  {
    row: '7',
    what: 'AW with exactly 560 bytes on a plain variable → UNSUPPORTED',
    attributes: NV_BS_RT | AW,
    data: new Uint8Array(560),
    status: S.UNSUPPORTED,
  },
  {
    row: '7',
    what: 'AW with 560 bytes on PK → INVALID_PARAMETER (PK needs NV and AT)',
    name: n('PK'),
    guid: G,
    attributes: NV_BS_RT | AW,
    data: new Uint8Array(560),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '8',
    what: 'AT with DataSize < 40 → SECURITY_VIOLATION',
    attributes: NV_BS_RT_AT,
    data: new Uint8Array(39),
    status: S.SECURITY_VIOLATION,
  },
  {
    row: '8',
    what: 'AT with dwLength > DataSize − 16 → SECURITY_VIOLATION',
    attributes: NV_BS_RT_AT,
    data: withDwLength(auth2(bytes(1)), 1000),
    status: S.SECURITY_VIOLATION,
  },
  {
    row: '8',
    what: 'AT with dwLength < 24 → SECURITY_VIOLATION',
    attributes: NV_BS_RT_AT,
    data: withDwLength(auth2(bytes(1)), 23),
    status: S.SECURITY_VIOLATION,
  },
  {
    row: '8',
    what: 'AT framing is checked before the read-only check',
    name: n('SetupMode'),
    guid: G,
    attributes: NV_BS_RT_AT,
    data: new Uint8Array(10),
    status: S.SECURITY_VIOLATION,
  },
  {
    row: '9',
    what: 'data of 57345 bytes → OUT_OF_RESOURCES (varstored limit)',
    attributes: NV_BS_RT,
    data: new Uint8Array(57345),
    status: S.OUT_OF_RESOURCES,
  },
  {
    row: '9',
    what: 'data of 57344 bytes is accepted',
    attributes: NV_BS_RT,
    data: new Uint8Array(57344),
    status: S.SUCCESS,
  },
  {
    row: '9',
    what: 'an AT payload of 57345 bytes → OUT_OF_RESOURCES',
    attributes: NV_BS_RT_AT,
    data: auth2(new Uint8Array(57345)),
    status: S.OUT_OF_RESOURCES,
  },
  {
    row: '9',
    what: 'the size limit is checked before the read-only check',
    name: n('SecureBoot'),
    guid: G,
    attributes: BS_RT,
    data: new Uint8Array(57345),
    status: S.OUT_OF_RESOURCES,
  },
  {
    row: '10',
    what: 'write to read-only SetupMode → WRITE_PROTECTED',
    name: n('SetupMode'),
    guid: G,
    attributes: BS_RT,
    data: bytes(0),
    status: S.WRITE_PROTECTED,
    then: unchanged('SetupMode', bytes(1), G),
  },
  {
    row: '10',
    what: 'delete of read-only SecureBoot → WRITE_PROTECTED',
    name: n('SecureBoot'),
    guid: G,
    attributes: 0,
    data: new Uint8Array(0),
    status: S.WRITE_PROTECTED,
  },
  {
    row: '10',
    what: 'read-only wins over wrong attributes (SignatureSupport)',
    name: n('SignatureSupport'),
    guid: G,
    attributes: NV_BS_RT,
    data: new Uint8Array(16),
    status: S.WRITE_PROTECTED,
  },
  {
    row: '10',
    what: 'AuditMode and DeployedMode are read-only',
    name: n('DeployedMode'),
    guid: G,
    attributes: BS_RT,
    data: bytes(1),
    status: S.WRITE_PROTECTED,
  },
  {
    row: '10',
    what: 'VendorKeys is read-only',
    name: n('VendorKeys'),
    guid: G,
    attributes: BS_RT,
    data: bytes(0),
    status: S.WRITE_PROTECTED,
  },
  {
    row: '10',
    what: 'creating read-only PKDefault → WRITE_PROTECTED',
    name: n('PKDefault'),
    guid: G,
    attributes: BS_RT,
    data: bytes(1),
    status: S.WRITE_PROTECTED,
  },
  {
    row: '10',
    what: 'BootOrder with NV|BS → INVALID_PARAMETER',
    name: n('BootOrder'),
    guid: G,
    attributes: NV_BS,
    data: bytes(1, 0),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '10',
    what: 'BootOrder of odd size → INVALID_PARAMETER',
    name: n('BootOrder'),
    guid: G,
    attributes: NV_BS_RT,
    data: bytes(1, 0, 2),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '10',
    what: 'BootOrder of even size → SUCCESS',
    name: n('BootOrder'),
    guid: G,
    attributes: NV_BS_RT,
    data: bytes(1, 0, 2, 0),
    status: S.SUCCESS,
  },
  {
    row: '10',
    what: 'Timeout of 3 bytes → INVALID_PARAMETER',
    name: n('Timeout'),
    guid: G,
    attributes: NV_BS_RT,
    data: bytes(1, 0, 0),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '10',
    what: 'OsIndications with APPEND and the right attributes passes the attribute check',
    name: n('OsIndications'),
    guid: G,
    attributes: NV_BS_RT | AP,
    data: new Uint8Array(8),
    status: S.SUCCESS,
  },
  {
    row: '10',
    what: 'undefined name in the global namespace → INVALID_PARAMETER',
    name: n('MyVariable'),
    guid: G,
    attributes: NV_BS_RT,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '10',
    what: 'dbr is not an edk2 name → INVALID_PARAMETER',
    name: n('dbr'),
    guid: D,
    attributes: NV_BS_RT_AT,
    data: auth2(bytes(1)),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '10',
    what: 'deleting an undefined global name skips the namespace check → NOT_FOUND',
    name: n('MyVariable'),
    guid: G,
    attributes: 0,
    data: new Uint8Array(0),
    status: S.NOT_FOUND,
  },
  {
    row: '10',
    what: 'Boot0001 with a valid load option → SUCCESS',
    name: n('Boot0001'),
    guid: G,
    attributes: NV_BS_RT,
    data: LOAD_OPTION,
    status: S.SUCCESS,
  },
  {
    row: '10',
    what: 'Boot000a (lower-case hex) is a load option too',
    name: n('Boot000a'),
    guid: G,
    attributes: NV_BS_RT,
    data: LOAD_OPTION,
    status: S.SUCCESS,
  },
  {
    row: '10',
    what: 'Boot000G is not a defined name → INVALID_PARAMETER',
    name: n('Boot000G'),
    guid: G,
    attributes: NV_BS_RT,
    data: LOAD_OPTION,
    status: S.INVALID_PARAMETER,
  },
  {
    row: '10',
    what: 'Boot0001 with an unterminated description → INVALID_PARAMETER',
    name: n('Boot0001'),
    guid: G,
    attributes: NV_BS_RT,
    data: bytes(1, 0, 0, 0, 4, 0, 0x41, 0, 0x42, 0),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '10',
    what: 'Boot0001 whose file path runs past the data → INVALID_PARAMETER',
    name: n('Boot0001'),
    guid: G,
    attributes: NV_BS_RT,
    data: bytes(1, 0, 0, 0, 8, 0, 0, 0, 0x7f, 0xff, 4, 0),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '10',
    what: 'ConOut that is not a device path → INVALID_PARAMETER',
    name: n('ConOut'),
    guid: G,
    attributes: NV_BS_RT,
    data: bytes(1, 1, 2, 0),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '10',
    what: 'ConOut with an end node → SUCCESS',
    name: n('ConOut'),
    guid: G,
    attributes: NV_BS_RT,
    data: bytes(0x7f, 0xff, 4, 0),
    status: S.SUCCESS,
  },
  {
    row: '10',
    what: 'PlatformLang without a NUL → INVALID_PARAMETER',
    name: n('PlatformLang'),
    guid: G,
    attributes: NV_BS_RT,
    data: bytes(0x65, 0x6e),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '10',
    what: 'Key0001 with a partial EFI_INPUT_KEY → INVALID_PARAMETER',
    name: n('Key0001'),
    guid: G,
    attributes: NV_BS_RT,
    data: new Uint8Array(12),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '10',
    what: 'PK with plain attributes → INVALID_PARAMETER',
    name: n('PK'),
    guid: G,
    attributes: NV_BS_RT,
    data: bytes(1),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '10',
    what: 'db without NV → INVALID_PARAMETER',
    name: n('db'),
    guid: D,
    attributes: BS_RT | AT,
    data: auth2(bytes(1)),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '11',
    what: 'rewrite with different attributes → INVALID_PARAMETER, data kept',
    setup: create('X', NV_BS_RT, bytes(1)),
    attributes: BS_RT,
    data: bytes(2),
    status: S.INVALID_PARAMETER,
    then: unchanged('X', bytes(1)),
  },
  {
    row: '11',
    what: 'attributes 0 deletes an existing variable',
    setup: create('X', NV_BS_RT, bytes(1)),
    attributes: 0,
    data: bytes(2),
    status: S.SUCCESS,
    then: absent('X'),
  },
  {
    row: '11',
    what: 'only APPEND differs → appended',
    setup: create('X', NV_BS_RT, bytes(1)),
    attributes: NV_BS_RT | AP,
    data: bytes(2),
    status: S.SUCCESS,
    then: unchanged('X', bytes(1, 2)),
  },
  {
    row: '11',
    what: 'existing BS-only variable at runtime → WRITE_PROTECTED',
    setup: create('X', NV_BS, bytes(1)),
    attributes: NV_BS,
    data: bytes(2),
    runtime: true,
    status: S.WRITE_PROTECTED,
  },
  {
    row: '11',
    what: 'delete of an existing BS-only variable at runtime → WRITE_PROTECTED (edk2 finds it whatever its RT bit)',
    setup: create('X', NV_BS, bytes(1)),
    attributes: 0,
    data: bytes(),
    runtime: true,
    status: S.WRITE_PROTECTED,
  },
  {
    row: '11',
    what: 'runtime check comes before the attribute check',
    setup: create('X', NV_BS, bytes(1)),
    attributes: NV_BS_RT,
    data: bytes(2),
    runtime: true,
    status: S.WRITE_PROTECTED,
  },
  {
    row: '12',
    what: 'PK delete without AT (attributes 0) → INVALID_PARAMETER',
    name: n('PK'),
    guid: G,
    attributes: 0,
    data: new Uint8Array(0),
    status: S.INVALID_PARAMETER,
  },
  {
    row: '12',
    what: 'TIME_BASED write without an authenticator → SECURITY_VIOLATION',
    attributes: NV_BS_RT_AT,
    data: auth2(bytes(1)),
    status: S.SECURITY_VIOLATION,
    then: absent('X'),
  },
  {
    row: '12',
    what: 'PK enrolment without an authenticator → SECURITY_VIOLATION',
    name: n('PK'),
    guid: G,
    attributes: NV_BS_RT_AT,
    data: auth2(bytes(1)),
    status: S.SECURITY_VIOLATION,
    then: unchanged('SetupMode', bytes(1), G),
  },
  {
    row: '13',
    what: 'existing volatile RT variable at runtime → WRITE_PROTECTED',
    setup: create('X', BS_RT, bytes(1)),
    attributes: BS_RT,
    data: bytes(2),
    runtime: true,
    status: S.WRITE_PROTECTED,
    then: unchanged('X', bytes(1)),
  },
  {
    row: '13',
    what: 'delete of a volatile RT variable at runtime → WRITE_PROTECTED',
    setup: create('X', BS_RT, bytes(1)),
    attributes: 0,
    data: new Uint8Array(0),
    runtime: true,
    status: S.WRITE_PROTECTED,
  },
  {
    row: '13',
    what: 'NV|BS|RT variable can be updated at runtime',
    setup: create('X', NV_BS_RT, bytes(1)),
    attributes: NV_BS_RT,
    data: bytes(2),
    runtime: true,
    status: S.SUCCESS,
    then: unchanged('X', bytes(2)),
  },
  {
    row: '13',
    what: 'DataSize 0 without APPEND deletes',
    setup: create('X', BS, bytes(1)),
    attributes: BS,
    data: new Uint8Array(0),
    status: S.SUCCESS,
    then: absent('X'),
  },
  {
    row: '13',
    what: 'APPEND with DataSize 0 changes nothing and does not delete',
    setup: create('X', BS, bytes(1)),
    attributes: BS | AP,
    data: new Uint8Array(0),
    status: S.SUCCESS,
    then: unchanged('X', bytes(1)),
  },
  {
    row: '13',
    what: 'create at runtime without NV → INVALID_PARAMETER',
    attributes: BS_RT,
    data: bytes(1),
    runtime: true,
    status: S.INVALID_PARAMETER,
  },
  {
    row: '13',
    what: 'create at runtime without RT → INVALID_PARAMETER',
    attributes: NV_BS,
    data: bytes(1),
    runtime: true,
    status: S.INVALID_PARAMETER,
  },
  {
    row: '13',
    what: 'create at runtime with NV|BS|RT → SUCCESS',
    attributes: NV_BS_RT,
    data: bytes(1),
    runtime: true,
    status: S.SUCCESS,
  },
  {
    row: '13',
    what: 'create with DataSize 0 → NOT_FOUND',
    attributes: NV_BS_RT,
    data: new Uint8Array(0),
    status: S.NOT_FOUND,
  },
  {
    row: '13',
    what: 'create with no access attributes → NOT_FOUND',
    attributes: 0,
    data: bytes(1),
    status: S.NOT_FOUND,
  },
  {
    row: '13',
    what: 'APPEND with DataSize 0 on a missing variable → SUCCESS, nothing created',
    attributes: NV_BS_RT | AP,
    data: new Uint8Array(0),
    status: S.SUCCESS,
    then: absent('X'),
  },
  {
    row: '13',
    what: 'APPEND on a missing variable creates it without APPEND',
    attributes: NV_BS_RT | AP,
    data: bytes(7),
    status: S.SUCCESS,
    then: (fw) => expect(fw.getVariable(n('X'), V).attributes).toBe(NV_BS_RT),
  },
  {
    row: '13',
    what: 'append beyond 57344 bytes → OUT_OF_RESOURCES, data kept',
    setup: create('X', NV_BS_RT, new Uint8Array(57000)),
    attributes: NV_BS_RT | AP,
    data: new Uint8Array(345),
    status: S.OUT_OF_RESOURCES,
    then: (fw) => expect(fw.getVariable(n('X'), V).data?.length).toBe(57000),
  },
  {
    row: '13',
    what: 'append up to exactly 57344 bytes → SUCCESS',
    setup: create('X', NV_BS_RT, new Uint8Array(57000)),
    attributes: NV_BS_RT | AP,
    data: new Uint8Array(344),
    status: S.SUCCESS,
  },
  {
    row: '13',
    what: 'store full (131072 with 128 per variable) → OUT_OF_RESOURCES, nothing created',
    setup: (fw) => {
      expect(fw.setVariable(n('A'), V, NV_BS_RT, new Uint8Array(57344))).toBe(S.SUCCESS);
      expect(fw.setVariable(n('B'), V, NV_BS_RT, new Uint8Array(57344))).toBe(S.SUCCESS);
    },
    attributes: NV_BS_RT,
    data: new Uint8Array(57344),
    status: S.OUT_OF_RESOURCES,
    then: absent('X'),
  },
  {
    row: '13',
    what: 'a write that fits exactly in the remaining space → SUCCESS',
    setup: (fw, store) => {
      expect(fw.setVariable(n('A'), V, NV_BS_RT, new Uint8Array(57344))).toBe(S.SUCCESS);
      expect(fw.setVariable(n('B'), V, NV_BS_RT, new Uint8Array(57344))).toBe(S.SUCCESS);
      // C takes everything but what X needs: 2 bytes of name, 2000 of data, 128 of overhead.
      expect(
        fw.setVariable(n('C'), V, NV_BS_RT, new Uint8Array(131072 - store.usedStorage - (128 + 2) - (128 + 2 + 2000))),
      ).toBe(S.SUCCESS);
    },
    attributes: NV_BS_RT,
    data: new Uint8Array(2000),
    status: S.SUCCESS,
    then: (_fw, store) => expect(store.usedStorage).toBe(131072),
  },
];

function withDwLength(data: Uint8Array, dwLength: number): Uint8Array {
  const out = data.slice();
  new DataView(out.buffer).setUint32(16, dwLength, true);
  return out;
}

describe('SetVariable follows edk2 (docs/variable-services.md §2) with varstored limits', () => {
  it.each(rows.map((r) => [`step ${r.row}: ${r.what}`, r] as const))('%s', (_title, r) => {
    const store = newStore();
    const fw = client(store);
    r.setup?.(fw, store);
    fw.atRuntime = r.runtime === true;
    expect(statusText(fw.setVariable(r.name ?? n('X'), r.guid ?? V, r.attributes, r.data))).toBe(statusText(r.status));
    r.then?.(fw, store);
  });

  it('an attribute mismatch on an authenticated variable is refused before the authenticator runs', () => {
    const auth = new RecordingAuthenticator();
    const store = newStore({ authenticator: auth });
    const fw = client(store);
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT, auth2(bytes(1)))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('X'), V, BS_RT | AT, auth2(bytes(2)))).toBe(S.INVALID_PARAMETER);
    expect(fw.setVariable(n('X'), V, NV_BS_RT, bytes(2))).toBe(S.INVALID_PARAMETER);
    expect(auth.calls).toHaveLength(1);
  });

  it('an existing authenticated variable cannot be deleted or rewritten without a descriptor', () => {
    const store = newStore({ authenticator: new RecordingAuthenticator() });
    const fw = client(store);
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT, auth2(bytes(1)))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('X'), V, 0, new Uint8Array(0))).toBe(S.WRITE_PROTECTED);
    expect(fw.getVariable(n('X'), V).data).toEqual(bytes(1));
  });

  it('names are compared byte-exact and case-sensitively', () => {
    const fw = client(newStore());
    expect(fw.setVariable(n('abc'), V, BS, bytes(1))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('ABC'), V, BS, bytes(2))).toBe(S.SUCCESS);
    expect(fw.getVariable(n('abc'), V).data).toEqual(bytes(1));
    expect(fw.getVariable(n('ABC'), V).data).toEqual(bytes(2));
    expect(fw.getVariable(n('abc'), G).status).toBe(S.NOT_FOUND);
  });

  it('delete then delete again → SUCCESS then NOT_FOUND (SCT)', () => {
    const fw = client(newStore());
    expect(fw.setVariable(n('X'), V, NV_BS_RT, bytes(1))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('X'), V, NV_BS_RT, new Uint8Array(0))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('X'), V, NV_BS_RT, new Uint8Array(0))).toBe(S.NOT_FOUND);
  });
});

function statusText(s: bigint): string {
  return `0x${s.toString(16)}`;
}
