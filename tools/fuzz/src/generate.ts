/**
 * Frames for the guest surface. Most start valid — built field by field as OVMF would, from a
 * dictionary of real names, GUIDs and attributes and from correctly signed updates — and are then
 * mutated where parsers are most likely to go wrong: length and count fields, GUIDs, attributes,
 * EFI_VARIABLE_AUTHENTICATION_2 descriptors, the PKCS#7 DER tree, and signature lists. The rest are
 * raw random frames. Every choice comes from the seeded generator.
 */
import { Attr, Guids } from '@vmsb/efi';
import { certificateDer } from '@vmsb/keys';
import { BOOT_OPTIONS } from '@vmsb/guest-sim';
import { concatBytes as concat, guidFromText, Limits, utf16le } from '@vmsb/protocol';
import { FUZZ_VENDOR, testKeys, type Corpus, type SeedWrite } from './corpus.js';
import { allNodes, cloneNode, encodeDer, nest, parseDer, tlv, type DerNode, type LengthForm } from './der.js';
import type { Random } from './random.js';

export interface FuzzInput {
  /** What the guest put at the start of its 64 KiB buffer. */
  readonly frame: Uint8Array;
  /** Which generator made it (for statistics and reports). */
  readonly kind: string;
  /**
   * Abuse of the socket framing (daemon target only): `oversize` declares more than 65536 bytes,
   * `truncated` ends the connection in the middle of the frame. In-process, the frame is dispatched
   * as it is.
   */
  readonly transport?: 'oversize' | 'truncated';
}

/** A variable the generator may aim at. */
export interface VariableRef {
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Frames as fields, so that mutation can aim at a length, a count or a GUID and keep the rest.

type Role =
  | 'version'
  | 'command'
  | 'nameLen'
  | 'name'
  | 'guid'
  | 'capacity'
  | 'dataLen'
  | 'data'
  | 'attributes'
  | 'runtime';
type Field =
  | { kind: 'u8' | 'u32' | 'u64'; value: bigint; role: Role }
  | { kind: 'bytes'; value: Uint8Array; role: Role };

const u8 = (value: number | bigint, role: Role): Field => ({ kind: 'u8', value: BigInt(value), role });
const u32 = (value: number | bigint, role: Role): Field => ({ kind: 'u32', value: BigInt(value), role });
const u64 = (value: number | bigint, role: Role): Field => ({ kind: 'u64', value: BigInt(value), role });
const raw = (value: Uint8Array, role: Role): Field => ({ kind: 'bytes', value, role });

function serialize(fields: readonly Field[]): Uint8Array {
  let size = 0;
  for (const f of fields) size += f.kind === 'bytes' ? f.value.length : f.kind === 'u8' ? 1 : f.kind === 'u32' ? 4 : 8;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let o = 0;
  for (const f of fields) {
    switch (f.kind) {
      case 'u8':
        view.setUint8(o, Number(BigInt.asUintN(8, f.value)));
        o += 1;
        break;
      case 'u32':
        view.setUint32(o, Number(BigInt.asUintN(32, f.value)), true);
        o += 4;
        break;
      case 'u64':
        view.setBigUint64(o, BigInt.asUintN(64, f.value), true);
        o += 8;
        break;
      default:
        out.set(f.value, o);
        o += f.value.length;
    }
  }
  return out;
}

function getFields(name: Uint8Array, guid: Uint8Array, capacity: bigint, runtime: number): Field[] {
  return [
    u32(1, 'version'),
    u32(0, 'command'),
    u64(name.length, 'nameLen'),
    raw(name, 'name'),
    raw(guid, 'guid'),
    u64(capacity, 'capacity'),
    u8(runtime, 'runtime'),
  ];
}

function setFields(name: Uint8Array, guid: Uint8Array, data: Uint8Array, attributes: number, runtime: number): Field[] {
  return [
    u32(1, 'version'),
    u32(1, 'command'),
    u64(name.length, 'nameLen'),
    raw(name, 'name'),
    raw(guid, 'guid'),
    u64(data.length, 'dataLen'),
    raw(data, 'data'),
    u32(attributes, 'attributes'),
    u8(runtime, 'runtime'),
  ];
}

function nextFields(capacity: bigint, name: Uint8Array, guid: Uint8Array, runtime: number): Field[] {
  return [
    u32(1, 'version'),
    u32(2, 'command'),
    u64(capacity, 'capacity'),
    u64(name.length, 'nameLen'),
    raw(name, 'name'),
    raw(guid, 'guid'),
    u8(runtime, 'runtime'),
  ];
}

// ---------------------------------------------------------------------------------------------
// Dictionaries

const KNOWN_NAMES = [
  'Boot0000',
  'Boot0001',
  'Boot0002',
  'Boot0003',
  'BootFFFF',
  'boot0001',
  'Boot000G',
  'BootOrder',
  'BootNext',
  'BootCurrent',
  'BootOptionSupport',
  'Timeout',
  'Lang',
  'LangCodes',
  'PlatformLang',
  'PlatformLangCodes',
  'ConIn',
  'ConOut',
  'ErrOut',
  'ConInDev',
  'ConOutDev',
  'ErrOutDev',
  'Key0000',
  'Key0001',
  'Driver0000',
  'DriverOrder',
  'SysPrep0000',
  'SysPrepOrder',
  'PlatformRecovery0000',
  'OsIndications',
  'OsIndicationsSupported',
  'OsRecoveryOrder',
  'SecureBoot',
  'SetupMode',
  'AuditMode',
  'DeployedMode',
  'VendorKeys',
  'SignatureSupport',
  'PK',
  'KEK',
  'PKDefault',
  'KEKDefault',
  'dbDefault',
  'dbxDefault',
  'db',
  'dbx',
  'dbt',
  'dbr',
  'HwErrRec0000',
  'HwErrRecSupport',
  'MemoryOverwriteRequestControl',
  'MemoryOverwriteRequestControlLock',
  'Tcg2PhysicalPresenceFlags',
  'Tcg2PhysicalPresenceFlagsLock',
  'PPIBuffer',
  'MTC',
  'MemoryTypeInformation',
  'MokList',
  'MokListRT',
  'SbatLevel',
  'CustomMode',
  'SecureBootEnable',
  'FuzzPrivate',
  'FuzzPrivateRt',
  'FuzzVolatile',
  'FuzzBootOnly',
  'CapsuleUpdateData',
  'RuntimeServicesSupported',
];

const KNOWN_GUIDS: readonly Uint8Array[] = [
  ...Object.values(Guids),
  FUZZ_VENDOR,
  // MonotonicCounterRuntimeDxe's MTC, and gEfiMemoryTypeInformationGuid.
  guidFromText('eb704011-1402-11d3-8e77-00a0c969723b')!,
  guidFromText('4c19049f-4137-4dd3-9c10-8b97a83ffdfa')!,
  new Uint8Array(16),
  new Uint8Array(16).fill(0xff),
];

const INTERESTING_ATTRIBUTES = [
  0, 1, 2, 3, 4, 5, 6, 7, 0x0b, 0x0f, 0x17, 0x21, 0x23, 0x25, 0x26, 0x27, 0x2f, 0x37, 0x41, 0x43, 0x46, 0x47, 0x61,
  0x67, 0x6f, 0x77, 0x87, 0xa7, 0x107, 0x40000007, 0x80000007, 0xffffffff,
];

function interestingLength(rng: Random, actual: number): bigint {
  return BigInt.asUintN(
    64,
    rng.pick<bigint>([
      0n,
      1n,
      2n,
      BigInt(actual) - 1n,
      BigInt(actual) + 1n,
      BigInt(actual) * 2n,
      0x7fn,
      0x80n,
      0xffn,
      0x100n,
      0xfffn,
      0x1000n,
      4097n,
      4098n,
      57344n,
      57345n,
      65535n,
      65536n,
      65537n,
      0xfffffff0n,
      0xffffffffn,
      0x1_0000_0000n,
      0x1_0000_0000n + BigInt(actual),
      (1n << 53n) - 1n,
      1n << 53n,
      (1n << 63n) - 1n,
      1n << 63n,
      (1n << 64n) - 1n,
      (BigInt(rng.u32()) << 32n) | BigInt(rng.u32()),
    ]),
  );
}

function interestingU32(rng: Random): number {
  return rng.pick([
    0,
    1,
    2,
    3,
    0x1b,
    0x1c,
    0x2c,
    0x30,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x10000,
    0xe000,
    0xe001,
    0x10001,
    0x7fffffff,
    0x80000000,
    0xfffffff0,
    0xffffffff,
    rng.u32(),
  ]);
}

// ---------------------------------------------------------------------------------------------

export class FrameGenerator {
  private readonly certificates: readonly Uint8Array[];

  constructor(
    private readonly rng: Random,
    private readonly corpus: Corpus,
    /** The variables the target holds now (names to update, delete, enumerate from). */
    private readonly existing: () => readonly VariableRef[],
  ) {
    const keys = testKeys();
    this.certificates = [keys.PK, keys.KEK, keys.db].map((k) => certificateDer(k.certificate));
  }

  next(): FuzzInput {
    const rng = this.rng;
    const kind = rng.weighted<string>([
      [18, 'get'],
      [12, 'getnext'],
      [24, 'set'],
      [26, 'auth'],
      [4, 'query'],
      [1, 'notify'],
      [9, 'raw'],
      [3, 'transport'],
    ]);
    switch (kind) {
      case 'get':
        return this.finish('get', getFields(this.name(), this.guid(), this.capacity(), this.runtime()));
      case 'getnext':
        return this.getNext();
      case 'set':
        return this.plainSet();
      case 'auth':
        return this.authenticatedSet();
      case 'query':
        return this.finish('query', [
          u32(1, 'version'),
          u32(3, 'command'),
          u32(rng.bool(0.6) ? rng.pick(INTERESTING_ATTRIBUTES) : rng.u32(), 'attributes'),
        ]);
      case 'notify':
        return this.finish('notify', [u32(1, 'version'), u32(4, 'command')]);
      case 'raw':
        return this.rawFrame();
      default:
        return this.transportAbuse();
    }
  }

  // ---- pieces ----------------------------------------------------------------------------

  private pickExisting(): VariableRef | undefined {
    const vars = this.existing();
    return vars.length === 0 ? undefined : this.rng.pick(vars);
  }

  private name(): Uint8Array {
    const rng = this.rng;
    const choice = rng.int(100);
    if (choice < 35) return this.pickExisting()?.name.slice() ?? utf16le('Boot0000');
    if (choice < 75) return utf16le(rng.pick(KNOWN_NAMES));
    if (choice < 85) return utf16le(`Boot${rng.u32().toString(16).toUpperCase().padStart(8, '0').slice(0, 4)}`);
    if (choice < 92) {
      // Random UTF-16, surrogates and NULs included.
      const n = rng.size(64);
      const out = new Uint8Array(n * 2);
      for (let i = 0; i < n; i++) {
        const unit = rng.weighted<number>([
          [6, 0x20 + rng.int(0x5f)],
          [1, 0],
          [1, 0xd800 + rng.int(0x800)],
          [1, rng.int(0x10000)],
        ]);
        out[2 * i] = unit & 0xff;
        out[2 * i + 1] = unit >>> 8;
      }
      return out;
    }
    // The edges of the name limits.
    const len = rng.pick([0, 1, 2, 3, 4095, 4096, 4097, 4098, 8192]);
    const out = new Uint8Array(len);
    for (let i = 0; i + 1 < len; i += 2) out[i] = 0x41 + (i % 26);
    if (rng.bool(0.2) && len > 4) out[len >>> 1] = 0;
    return out;
  }

  private guid(): Uint8Array {
    const rng = this.rng;
    const choice = rng.int(100);
    if (choice < 30) return this.pickExisting()?.guid.slice() ?? Guids.GLOBAL_VARIABLE.slice();
    if (choice < 90) return rng.pick(KNOWN_GUIDS).slice();
    return rng.bytes(16);
  }

  private capacity(): bigint {
    const rng = this.rng;
    if (rng.bool(0.6)) return BigInt(rng.pick([0, 1, 2, 4, 8, 16, 64, 1024, 57344, 65536]));
    return interestingLength(rng, rng.int(4096));
  }

  /**
   * The at_runtime flag. Runtime is sticky until the store is reset, so it stays rare: about half of
   * each reset period runs before ExitBootServices.
   */
  private runtime(): number {
    return this.rng.weighted<number>([
      [400, 0],
      [1, 1],
      [1, 0xff],
    ]);
  }

  private getNext(): FuzzInput {
    const rng = this.rng;
    const vars = this.existing();
    let name: Uint8Array;
    let guid: Uint8Array;
    if (rng.bool(0.3) || vars.length === 0) {
      name = new Uint8Array(0);
      guid = rng.bool(0.8) ? new Uint8Array(16) : rng.bytes(16);
    } else if (rng.bool(0.8)) {
      const v = rng.pick(vars);
      name = v.name.slice();
      guid = v.guid.slice();
    } else {
      name = this.name();
      guid = this.guid();
    }
    const capacity = rng.bool(0.7) ? BigInt(rng.pick([name.length + 2, 64, 256, 1024, 4098, 8192])) : this.capacity();
    return this.finish('getnext', nextFields(capacity, name, guid, this.runtime()));
  }

  private plainData(name: Uint8Array): Uint8Array {
    const rng = this.rng;
    const text = Buffer.from(name).toString('utf16le');
    const choice = rng.int(100);
    if (choice < 25 && /^Boot[0-9A-F]{4}$/i.test(text))
      return this.mutateBytes(rng.pick(BOOT_OPTIONS).data.slice(), 0.5);
    if (choice < 40) return rng.bytes(rng.pick([1, 2, 4, 8]));
    if (choice < 50) return this.signatureLists();
    if (choice < 55) return new Uint8Array(0);
    if (choice < 60) return rng.bytes(rng.pick([Limits.DATA_MAX - 1, Limits.DATA_MAX, Limits.DATA_MAX + 1, 60000]));
    if (choice < 65) return new TextEncoder().encode(rng.pick(['en-US\0', 'eng', 'en-US', 'fr-FR;en-US\0', '\0']));
    return rng.bytes(rng.size(4096));
  }

  private plainSet(): FuzzInput {
    const rng = this.rng;
    const target = rng.bool(0.4) ? this.pickExisting() : undefined;
    const name = target?.name.slice() ?? this.name();
    const guid = target?.guid.slice() ?? this.guid();
    let attributes = rng.bool(0.7)
      ? rng.pick([1, 2, 3, 6, 7, 7, 7, 0x47, 0x46, 0x43, 0])
      : rng.pick(INTERESTING_ATTRIBUTES);
    if (rng.bool(0.05)) attributes = rng.u32();
    return this.finish('set', setFields(name, guid, this.plainData(name), attributes, this.runtime()));
  }

  // ---- EFI_VARIABLE_AUTHENTICATION_2 ------------------------------------------------------

  private authenticatedSet(): FuzzInput {
    const rng = this.rng;
    const seed = rng.pick(this.corpus.seeds);
    const mutation = rng.weighted<string>([
      [8, 'as-is'],
      [14, 'header'],
      [30, 'der'],
      [12, 'payload'],
      [10, 'context'],
      [14, 'synthetic'],
      [6, 'hostile'],
      [6, 'combo'],
    ]);
    let name: Uint8Array = seed.name.slice();
    let guid: Uint8Array = seed.guid.slice();
    let attributes = seed.attributes;
    let parts = splitSeed(seed);
    const apply = (m: string): void => {
      switch (m) {
        case 'header':
          parts = this.mutateHeader(parts);
          break;
        case 'der':
          parts = { ...parts, certData: this.mutateDer(parts.certData) };
          break;
        case 'payload':
          parts = {
            ...parts,
            payload: rng.bool(0.6)
              ? this.mutateSignatureLists(parts.payload)
              : this.mutateBytes(parts.payload.slice(), 0.3),
          };
          break;
        case 'context':
          if (rng.bool(0.4))
            name = utf16le(rng.pick(['PK', 'KEK', 'db', 'dbx', 'dbt', 'dbr', 'FuzzPrivate', 'SecureBoot', 'Boot0001']));
          if (rng.bool(0.3)) guid = rng.pick(KNOWN_GUIDS).slice();
          if (rng.bool(0.5)) attributes = rng.pick(INTERESTING_ATTRIBUTES) | Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS;
          break;
        case 'synthetic':
          parts = {
            timestamp: this.timestamp(),
            header: undefined,
            certData: this.syntheticDer(),
            payload: this.signatureLists(),
          };
          break;
        case 'hostile':
          parts = { ...parts, certData: this.hostileDer(parts.certData) };
          break;
        default:
          break;
      }
    };
    if (mutation === 'combo') {
      for (let i = rng.range(2, 4); i > 0; i--) apply(rng.pick(['header', 'der', 'payload', 'context', 'hostile']));
    } else {
      apply(mutation);
    }
    const data = assembleAuth2(parts);
    return this.finish(
      `auth:${mutation}`,
      setFields(name, guid, data, attributes, this.runtime()),
      mutation === 'as-is' ? 0 : 0.15,
    );
  }

  private timestamp(): Uint8Array {
    const rng = this.rng;
    const t = new Uint8Array(16);
    const view = new DataView(t.buffer);
    view.setUint16(0, rng.pick([2000, 2020, 2031, 2099, 1900, 0, 0xffff]), true);
    t[2] = rng.range(1, 12);
    t[3] = rng.range(1, 28);
    t[4] = rng.int(24);
    t[5] = rng.int(60);
    t[6] = rng.int(60);
    return t;
  }

  private mutateHeader(p: Auth2Parts): Auth2Parts {
    const rng = this.rng;
    const timestamp = p.timestamp.slice();
    const header = p.header ?? defaultHeader(p.certData.length);
    const h = { ...header };
    switch (rng.int(6)) {
      case 0: {
        // Pad1, Nanosecond, TimeZone, Daylight, Pad2 must be zero; month/day must be valid.
        const at = rng.pick([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        timestamp[at] = rng.pick([0, 1, 0x7f, 0x80, 0xff, 13, 32, 60]);
        break;
      }
      case 1:
        h.dwLength = interestingU32(rng);
        break;
      case 2:
        h.dwLength =
          (24 + p.certData.length + rng.pick([-25, -24, -1, 1, 2, p.payload.length, p.payload.length + 1])) >>> 0;
        break;
      case 3:
        h.revision = rng.pick([0, 0x100, 0x201, 0xffff]);
        break;
      case 4:
        h.certificateType = rng.pick([0, 0x0001, 0x0002, 0x0ef0, 0x0ef2, 0xffff]);
        break;
      default:
        h.certType = rng.bool(0.5) ? rng.pick(KNOWN_GUIDS).slice() : rng.bytes(16);
    }
    return { ...p, timestamp, header: h };
  }

  // ---- PKCS#7 DER -------------------------------------------------------------------------

  private mutateDer(bytes: Uint8Array): Uint8Array {
    const rng = this.rng;
    const root = parseDer(bytes);
    if (root === undefined) return this.mutateBytes(bytes.slice(), 0.5);
    const tree = cloneNode(root);
    for (let i = rng.range(1, 3); i > 0; i--) this.mutateTree(tree);
    const out = encodeDer(tree);
    return out.length > Limits.BUFFER_SIZE ? out.subarray(0, Limits.BUFFER_SIZE) : out;
  }

  private mutateTree(root: DerNode): void {
    const rng = this.rng;
    const nodes = allNodes(root);
    const { node, parent } = rng.pick(nodes);
    const siblings = parent?.children;
    const at = siblings?.indexOf(node) ?? -1;
    switch (rng.int(11)) {
      case 0: {
        // A huge INTEGER (serial numbers, versions, RSA moduli and exponents are INTEGERs).
        const n = rng.pick([17, 129, 257, 513, 1025, 4097, 16385, 40000]);
        const content = rng.bool(0.5) ? new Uint8Array(n).fill(0xff) : rng.bytes(n);
        content[0] = rng.pick([0x00, 0x01, 0x7f, 0x80, 0xff]);
        replace(node, { tag: Uint8Array.of(0x02), content });
        break;
      }
      case 1: {
        if (siblings === undefined) break;
        const size = encodeDer(node).length;
        const copies = Math.min(rng.pick([2, 10, 100, 1000, 5000]), Math.max(1, Math.floor(60000 / Math.max(1, size))));
        siblings.splice(at, 0, ...Array.from({ length: copies }, () => cloneNode(node)));
        break;
      }
      case 2: {
        // Deep nesting: each level adds a SEQUENCE (or [0]) around the node.
        const tag = rng.bool(0.8) ? 0x30 : 0xa0;
        replace(node, {
          tag: new Uint8Array(0),
          raw: nest(encodeDer(node), rng.pick([8, 64, 512, 4096, 15000]), tag, 60000),
        });
        break;
      }
      case 3:
        if (siblings !== undefined) siblings.splice(at, 1);
        break;
      case 4:
        node.tag = Uint8Array.of(
          rng.pick([
            0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x17, 0x18, 0x30, 0x31, 0xa0, 0xa1, 0xa3, 0x80, 0x00, 0x1f, 0xff,
          ]),
        );
        if ((node.tag[0]! & 0x20) !== 0 && node.children === undefined) node.children = [];
        break;
      case 5:
        node.form = rng.pick<LengthForm>(['indefinite', 'long4', 'huge', 'plus1', 'minus1']);
        break;
      case 6:
        if (node.content !== undefined)
          node.content = rng.bool(0.5)
            ? node.content.subarray(0, rng.int(node.content.length + 1))
            : this.mutateBytes(node.content.slice(), 0.5);
        else node.children = [];
        break;
      case 7:
        if (siblings !== undefined && siblings.length > 1) {
          const j = rng.int(siblings.length);
          [siblings[at], siblings[j]] = [siblings[j]!, siblings[at]!];
        }
        break;
      case 8: {
        // An OBJECT IDENTIFIER with enormous arcs.
        const arcs = new Uint8Array(rng.pick([3, 20, 200, 5000])).fill(0xff);
        arcs[0] = 0x2a;
        arcs[arcs.length - 1] = 0x7f;
        replace(node, { tag: Uint8Array.of(0x06), content: arcs });
        break;
      }
      case 9: {
        // Thousands of tiny certificate-shaped elements where certificates may appear.
        const tiny: DerNode = {
          tag: Uint8Array.of(0x30),
          children: [
            { tag: Uint8Array.of(0x30), children: [] },
            { tag: Uint8Array.of(0x30), children: [] },
            { tag: Uint8Array.of(0x03), content: Uint8Array.of(0) },
          ],
        };
        const target = node.children !== undefined ? node : parent;
        if (target?.children !== undefined)
          target.children.push(...Array.from({ length: rng.pick([100, 1000, 5000]) }, () => cloneNode(tiny)));
        break;
      }
      default: {
        // A real certificate where another element was (or another copy of it).
        const cert = parseDer(rng.pick(this.certificates));
        if (cert !== undefined) replace(node, cert);
      }
    }
  }

  private syntheticDer(): Uint8Array {
    const rng = this.rng;
    const make = (depth: number): DerNode => {
      if (depth > 4 || rng.bool(0.3))
        return { tag: Uint8Array.of(rng.pick([0x02, 0x04, 0x05, 0x06, 0x03])), content: rng.bytes(rng.size(64)) };
      return {
        tag: Uint8Array.of(rng.pick([0x30, 0x31, 0xa0, 0xa1])),
        children: Array.from({ length: rng.int(5) }, () => make(depth + 1)),
      };
    };
    // signedData OID wrapper half of the time, so parsers get past the first check.
    if (rng.bool(0.5)) {
      const oid = tlv(0x06, Uint8Array.of(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02));
      return tlv(0x30, concat(oid, tlv(0xa0, encodeDer(make(0)))));
    }
    return encodeDer(make(0));
  }

  /** The shapes a hostile signer would send: deep, wide, huge, indefinite. */
  private hostileDer(base: Uint8Array): Uint8Array {
    const rng = this.rng;
    switch (rng.int(5)) {
      case 0: {
        // Nesting as deep as 57 KiB allows.
        return nest(Uint8Array.of(0x05, 0x00), rng.pick([1000, 10000, 20000]), 0x30, 57000);
      }
      case 1: {
        // Indefinite lengths all the way down, with or without end-of-contents.
        const depth = rng.pick([3, 100, 5000]);
        const out = new Uint8Array(depth * 2 + (rng.bool(0.5) ? depth * 2 : 0));
        for (let d = 0; d < depth; d++) {
          out[2 * d] = 0x30;
          out[2 * d + 1] = 0x80;
        }
        return out;
      }
      case 2: {
        // Thousands of certificates: the seed's own certificate repeated, then tiny fakes.
        const root = parseDer(base);
        if (root === undefined) return base;
        const tree = cloneNode(root);
        const certs = allNodes(tree).find(
          (n) => n.node.tag[0] === 0xa0 && n.depth >= 1 && (n.node.children?.length ?? 0) > 0,
        );
        if (certs?.node.children === undefined) return encodeDer(tree);
        const real = certs.node.children[0]!;
        const realSize = encodeDer(real).length;
        const copies = Math.min(40, Math.floor(50000 / realSize));
        for (let i = 0; i < copies; i++) certs.node.children.push(cloneNode(real));
        const tiny: DerNode = { tag: Uint8Array.of(0x30), children: [{ tag: Uint8Array.of(0x30), children: [] }] };
        for (let i = 0; i < rng.pick([500, 3000]); i++) certs.node.children.push(cloneNode(tiny));
        const out = encodeDer(tree);
        return out.length > 60000 ? out.subarray(0, 60000) : out;
      }
      case 3: {
        // Length fields that claim far more than there is.
        const out = base.slice();
        const at = rng.int(Math.max(1, out.length - 9));
        out.set(
          Uint8Array.of(0x30, 0x88, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff).subarray(
            0,
            Math.min(10, out.length - at),
          ),
          at,
        );
        return out;
      }
      default: {
        // A modulus or exponent of tens of thousands of bits inside a real-looking certificate.
        const root = parseDer(base);
        if (root === undefined) return base;
        const tree = cloneNode(root);
        const ints = allNodes(tree).filter((n) => n.node.tag[0] === 0x02);
        if (ints.length === 0) return encodeDer(tree);
        const target = rng.pick(ints).node;
        const content = new Uint8Array(rng.pick([4096, 16384, 40000])).fill(0xff);
        content[0] = 0x00;
        target.content = content;
        const out = encodeDer(tree);
        return out.length > 60000 ? out.subarray(0, 60000) : out;
      }
    }
  }

  // ---- EFI_SIGNATURE_LIST -----------------------------------------------------------------

  private signatureLists(): Uint8Array {
    const rng = this.rng;
    const lists: Uint8Array[] = [];
    for (let i = rng.range(1, 3); i > 0; i--) {
      const type = rng.weighted<Uint8Array>([
        [5, Guids.CERT_SHA256],
        [3, Guids.CERT_X509],
        [1, Guids.CERT_SHA1],
        [1, Guids.CERT_SHA384],
        [1, Guids.CERT_RSA2048],
        [1, Guids.CERT_X509_SHA256],
        [1, rng.bytes(16)],
      ]);
      let entry: number;
      const x509 = type === Guids.CERT_X509;
      const cert = x509 ? rng.pick(this.certificates) : undefined;
      if (cert !== undefined) entry = cert.length;
      else if (type === Guids.CERT_SHA256) entry = 32;
      else if (type === Guids.CERT_SHA1) entry = 20;
      else if (type === Guids.CERT_SHA384) entry = 48;
      else if (type === Guids.CERT_RSA2048) entry = 256;
      else if (type === Guids.CERT_X509_SHA256) entry = 48;
      else entry = rng.size(128);
      const count = x509 ? 1 : rng.pick([0, 1, 2, 3, 16]);
      const headerSize = rng.bool(0.9) ? 0 : rng.pick([1, 16, 100]);
      const signatureSize = 16 + entry;
      const size = 28 + headerSize + count * signatureSize;
      const out = new Uint8Array(size);
      const view = new DataView(out.buffer);
      out.set(type, 0);
      view.setUint32(16, size, true);
      view.setUint32(20, headerSize, true);
      view.setUint32(24, signatureSize, true);
      for (let k = 0; k < count; k++) {
        const at = 28 + headerSize + k * signatureSize;
        out.set(FUZZ_VENDOR, at);
        out.set(cert ?? rng.bytes(entry), at + 16);
      }
      lists.push(out);
    }
    return concat(...lists);
  }

  private mutateSignatureLists(bytes: Uint8Array): Uint8Array {
    const rng = this.rng;
    const out = bytes.length >= 28 ? bytes.slice() : this.signatureLists();
    if (out.length < 28) return out;
    const view = new DataView(out.buffer);
    const field = rng.pick([16, 20, 24]);
    const current = view.getUint32(field, true);
    view.setUint32(
      field,
      rng.bool(0.5) ? interestingU32(rng) : (current + rng.pick([-29, -17, -1, 1, 16, 28])) >>> 0,
      true,
    );
    return out;
  }

  // ---- raw --------------------------------------------------------------------------------

  private rawFrame(): FuzzInput {
    const rng = this.rng;
    const n = rng.weighted<number>([
      [6, rng.size(300)],
      [2, rng.size(Limits.BUFFER_SIZE)],
      [1, rng.pick([0, 1, 7, 8, 9, Limits.BUFFER_SIZE])],
    ]);
    const frame = rng.bytes(n);
    if (n >= 8 && rng.bool(0.6)) {
      new DataView(frame.buffer).setUint32(0, 1, true);
      new DataView(frame.buffer).setUint32(4, rng.pick([0, 1, 2, 3, 4, 5, rng.u32()]), true);
    }
    return { frame, kind: 'raw' };
  }

  private transportAbuse(): FuzzInput {
    const rng = this.rng;
    const base = this.finish('get', getFields(this.name(), this.guid(), this.capacity(), 0)).frame;
    if (rng.bool(0.5))
      return {
        frame: rng.bytes(rng.pick([Limits.BUFFER_SIZE + 1, Limits.BUFFER_SIZE + 100])),
        kind: 'transport:oversize',
        transport: 'oversize',
      };
    return { frame: base, kind: 'transport:truncated', transport: 'truncated' };
  }

  // ---- generic mutation -------------------------------------------------------------------

  /** Field-level then (sometimes) byte-level mutation; `fieldRate` is the chance of touching fields. */
  private finish(kind: string, fields: Field[], fieldRate = 0.3): FuzzInput {
    const rng = this.rng;
    let mutated = false;
    if (rng.bool(fieldRate)) {
      mutated = true;
      for (let i = rng.range(1, 3); i > 0; i--) this.mutateField(fields);
    }
    let frame = serialize(fields);
    if (rng.bool(0.08)) {
      mutated = true;
      frame = this.mutateBytes(frame, 0.5);
    }
    if (frame.length > Limits.BUFFER_SIZE) frame = frame.subarray(0, Limits.BUFFER_SIZE);
    return { frame, kind: mutated ? `${kind}+mutated` : kind };
  }

  private mutateField(fields: Field[]): void {
    const rng = this.rng;
    // Earlier mutations may have deleted every field.
    if (fields.length === 0) return;
    const i = rng.int(fields.length);
    const f = fields[i]!;
    switch (f.role) {
      case 'version':
        f.value = BigInt(rng.pick([0, 2, 0x100, 0xffffffff]));
        break;
      case 'command':
        f.value = BigInt(rng.pick([0, 1, 2, 3, 4, 5, 6, 0x100, 0x80000000, 0xffffffff]));
        break;
      case 'nameLen':
      case 'dataLen':
      case 'capacity': {
        const actual = fields[i + 1]?.kind === 'bytes' ? (fields[i + 1]!.value as Uint8Array).length : 0;
        f.value = interestingLength(rng, actual);
        break;
      }
      case 'attributes':
        f.value = BigInt(rng.bool(0.5) ? rng.pick(INTERESTING_ATTRIBUTES) : rng.u32());
        break;
      case 'runtime':
        f.value = BigInt(rng.bool(0.9) ? 0 : rng.pick([1, 2, 0x80, 0xff]));
        break;
      case 'guid':
        f.value = rng.pick([rng.bytes(15), rng.bytes(17), rng.bytes(16), new Uint8Array(0)]);
        break;
      case 'name':
      case 'data': {
        const v = f.value as Uint8Array;
        f.value = rng.pick([
          v.subarray(0, Math.max(0, v.length - 1)),
          concat(v, Uint8Array.of(0)),
          concat(v, Uint8Array.of(0, 0)),
          this.mutateBytes(v.slice(), 0.3),
          new Uint8Array(0),
        ]);
        break;
      }
    }
    if (rng.bool(0.05)) fields.splice(rng.int(fields.length), 1);
    if (rng.bool(0.03) && fields.length > 0)
      fields.splice(rng.int(fields.length), 0, { ...fields[rng.int(fields.length)]! } as Field);
  }

  /** Bit flips, interesting bytes, truncation, insertion, duplication. */
  mutateBytes(bytes: Uint8Array, intensity: number): Uint8Array {
    const rng = this.rng;
    let out = bytes;
    const rounds = 1 + Math.floor(rng.float() * 4 * intensity);
    for (let r = 0; r < rounds; r++) {
      switch (rng.int(6)) {
        case 0:
          if (out.length > 0) out[rng.int(out.length)]! ^= 1 << rng.int(8);
          break;
        case 1:
          if (out.length > 0) out[rng.int(out.length)] = rng.pick([0, 1, 0x7f, 0x80, 0xff]);
          break;
        case 2:
          out = out.subarray(0, rng.int(out.length + 1));
          break;
        case 3: {
          const at = rng.int(out.length + 1);
          out = concat(out.subarray(0, at), rng.bytes(rng.size(64)), out.subarray(at));
          break;
        }
        case 4: {
          if (out.length === 0) break;
          const from = rng.int(out.length);
          const chunk = out.subarray(from, from + rng.size(256));
          const at = rng.int(out.length + 1);
          out = concat(out.subarray(0, at), chunk, out.subarray(at));
          break;
        }
        default:
          if (out.length >= 4) {
            const at = rng.int(out.length - 3);
            new DataView(out.buffer, out.byteOffset).setUint32(at, interestingU32(rng), true);
          }
      }
    }
    return out.length > Limits.BUFFER_SIZE ? out.subarray(0, Limits.BUFFER_SIZE) : out;
  }
}

// ---------------------------------------------------------------------------------------------

interface Auth2Header {
  dwLength: number;
  revision: number;
  certificateType: number;
  certType: Uint8Array;
}

interface Auth2Parts {
  readonly timestamp: Uint8Array;
  /** undefined: consistent with certData. */
  readonly header: Auth2Header | undefined;
  readonly certData: Uint8Array;
  readonly payload: Uint8Array;
}

function defaultHeader(certDataLength: number): Auth2Header {
  return {
    dwLength: 24 + certDataLength,
    revision: 0x0200,
    certificateType: 0x0ef1,
    certType: Guids.CERT_PKCS7.slice(),
  };
}

function splitSeed(seed: SeedWrite): Auth2Parts {
  const d = seed.data;
  const cert = seed.certData ?? { offset: 40, length: 0 };
  return {
    timestamp: d.slice(0, 16),
    header: undefined,
    certData: d.slice(cert.offset, cert.offset + cert.length),
    payload: d.slice(cert.offset + cert.length),
  };
}

function assembleAuth2(p: Auth2Parts): Uint8Array {
  const h = p.header ?? defaultHeader(p.certData.length);
  const head = new Uint8Array(40);
  const view = new DataView(head.buffer);
  head.set(p.timestamp.subarray(0, 16), 0);
  view.setUint32(16, h.dwLength >>> 0, true);
  view.setUint16(20, h.revision, true);
  view.setUint16(22, h.certificateType, true);
  head.set(h.certType.subarray(0, 16), 24);
  const out = concat(head, p.certData, p.payload);
  return out.length > Limits.BUFFER_SIZE - 64 ? out.subarray(0, Limits.BUFFER_SIZE - 64) : out;
}

function replace(node: DerNode, by: DerNode): void {
  node.tag = by.tag;
  delete node.raw;
  if (by.raw !== undefined) {
    node.raw = by.raw;
    delete node.children;
    delete node.content;
  } else if (by.children !== undefined) {
    node.children = by.children;
    delete node.content;
  } else {
    node.content = by.content ?? new Uint8Array(0);
    delete node.children;
  }
  if (by.form !== undefined) node.form = by.form;
  else delete node.form;
}

export { concat };
