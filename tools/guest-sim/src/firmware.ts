/**
 * Variable services as OVMF's XenVariable driver offers them to the rest of the firmware (and to
 * the OS after ExitBootServices), over a GuestConnection. Every call is recorded.
 */
import {
  type CommandName,
  EfiStatus,
  fromUtf16le,
  guidFromText,
  guidToText,
  type Response,
  statusName,
  utf16le,
} from '@vmsb/protocol';
import type { GuestConnection } from './connection.js';

function guid(text: string): Uint8Array {
  const bytes = guidFromText(text);
  if (bytes === undefined) throw new TypeError(`not a GUID: ${text}`);
  return bytes;
}

/** Vendor GUIDs OVMF uses for the variables of a boot. */
export const VendorGuids = {
  GLOBAL: guid('8be4df61-93ca-11d2-aa0d-00e098032b8c'),
  IMAGE_SECURITY_DATABASE: guid('d719b2cb-3d3a-4596-a3bc-dad00e67656f'),
  /** MonotonicCounterRuntimeDxe's "MTC". */
  MTC: guid('eb704011-1402-11d3-8e77-00a0c969723b'),
  /** gEfiMemoryTypeInformationGuid. */
  MEMORY_TYPE_INFORMATION: guid('4c19049f-4137-4dd3-9c10-8b97a83ffdfa'),
  /** gEfiCustomModeEnableGuid ("CustomMode"). */
  CUSTOM_MODE: guid('c076ec0c-7028-4399-a072-71ee5c448b9f'),
} as const;

export const Attributes = {
  NV: 0x1,
  BS: 0x2,
  RT: 0x4,
  NV_BS: 0x3,
  BS_RT: 0x6,
  NV_BS_RT: 0x7,
} as const;

export interface TraceEntry {
  readonly phase: string;
  readonly command: CommandName;
  readonly status: bigint;
  readonly name?: string;
  readonly guid?: string;
  readonly atRuntime?: boolean;
}

export interface VariableRef {
  readonly name: string;
  readonly guid: Uint8Array;
}

export interface VariableValue {
  readonly attributes: number;
  readonly data: Uint8Array;
}

export interface StorageInfo {
  readonly status: bigint;
  readonly maximumStorageSize?: number;
  readonly remainingStorageSize?: number;
  readonly maximumVariableSize?: number;
}

/** The daemon broke the protocol (an undecodable or mismatched reply). */
export class ProtocolError extends Error {}

export class Firmware {
  readonly trace: TraceEntry[] = [];
  /** Label for the calls that follow (e.g. "DXE", "BDS", "OS"). */
  phase = 'boot';
  /** EfiAtRuntime(): set after ExitBootServices. */
  atRuntime = false;

  constructor(private readonly connection: GuestConnection) {}

  private async call<C extends CommandName>(
    request: Parameters<GuestConnection['call']>[0] & { command: C },
    name?: string,
    guidBytes?: Uint8Array,
  ): Promise<Response & { command: C }> {
    const decoded = await this.connection.call(request);
    if (!decoded.ok) throw new ProtocolError(`${request.command}: ${decoded.reason}`);
    const entry: TraceEntry = {
      phase: this.phase,
      command: request.command,
      status: decoded.response.status,
      ...(name !== undefined ? { name } : {}),
      ...(guidBytes !== undefined ? { guid: guidToText(guidBytes) } : {}),
      ...('atRuntime' in request ? { atRuntime: request.atRuntime } : {}),
    };
    this.trace.push(entry);
    return decoded.response as Response & { command: C };
  }

  /** One GetVariable call with a caller buffer of `dataSize` bytes. */
  async getVariable(ref: VariableRef, dataSize: number): Promise<Response & { command: 'GetVariable' }> {
    return this.call(
      { command: 'GetVariable', name: utf16le(ref.name), guid: ref.guid, dataSize, atRuntime: this.atRuntime },
      ref.name,
      ref.guid,
    );
  }

  /**
   * Reads a variable the way edk2's GetVariable2() does: ask with an empty buffer to learn the size
   * (BUFFER_TOO_SMALL), then read it into a buffer of exactly that size. undefined when it does not exist.
   */
  async readVariable(ref: VariableRef): Promise<VariableValue | undefined> {
    const probe = await this.getVariable(ref, 0);
    if (probe.status === EfiStatus.NOT_FOUND) return undefined;
    if (probe.status !== EfiStatus.BUFFER_TOO_SMALL || probe.requiredSize === undefined) {
      throw new ProtocolError(`GetVariable ${ref.name} with an empty buffer: ${statusName(probe.status)}`);
    }
    const read = await this.getVariable(ref, probe.requiredSize);
    if (read.status === EfiStatus.NOT_FOUND) return undefined;
    if (read.status !== EfiStatus.SUCCESS || read.data === undefined || read.attributes === undefined) {
      throw new ProtocolError(`GetVariable ${ref.name}: ${statusName(read.status)}`);
    }
    return { attributes: read.attributes, data: read.data.slice() };
  }

  async setVariable(ref: VariableRef, attributes: number, data: Uint8Array): Promise<bigint> {
    const r = await this.call(
      { command: 'SetVariable', name: utf16le(ref.name), guid: ref.guid, data, attributes, atRuntime: this.atRuntime },
      ref.name,
      ref.guid,
    );
    return r.status;
  }

  /**
   * Every variable name, as a caller of GetNextVariableName sees them: start with an empty name and
   * a modest buffer, grow the buffer when told BUFFER_TOO_SMALL, stop at NOT_FOUND.
   */
  async enumerate(initialNameSize = 64): Promise<VariableRef[]> {
    const found: VariableRef[] = [];
    let nameSize = initialNameSize;
    let previous: { name: Uint8Array; guid: Uint8Array } = { name: new Uint8Array(0), guid: new Uint8Array(16) };
    for (let guard = 0; guard < 4096; guard++) {
      const r = await this.call(
        {
          command: 'GetNextVariableName',
          nameSize,
          name: previous.name,
          guid: previous.guid,
          atRuntime: this.atRuntime,
        },
        previous.name.length === 0 ? undefined : fromUtf16le(previous.name),
        previous.name.length === 0 ? undefined : previous.guid,
      );
      if (r.status === EfiStatus.NOT_FOUND) return found;
      if (r.status === EfiStatus.BUFFER_TOO_SMALL && r.requiredSize !== undefined && r.requiredSize > nameSize) {
        nameSize = r.requiredSize;
        continue;
      }
      if (r.status !== EfiStatus.SUCCESS || r.name === undefined || r.guid === undefined) {
        throw new ProtocolError(`GetNextVariableName: ${statusName(r.status)}`);
      }
      previous = { name: r.name.slice(), guid: r.guid.slice() };
      found.push({ name: fromUtf16le(previous.name), guid: previous.guid });
    }
    throw new ProtocolError('GetNextVariableName never reached the end of the list');
  }

  async queryVariableInfo(attributes: number): Promise<StorageInfo> {
    const r = await this.call({ command: 'QueryVariableInfo', attributes });
    return r.status === EfiStatus.SUCCESS
      ? {
          status: r.status,
          ...(r.maximumStorageSize !== undefined ? { maximumStorageSize: r.maximumStorageSize } : {}),
          ...(r.remainingStorageSize !== undefined ? { remainingStorageSize: r.remainingStorageSize } : {}),
          ...(r.maximumVariableSize !== undefined ? { maximumVariableSize: r.maximumVariableSize } : {}),
        }
      : { status: r.status };
  }

  async notifySBFailure(): Promise<bigint> {
    return (await this.call({ command: 'NotifySBFailure' })).status;
  }
}
