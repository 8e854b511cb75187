import { Limits, decodeResponse, encodeRequest, type DecodedResponse, type Request } from '@vmsb/protocol';
import type { DispatchOutcome, StoreState } from './types.js';

/** Anything that answers a guest buffer: `VariableStore.dispatch`, a socket client, ... */
export type RequestHandler = (request: Uint8Array) => Uint8Array;

/**
 * Plays OVMF's XenVariable driver: encodes each call into a 64 KiB buffer, hands it to the
 * handler, and decodes the reply from the buffer. Every call is a whole round trip through the
 * wire format, so what it observes is what a guest would.
 */
export class FirmwareClient {
  atRuntime = false;

  constructor(private readonly handler: RequestHandler) {}

  /**
   * A client of a store's `dispatch`, settling every pending change at once: `persist(state)`
   * returning true commits it, false rolls it back (the guest then sees DEVICE_ERROR).
   */
  static forStore(
    store: { dispatch(request: Uint8Array): DispatchOutcome },
    persist: (state: StoreState) => boolean = () => true,
  ): FirmwareClient {
    return new FirmwareClient((request) => {
      const outcome = store.dispatch(request);
      if (outcome.pending === undefined) return outcome.response;
      if (persist(outcome.pending.state)) {
        outcome.pending.commit();
        return outcome.response;
      }
      return outcome.pending.rollback();
    });
  }

  /** One raw round trip; throws when the reply cannot be decoded (a test failure, not a status). */
  call(request: Request): DecodedResponse & { ok: true } {
    const buffer = new Uint8Array(Limits.BUFFER_SIZE);
    encodeRequest(request, buffer);
    const reply = this.handler(buffer);
    if (reply.length > Limits.BUFFER_SIZE)
      throw new RangeError(`a reply of ${reply.length} bytes does not fit the guest buffer`);
    // The daemon writes the reply over the request; the rest of the buffer keeps what was there.
    buffer.set(reply, 0);
    const decoded = decodeResponse(request.command, buffer);
    if (!decoded.ok) throw new Error(`undecodable reply to ${request.command}: ${decoded.reason}`);
    return decoded;
  }

  getVariable(
    name: Uint8Array,
    guid: Uint8Array,
    dataSize: number = Limits.DATA_MAX,
  ): { status: bigint; attributes?: number; data?: Uint8Array; requiredSize?: number } {
    const r = this.call({ command: 'GetVariable', name, guid, dataSize, atRuntime: this.atRuntime }).response;
    if (r.command !== 'GetVariable') throw new Error('reply to another command');
    return { status: r.status, ...pick(r, 'attributes', 'data', 'requiredSize') };
  }

  setVariable(name: Uint8Array, guid: Uint8Array, attributes: number, data: Uint8Array): bigint {
    return this.call({ command: 'SetVariable', name, guid, attributes, data, atRuntime: this.atRuntime }).response
      .status;
  }

  getNextVariableName(
    name: Uint8Array,
    guid: Uint8Array,
    nameSize: number = Limits.NAME_MAX + 2,
  ): { status: bigint; name?: Uint8Array; guid?: Uint8Array; requiredSize?: number } {
    const r = this.call({ command: 'GetNextVariableName', nameSize, name, guid, atRuntime: this.atRuntime }).response;
    if (r.command !== 'GetNextVariableName') throw new Error('reply to another command');
    return { status: r.status, ...pick(r, 'name', 'guid', 'requiredSize') };
  }

  queryVariableInfo(attributes: number): {
    status: bigint;
    maximumStorageSize?: number;
    remainingStorageSize?: number;
    maximumVariableSize?: number;
  } {
    const r = this.call({ command: 'QueryVariableInfo', attributes }).response;
    if (r.command !== 'QueryVariableInfo') throw new Error('reply to another command');
    return { status: r.status, ...pick(r, 'maximumStorageSize', 'remainingStorageSize', 'maximumVariableSize') };
  }

  notifySBFailure(): bigint {
    return this.call({ command: 'NotifySBFailure' }).response.status;
  }

  /** Every (name, guid) GetNextVariableName yields, in order, until NOT_FOUND (or another error, which throws). */
  listVariables(): { name: Uint8Array; guid: Uint8Array }[] {
    const out: { name: Uint8Array; guid: Uint8Array }[] = [];
    let name = new Uint8Array(0);
    let guid = new Uint8Array(16);
    for (let i = 0; i <= 4096; i++) {
      const r = this.getNextVariableName(name, guid);
      if (r.status !== 0n) {
        if (r.status === 0x800000000000000en) return out;
        throw new Error(`GetNextVariableName failed with 0x${r.status.toString(16)}`);
      }
      name = r.name!.slice();
      guid = r.guid!.slice();
      out.push({ name, guid });
    }
    throw new Error('the enumeration does not end');
  }
}

function pick<T extends object, K extends keyof T>(o: T, ...keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
