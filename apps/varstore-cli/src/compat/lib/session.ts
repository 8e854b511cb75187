/**
 * The store a tool works on: the VM's variables loaded from XAPI into the same VariableStore the
 * daemon runs, with the C tools' settings (authenticated variables permissive, Secure Boot off)
 * and the builtins computed as at a new boot. Requests go through the store's wire dispatcher as
 * the C tools' requests do (boot-time, not runtime). A request that changes non-volatile state is
 * written back to XAPI before it counts; if XAPI does not take it, it is undone and answered with
 * EFI_DEVICE_ERROR.
 */
import { VariableStore, type Authenticator, type StoreOptions } from '@vmsb/efi';
import {
  EfiStatus,
  Limits,
  decodeResponse,
  encodeRequest,
  encodedRequestSize,
  type Request,
  type Response,
} from '@vmsb/protocol';
import { createXapidbStore, type XapidbStore } from '@vmsb/xapi';
import type { ToolIo } from './io.js';

export interface SessionOptions {
  readonly uuid: string;
  /** The XAPI socket; undefined = XAPI's default (/var/lib/xcp/xapi). */
  readonly socket?: string;
  /** Needed by tools that write authenticated variables (rm, set, sb-state). */
  readonly authenticator?: Authenticator;
  readonly io: ToolIo;
}

/** Where the NVRAM lives (XAPI through its socket); replaceable for in-process use. */
export interface SessionNvram {
  load: XapidbStore['load'];
  save: XapidbStore['save'];
}

export class ToolSession {
  private constructor(
    private readonly store: VariableStore,
    private readonly nvram: SessionNvram,
    private readonly io: ToolIo,
  ) {}

  /** Loads the VM's NVRAM. Rejects with a message naming what failed. */
  static async open(options: SessionOptions, nvram?: SessionNvram): Promise<ToolSession> {
    const { io } = options;
    const source =
      nvram ??
      createXapidbStore({
        uuid: options.uuid,
        ...(options.socket !== undefined ? { socket: options.socket } : {}),
        log: (level, message) => {
          if (level === 'error' || level === 'warn') io.err(`${message}\n`);
        },
      });
    const state = await source.load();
    const storeOptions: StoreOptions = {
      platform: { secureBoot: false, authEnforce: false },
      ...(options.authenticator !== undefined ? { authenticator: options.authenticator } : {}),
    };
    let store: VariableStore;
    try {
      store =
        state === undefined
          ? VariableStore.create(storeOptions)
          : VariableStore.restore(state, { ...storeOptions, resume: false });
    } catch (e) {
      throw new Error(`the NVRAM of VM ${options.uuid} cannot be used: ${e instanceof Error ? e.message : String(e)}`, {
        cause: e,
      });
    }
    return new ToolSession(store, source, io);
  }

  getVariable(
    name: Uint8Array,
    guid: Uint8Array,
  ): { status: bigint; attributes?: number | undefined; data?: Uint8Array | undefined } {
    const r = this.read({ command: 'GetVariable', name, guid, dataSize: Limits.DATA_MAX, atRuntime: false });
    if (r.command !== 'GetVariable') throw new Error('the store answered another command');
    return r.status === EfiStatus.SUCCESS
      ? { status: r.status, attributes: r.attributes, data: r.data }
      : { status: r.status };
  }

  /** The variable after (name, guid); an empty name starts the enumeration. */
  getNextVariableName(
    name: Uint8Array,
    guid: Uint8Array,
  ): {
    status: bigint;
    name?: Uint8Array | undefined;
    guid?: Uint8Array | undefined;
  } {
    // The C tools offer a 4096-byte name buffer.
    const r = this.read({ command: 'GetNextVariableName', nameSize: Limits.NAME_MAX, name, guid, atRuntime: false });
    if (r.command !== 'GetNextVariableName') throw new Error('the store answered another command');
    return r.status === EfiStatus.SUCCESS ? { status: r.status, name: r.name, guid: r.guid } : { status: r.status };
  }

  async setVariable(name: Uint8Array, guid: Uint8Array, attributes: number, data: Uint8Array): Promise<bigint> {
    const buffer = this.encode({ command: 'SetVariable', name, guid, attributes, data, atRuntime: false });
    const outcome = this.store.dispatch(buffer);
    let reply = outcome.response;
    if (outcome.pending !== undefined) {
      try {
        await this.nvram.save(outcome.pending.state);
        outcome.pending.commit();
      } catch (e) {
        this.io.err(`${e instanceof Error ? e.message : String(e)}\n`);
        reply = outcome.pending.rollback();
      }
    }
    return this.decode('SetVariable', buffer, reply).status;
  }

  private read(request: Request): Response {
    const buffer = this.encode(request);
    const outcome = this.store.dispatch(buffer);
    // Reads never change state; a pending change here would be a store fault: keep nothing.
    if (outcome.pending !== undefined) outcome.pending.rollback();
    return this.decode(request.command, buffer, outcome.response);
  }

  private encode(request: Request): Uint8Array {
    const buffer = new Uint8Array(Limits.BUFFER_SIZE);
    if (encodedRequestSize(request) > buffer.length)
      throw new Error(`the request does not fit the ${Limits.BUFFER_SIZE}-byte buffer`);
    encodeRequest(request, buffer);
    return buffer;
  }

  private decode(command: Request['command'], buffer: Uint8Array, reply: Uint8Array): Response {
    // The reply overwrites the request buffer from offset 0, as in the guest's buffer.
    buffer.set(reply.subarray(0, buffer.length), 0);
    const decoded = decodeResponse(command, buffer);
    if (!decoded.ok) throw new Error(`undecodable reply to ${command}: ${decoded.reason}`);
    return decoded.response;
  }
}
