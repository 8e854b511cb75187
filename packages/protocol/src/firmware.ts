/**
 * The firmware's side of the wire: what OVMF's XenVariable driver does for each variable service.
 * It encodes the call at offset 0 of a fresh 64 KiB guest buffer, hands the buffer to a transport,
 * lays the reply over the buffer from offset 0 (the rest keeps what was there, as in the guest) and
 * decodes it. The transport may answer at once (a store's dispatch in-process) or later (a socket):
 * the services are written once, as generators of requests, and run either way.
 */
import { type Request, type Response, decodeResponse, encodeRequest } from './codec.js';
import { type CommandName, Limits } from './limits.js';
import { EfiStatus, statusName } from './status.js';
import { fromUtf16le } from './utf16.js';

/**
 * Carries one request to varstored. `buffer` is the guest's 64 KiB buffer with the encoded request
 * in its first `length` bytes (what a socket frame carries); the result is what the daemon writes
 * back from offset 0.
 */
export type RequestHandler = (buffer: Uint8Array, length: number) => Uint8Array;
/** A RequestHandler whose answer arrives later (a socket, or a store that persists before it answers). */
export type AsyncRequestHandler = (buffer: Uint8Array, length: number) => Promise<Uint8Array>;

type Reply = Uint8Array | Promise<Uint8Array>;
/** `T` from a client over a RequestHandler; a promise of `T` over an AsyncRequestHandler. */
export type Answer<R extends Reply, T> = R extends Promise<Uint8Array> ? Promise<T> : T;

/** The varstored answered something no firmware can use: an undecodable or unexpected reply. */
export class ProtocolError extends Error {}

/** A reply's fields without its command: what each service returns. */
type ResultOf<C extends CommandName> = Omit<Extract<Response, { readonly command: C }>, 'command'>;
export type GetVariableResult = ResultOf<'GetVariable'>;
export type GetNextVariableNameResult = ResultOf<'GetNextVariableName'>;
export type QueryVariableInfoResult = ResultOf<'QueryVariableInfo'>;

/** A variable's key as GetNextVariableName yields it: UTF-16LE name without terminator, vendor GUID. */
export interface VariableKey {
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
}

export interface VariableValue {
  readonly attributes: number;
  readonly data: Uint8Array;
}

/** What a store's `dispatch` returns (`VariableStore` in @vmsb/efi): the reply, and a change to make durable first. */
export interface TransactionalDispatch<S> {
  dispatch(request: Uint8Array): {
    readonly response: Uint8Array;
    readonly pending?: { readonly state: S; commit(): void; rollback(): Uint8Array } | undefined;
  };
}

/** An enumeration longer than this loops: a store holds far fewer variables. */
const MAX_ENUMERATION = 4096;

type Service<T> = Generator<Request, T, Response>;

export class FirmwareClient<R extends Reply = Uint8Array> {
  /** EfiAtRuntime(): set after ExitBootServices. */
  atRuntime = false;

  /** `observe` sees each request with its decoded reply (a trace, a log). */
  constructor(
    private readonly handler: (buffer: Uint8Array, length: number) => R,
    private readonly observe?: (request: Request, response: Response) => void,
  ) {}

  /**
   * A client of a store's dispatch that settles every pending change before the reply counts:
   * `persist(state)` returning (or resolving to) true commits it; false rolls it back, and the
   * firmware then sees the store's rollback reply (DEVICE_ERROR).
   */
  static forStore<S>(store: TransactionalDispatch<S>, persist?: (state: S) => boolean): FirmwareClient;
  static forStore<S>(
    store: TransactionalDispatch<S>,
    persist: (state: S) => Promise<boolean>,
  ): FirmwareClient<Promise<Uint8Array>>;
  static forStore<S>(
    store: TransactionalDispatch<S>,
    persist: (state: S) => boolean | Promise<boolean> = () => true,
  ): FirmwareClient<Reply> {
    return new FirmwareClient<Reply>((buffer) => {
      const outcome = store.dispatch(buffer);
      const pending = outcome.pending;
      if (pending === undefined) return outcome.response;
      const settle = (durable: boolean): Uint8Array => {
        if (!durable) return pending.rollback();
        pending.commit();
        return outcome.response;
      };
      const durable = persist(pending.state);
      return typeof durable === 'boolean' ? settle(durable) : durable.then(settle);
    });
  }

  /** One raw round trip; throws ProtocolError when the reply does not decode. */
  call(request: Request): Answer<R, Response> {
    return this.run(once(request));
  }

  getVariable(name: Uint8Array, guid: Uint8Array, dataSize: number = Limits.DATA_MAX): Answer<R, GetVariableResult> {
    return this.run(this.getVariableService(name, guid, dataSize));
  }

  /**
   * Reads a variable the way edk2's GetVariable2() does: ask with an empty buffer to learn the size
   * (BUFFER_TOO_SMALL), then read it into a buffer of exactly that size. undefined when it does not
   * exist; any other status throws ProtocolError.
   */
  readVariable(name: Uint8Array, guid: Uint8Array): Answer<R, VariableValue | undefined> {
    return this.run(this.readVariableService(name, guid));
  }

  setVariable(name: Uint8Array, guid: Uint8Array, attributes: number, data: Uint8Array): Answer<R, bigint> {
    return this.run(this.statusOf({ command: 'SetVariable', name, guid, attributes, data, atRuntime: this.atRuntime }));
  }

  getNextVariableName(
    name: Uint8Array,
    guid: Uint8Array,
    nameSize: number = Limits.NAME_MAX + 2,
  ): Answer<R, GetNextVariableNameResult> {
    return this.run(this.getNextService(name, guid, nameSize));
  }

  /**
   * Every variable, as a caller of GetNextVariableName sees them: start with an empty name and a
   * buffer of `initialNameSize` bytes, grow the buffer when told BUFFER_TOO_SMALL, stop at
   * NOT_FOUND. Any other status throws ProtocolError.
   */
  listVariables(initialNameSize: number = Limits.NAME_MAX + 2): Answer<R, VariableKey[]> {
    return this.run(this.listService(initialNameSize));
  }

  queryVariableInfo(attributes: number): Answer<R, QueryVariableInfoResult> {
    return this.run(this.queryService(attributes));
  }

  notifySBFailure(): Answer<R, bigint> {
    return this.run(this.statusOf({ command: 'NotifySBFailure' }));
  }

  // ---- the services, written once for both kinds of handler ----------------------------------

  private *statusOf(request: Request): Service<bigint> {
    return (yield request).status;
  }

  private *getVariableService(name: Uint8Array, guid: Uint8Array, dataSize: number): Service<GetVariableResult> {
    const r = yield { command: 'GetVariable', name, guid, dataSize, atRuntime: this.atRuntime };
    if (r.command !== 'GetVariable') throw new ProtocolError('reply to another command');
    return { status: r.status, ...defined(r, 'attributes', 'data', 'requiredSize') };
  }

  private *readVariableService(name: Uint8Array, guid: Uint8Array): Service<VariableValue | undefined> {
    const probe = yield* this.getVariableService(name, guid, 0);
    if (probe.status === EfiStatus.NOT_FOUND) return undefined;
    if (probe.status !== EfiStatus.BUFFER_TOO_SMALL || probe.requiredSize === undefined) {
      throw new ProtocolError(`GetVariable ${fromUtf16le(name)} with an empty buffer: ${statusName(probe.status)}`);
    }
    const read = yield* this.getVariableService(name, guid, probe.requiredSize);
    if (read.status === EfiStatus.NOT_FOUND) return undefined;
    if (read.status !== EfiStatus.SUCCESS || read.data === undefined || read.attributes === undefined) {
      throw new ProtocolError(`GetVariable ${fromUtf16le(name)}: ${statusName(read.status)}`);
    }
    return { attributes: read.attributes, data: read.data.slice() };
  }

  private *getNextService(name: Uint8Array, guid: Uint8Array, nameSize: number): Service<GetNextVariableNameResult> {
    const r = yield { command: 'GetNextVariableName', nameSize, name, guid, atRuntime: this.atRuntime };
    if (r.command !== 'GetNextVariableName') throw new ProtocolError('reply to another command');
    return { status: r.status, ...defined(r, 'name', 'guid', 'requiredSize') };
  }

  private *listService(initialNameSize: number): Service<VariableKey[]> {
    const found: VariableKey[] = [];
    let nameSize = initialNameSize;
    let previous: VariableKey = { name: new Uint8Array(0), guid: new Uint8Array(16) };
    for (let guard = 0; guard < MAX_ENUMERATION; guard++) {
      const r = yield* this.getNextService(previous.name, previous.guid, nameSize);
      if (r.status === EfiStatus.NOT_FOUND) return found;
      if (r.status === EfiStatus.BUFFER_TOO_SMALL && r.requiredSize !== undefined && r.requiredSize > nameSize) {
        nameSize = r.requiredSize;
        continue;
      }
      if (r.status !== EfiStatus.SUCCESS || r.name === undefined || r.guid === undefined) {
        throw new ProtocolError(`GetNextVariableName: ${statusName(r.status)}`);
      }
      previous = { name: r.name.slice(), guid: r.guid.slice() };
      found.push(previous);
    }
    throw new ProtocolError('GetNextVariableName never reached the end of the list');
  }

  private *queryService(attributes: number): Service<QueryVariableInfoResult> {
    const r = yield { command: 'QueryVariableInfo', attributes };
    if (r.command !== 'QueryVariableInfo') throw new ProtocolError('reply to another command');
    return { status: r.status, ...defined(r, 'maximumStorageSize', 'remainingStorageSize', 'maximumVariableSize') };
  }

  // ---- the round trip -----------------------------------------------------------------------

  /** Runs a service: synchronously while the handler answers at once, as promises once it does not. */
  private run<T>(service: Service<T>): Answer<R, T> {
    const step = (response: Response | undefined): T | Promise<T> => {
      for (;;) {
        const next = response === undefined ? service.next() : service.next(response);
        if (next.done) return next.value;
        const request = next.value;
        const buffer = new Uint8Array(Limits.BUFFER_SIZE);
        const length = encodeRequest(request, buffer);
        const reply = this.handler(buffer, length);
        if (reply instanceof Promise) return reply.then((bytes) => step(this.decode(request, buffer, bytes)));
        response = this.decode(request, buffer, reply);
      }
    };
    return step(undefined) as Answer<R, T>;
  }

  private decode(request: Request, buffer: Uint8Array, reply: Uint8Array): Response {
    if (reply.length > buffer.length)
      throw new ProtocolError(`a reply of ${reply.length} bytes does not fit the ${buffer.length}-byte guest buffer`);
    // The daemon writes the reply over the request; the rest of the buffer keeps what was there.
    buffer.set(reply, 0);
    const decoded = decodeResponse(request.command as CommandName, buffer);
    if (!decoded.ok) throw new ProtocolError(`undecodable reply to ${request.command}: ${decoded.reason}`);
    this.observe?.(request, decoded.response);
    return decoded.response;
  }
}

function* once(request: Request): Service<Response> {
  return yield request;
}

/** The named fields of `o` that are set (the reply's optional fields, without undefined ones). */
function defined<T extends object, K extends keyof T>(o: T, ...keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
