import { Command, type CommandName, Limits, PROTOCOL_VERSION } from './limits.js';
import { EfiStatus } from './status.js';

// ---------------------------------------------------------------------------------------------
// Types

export interface GetVariableRequest {
  readonly command: 'GetVariable';
  /** UTF-16LE name bytes without terminator, exactly as sent (length not validated here). */
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
  /** Capacity of the caller's data buffer; saturates at Number.MAX_SAFE_INTEGER. */
  readonly dataSize: number;
  readonly atRuntime: boolean;
}

export interface SetVariableRequest {
  readonly command: 'SetVariable';
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
  readonly data: Uint8Array;
  readonly attributes: number;
  readonly atRuntime: boolean;
}

export interface GetNextVariableNameRequest {
  readonly command: 'GetNextVariableName';
  /** Capacity of the caller's name buffer in bytes; saturates at Number.MAX_SAFE_INTEGER. */
  readonly nameSize: number;
  /** The previous name; empty to start the enumeration. */
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
  readonly atRuntime: boolean;
}

export interface QueryVariableInfoRequest {
  readonly command: 'QueryVariableInfo';
  readonly attributes: number;
}

export interface NotifySBFailureRequest {
  readonly command: 'NotifySBFailure';
}

export type Request =
  | GetVariableRequest
  | SetVariableRequest
  | GetNextVariableNameRequest
  | QueryVariableInfoRequest
  | NotifySBFailureRequest;

/** A request that could not be decoded, with the status the guest must receive. */
export interface DecodeError {
  readonly ok: false;
  readonly status: bigint;
  readonly reason: string;
  /** The command code when it was readable. */
  readonly command?: number;
}

export type DecodedRequest = { readonly ok: true; readonly request: Request } | DecodeError;

/**
 * A response. Fields beyond `status` are carried only where the wire carries them:
 * GetVariable SUCCESS → attributes + data; GetNextVariableName SUCCESS → name + guid;
 * QueryVariableInfo SUCCESS → the three sizes; BUFFER_TOO_SMALL → requiredSize.
 */
export type Response =
  | {
      readonly command: 'GetVariable';
      readonly status: bigint;
      readonly attributes?: number;
      readonly data?: Uint8Array;
      readonly requiredSize?: number;
    }
  | { readonly command: 'SetVariable'; readonly status: bigint }
  | {
      readonly command: 'GetNextVariableName';
      readonly status: bigint;
      readonly name?: Uint8Array;
      readonly guid?: Uint8Array;
      readonly requiredSize?: number;
    }
  | {
      readonly command: 'QueryVariableInfo';
      readonly status: bigint;
      readonly maximumStorageSize?: number;
      readonly remainingStorageSize?: number;
      readonly maximumVariableSize?: number;
    }
  | { readonly command: 'NotifySBFailure'; readonly status: bigint };

export type DecodedResponse =
  | { readonly ok: true; readonly response: Response }
  | { readonly ok: false; readonly reason: string };

// ---------------------------------------------------------------------------------------------
// Bounded little-endian reader: every read checks what remains first and never looks past `end`.

class Truncated {
  constructor(readonly field: string) {}
}

class Reader {
  private offset = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number, field: string): void {
    if (n > this.bytes.length - this.offset) throw new Truncated(field);
  }

  u8(field: string): number {
    this.need(1, field);
    return this.view.getUint8(this.offset++);
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return v;
  }

  /** A u64 capacity: values beyond 2^53-1 saturate (they exceed any real size either way). */
  u64Saturating(field: string): number {
    this.need(8, field);
    const lo = this.view.getUint32(this.offset, true);
    const hi = this.view.getUint32(this.offset + 4, true);
    this.offset += 8;
    return hi >= 0x20_0000 ? Number.MAX_SAFE_INTEGER : hi * 0x1_0000_0000 + lo;
  }

  /** A u64 length of bytes that follow: must fit in what remains, checked before it becomes a number. */
  length(field: string): number {
    this.need(8, field);
    const lo = this.view.getUint32(this.offset, true);
    const hi = this.view.getUint32(this.offset + 4, true);
    if (hi !== 0 || lo > this.bytes.length - this.offset - 8) throw new Truncated(field);
    this.offset += 8;
    return lo;
  }

  bytesOf(n: number, field: string): Uint8Array {
    this.need(n, field);
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  lengthPrefixed(field: string): Uint8Array {
    return this.bytesOf(this.length(`${field} length`), field);
  }
}

const COMMAND_NAMES: readonly CommandName[] = [
  'GetVariable',
  'SetVariable',
  'GetNextVariableName',
  'QueryVariableInfo',
  'NotifySBFailure',
];

// ---------------------------------------------------------------------------------------------
// Daemon side

/**
 * Decodes a request from the guest buffer. Never throws; never reads past `bytes` nor past the
 * 64 KiB buffer. The returned request's name, guid and data are views into `bytes`, so pass a
 * private copy of guest memory, never the mapping itself.
 */
export function decodeRequest(bytes: Uint8Array): DecodedRequest {
  const input = bytes.length > Limits.BUFFER_SIZE ? bytes.subarray(0, Limits.BUFFER_SIZE) : bytes;
  const r = new Reader(input);
  let command: number | undefined;
  try {
    const version = r.u32('version');
    command = r.u32('command');
    if (version !== PROTOCOL_VERSION) {
      return {
        ok: false,
        status: EfiStatus.UNSUPPORTED,
        reason: `protocol version ${version} (expected ${PROTOCOL_VERSION})`,
        command,
      };
    }
    switch (command) {
      case Command.GetVariable: {
        const name = r.lengthPrefixed('name');
        const guid = r.bytesOf(16, 'guid');
        const dataSize = r.u64Saturating('data size');
        const atRuntime = r.u8('at_runtime') !== 0;
        return { ok: true, request: { command: 'GetVariable', name, guid, dataSize, atRuntime } };
      }
      case Command.SetVariable: {
        const name = r.lengthPrefixed('name');
        const guid = r.bytesOf(16, 'guid');
        const data = r.lengthPrefixed('data');
        const attributes = r.u32('attributes');
        const atRuntime = r.u8('at_runtime') !== 0;
        return { ok: true, request: { command: 'SetVariable', name, guid, data, attributes, atRuntime } };
      }
      case Command.GetNextVariableName: {
        const nameSize = r.u64Saturating('name buffer size');
        const name = r.lengthPrefixed('name');
        const guid = r.bytesOf(16, 'guid');
        const atRuntime = r.u8('at_runtime') !== 0;
        return { ok: true, request: { command: 'GetNextVariableName', nameSize, name, guid, atRuntime } };
      }
      case Command.QueryVariableInfo:
        return { ok: true, request: { command: 'QueryVariableInfo', attributes: r.u32('attributes') } };
      case Command.NotifySBFailure:
        return { ok: true, request: { command: 'NotifySBFailure' } };
      default:
        return { ok: false, status: EfiStatus.UNSUPPORTED, reason: `unknown command ${command}`, command };
    }
  } catch (e) {
    if (e instanceof Truncated) {
      const base = {
        ok: false as const,
        status: EfiStatus.INVALID_PARAMETER,
        reason: `${e.field} runs past the end of the buffer`,
      };
      return command === undefined ? base : { ...base, command };
    }
    // The reader throws nothing else; keep the promise of never throwing regardless.
    return { ok: false, status: EfiStatus.INVALID_PARAMETER, reason: 'undecodable request' };
  }
}

/** Number of bytes `encodeResponse` writes for this response. */
export function encodedResponseSize(response: Response): number {
  const s = response.status;
  switch (response.command) {
    case 'GetVariable':
      if (s === EfiStatus.SUCCESS) return 8 + 4 + 8 + required(response.data, 'data').length;
      return s === EfiStatus.BUFFER_TOO_SMALL ? 16 : 8;
    case 'GetNextVariableName':
      if (s === EfiStatus.SUCCESS) return 8 + 8 + required(response.name, 'name').length + 16;
      return s === EfiStatus.BUFFER_TOO_SMALL ? 16 : 8;
    case 'QueryVariableInfo':
      return s === EfiStatus.SUCCESS ? 32 : 8;
    default:
      return 8;
  }
}

function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw new TypeError(`a SUCCESS response needs ${field}`);
  return value;
}

/**
 * Encodes `response` into `out` from offset 0 and returns the number of bytes written.
 * Throws RangeError if `out` is too small (check `encodedResponseSize` first) and TypeError if a
 * SUCCESS / BUFFER_TOO_SMALL response lacks the fields the wire carries.
 */
export function encodeResponse(response: Response, out: Uint8Array): number {
  const size = encodedResponseSize(response);
  if (size > out.length) throw new RangeError(`response needs ${size} bytes, buffer has ${out.length}`);
  const w = new Writer(out);
  const s = response.status;
  w.u64(s);
  switch (response.command) {
    case 'GetVariable':
      if (s === EfiStatus.SUCCESS) {
        const data = required(response.data, 'data');
        w.u32(required(response.attributes, 'attributes'));
        w.u64(BigInt(data.length));
        w.bytes(data);
      } else if (s === EfiStatus.BUFFER_TOO_SMALL) {
        w.u64(BigInt(required(response.requiredSize, 'requiredSize')));
      }
      break;
    case 'GetNextVariableName':
      if (s === EfiStatus.SUCCESS) {
        const name = required(response.name, 'name');
        w.u64(BigInt(name.length));
        w.bytes(name);
        w.bytes(checkGuid(required(response.guid, 'guid')));
      } else if (s === EfiStatus.BUFFER_TOO_SMALL) {
        w.u64(BigInt(required(response.requiredSize, 'requiredSize')));
      }
      break;
    case 'QueryVariableInfo':
      if (s === EfiStatus.SUCCESS) {
        w.u64(BigInt(required(response.maximumStorageSize, 'maximumStorageSize')));
        w.u64(BigInt(required(response.remainingStorageSize, 'remainingStorageSize')));
        w.u64(BigInt(required(response.maximumVariableSize, 'maximumVariableSize')));
      }
      break;
    default:
      break;
  }
  return w.offset;
}

/** Encodes the reply to an undecodable request: its status alone. */
export function encodeStatus(status: bigint, out: Uint8Array): number {
  return new Writer(out).u64(status).offset;
}

class Writer {
  offset = 0;
  private readonly view: DataView;
  constructor(private readonly out: Uint8Array) {
    this.view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  }
  u8(v: number): this {
    this.view.setUint8(this.offset, v);
    this.offset += 1;
    return this;
  }
  u32(v: number): this {
    this.view.setUint32(this.offset, v >>> 0, true);
    this.offset += 4;
    return this;
  }
  u64(v: bigint): this {
    this.view.setBigUint64(this.offset, BigInt.asUintN(64, v), true);
    this.offset += 8;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.out.set(b, this.offset);
    this.offset += b.length;
    return this;
  }
}

function checkGuid(guid: Uint8Array): Uint8Array {
  if (guid.length !== 16) throw new RangeError(`a GUID is 16 bytes, got ${guid.length}`);
  return guid;
}

// ---------------------------------------------------------------------------------------------
// Firmware side (what OVMF's XenVariable driver does), for tools and tests that play the guest.

/** Encoded size of a request. */
export function encodedRequestSize(request: Request): number {
  switch (request.command) {
    case 'GetVariable':
      return 8 + 8 + request.name.length + 16 + 8 + 1;
    case 'SetVariable':
      return 8 + 8 + request.name.length + 16 + 8 + request.data.length + 4 + 1;
    case 'GetNextVariableName':
      return 8 + 8 + 8 + request.name.length + 16 + 1;
    case 'QueryVariableInfo':
      return 8 + 4;
    case 'NotifySBFailure':
      return 8;
  }
}

/**
 * Encodes a request as the guest would into `out` (from offset 0) and returns its length.
 * Throws RangeError when it does not fit.
 */
export function encodeRequest(request: Request, out: Uint8Array): number {
  const size = encodedRequestSize(request);
  if (size > out.length) throw new RangeError(`request needs ${size} bytes, buffer has ${out.length}`);
  const w = new Writer(out).u32(PROTOCOL_VERSION).u32(Command[request.command]);
  switch (request.command) {
    case 'GetVariable':
      w.u64(BigInt(request.name.length)).bytes(request.name).bytes(checkGuid(request.guid));
      w.u64(BigInt(request.dataSize)).u8(request.atRuntime ? 1 : 0);
      break;
    case 'SetVariable':
      w.u64(BigInt(request.name.length)).bytes(request.name).bytes(checkGuid(request.guid));
      w.u64(BigInt(request.data.length))
        .bytes(request.data)
        .u32(request.attributes)
        .u8(request.atRuntime ? 1 : 0);
      break;
    case 'GetNextVariableName':
      w.u64(BigInt(request.nameSize)).u64(BigInt(request.name.length)).bytes(request.name);
      w.bytes(checkGuid(request.guid)).u8(request.atRuntime ? 1 : 0);
      break;
    case 'QueryVariableInfo':
      w.u32(request.attributes);
      break;
    case 'NotifySBFailure':
      break;
  }
  return w.offset;
}

/**
 * Decodes the daemon's reply to a request of `command`. Never throws; a reply that runs past
 * `bytes` is reported as an error.
 */
export function decodeResponse(command: CommandName, bytes: Uint8Array): DecodedResponse {
  const input = bytes.length > Limits.BUFFER_SIZE ? bytes.subarray(0, Limits.BUFFER_SIZE) : bytes;
  const r = new Reader(input);
  try {
    const status = readStatus(r);
    if (!COMMAND_NAMES.includes(command)) return { ok: false, reason: `unknown command ${String(command)}` };
    if (status === EfiStatus.BUFFER_TOO_SMALL && (command === 'GetVariable' || command === 'GetNextVariableName')) {
      return { ok: true, response: { command, status, requiredSize: r.u64Saturating('required size') } };
    }
    if (status !== EfiStatus.SUCCESS) return { ok: true, response: { command, status } as Response };
    switch (command) {
      case 'GetVariable': {
        const attributes = r.u32('attributes');
        const data = r.lengthPrefixed('data');
        return { ok: true, response: { command, status, attributes, data } };
      }
      case 'GetNextVariableName': {
        const name = r.lengthPrefixed('name');
        const guid = r.bytesOf(16, 'guid');
        return { ok: true, response: { command, status, name, guid } };
      }
      case 'QueryVariableInfo':
        return {
          ok: true,
          response: {
            command,
            status,
            maximumStorageSize: r.u64Saturating('maximum storage size'),
            remainingStorageSize: r.u64Saturating('remaining storage size'),
            maximumVariableSize: r.u64Saturating('maximum variable size'),
          },
        };
      default:
        return { ok: true, response: { command, status } };
    }
  } catch (e) {
    return {
      ok: false,
      reason: e instanceof Truncated ? `${e.field} runs past the end of the reply` : 'undecodable reply',
    };
  }
}

function readStatus(r: Reader): bigint {
  const lo = BigInt(r.u32('status'));
  const hi = BigInt(r.u32('status'));
  return (hi << 32n) | lo;
}
