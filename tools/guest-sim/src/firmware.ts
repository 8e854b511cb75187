/**
 * Variable services as OVMF's XenVariable driver offers them to the rest of the firmware (and to
 * the OS after ExitBootServices), over a GuestConnection. Every call is recorded.
 */
import {
  type CommandName,
  FirmwareClient,
  type GetVariableResult,
  type QueryVariableInfoResult,
  type Request,
  type Response,
  type VariableValue,
  fromUtf16le,
  guidFromText,
  guidToText,
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

/**
 * OVMF's variable services over a GuestConnection, named as its drivers name variables (a string
 * and a vendor GUID), with every call recorded. The wire work is @vmsb/protocol's FirmwareClient.
 */
export class Firmware {
  readonly trace: TraceEntry[] = [];
  /** Label for the calls that follow (e.g. "DXE", "BDS", "OS"). */
  phase = 'boot';
  private readonly client: FirmwareClient<Promise<Uint8Array>>;

  constructor(connection: GuestConnection) {
    this.client = new FirmwareClient(connection.handler, (request, response) => this.record(request, response));
  }

  /** EfiAtRuntime(): set after ExitBootServices. */
  get atRuntime(): boolean {
    return this.client.atRuntime;
  }
  set atRuntime(value: boolean) {
    this.client.atRuntime = value;
  }

  /** One GetVariable call with a caller buffer of `dataSize` bytes. */
  getVariable(ref: VariableRef, dataSize: number): Promise<GetVariableResult> {
    return this.client.getVariable(utf16le(ref.name), ref.guid, dataSize);
  }

  /** edk2's GetVariable2(): a size probe, then a read of exactly that size; undefined when absent. */
  readVariable(ref: VariableRef): Promise<VariableValue | undefined> {
    return this.client.readVariable(utf16le(ref.name), ref.guid);
  }

  setVariable(ref: VariableRef, attributes: number, data: Uint8Array): Promise<bigint> {
    return this.client.setVariable(utf16le(ref.name), ref.guid, attributes, data);
  }

  /** Every variable, starting with a name buffer of `initialNameSize` bytes and growing it when told to. */
  async enumerate(initialNameSize = 64): Promise<VariableRef[]> {
    return (await this.client.listVariables(initialNameSize)).map((v) => ({ name: fromUtf16le(v.name), guid: v.guid }));
  }

  queryVariableInfo(attributes: number): Promise<QueryVariableInfoResult> {
    return this.client.queryVariableInfo(attributes);
  }

  notifySBFailure(): Promise<bigint> {
    return this.client.notifySBFailure();
  }

  private record(request: Request, response: Response): void {
    // GetNextVariableName names the variable it continues from; the first call names none.
    const named = 'name' in request && (request.command !== 'GetNextVariableName' || request.name.length > 0);
    this.trace.push({
      phase: this.phase,
      command: request.command,
      status: response.status,
      ...(named ? { name: fromUtf16le(request.name), guid: guidToText(request.guid) } : {}),
      ...('atRuntime' in request ? { atRuntime: request.atRuntime } : {}),
    });
  }
}
