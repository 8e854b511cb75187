/**
 * The store a tool works on: the VM's variables loaded from XAPI into the same VariableStore the
 * daemon runs, with the C tools' settings (authenticated variables permissive, Secure Boot off)
 * and the builtins computed as at a new boot. Requests go through the store's wire dispatcher as
 * the C tools' requests do (boot-time, not runtime). A request that changes non-volatile state is
 * written back to XAPI before it counts; if XAPI does not take it, it is undone and answered with
 * EFI_DEVICE_ERROR.
 */
import { VariableStore, type Authenticator, type StoreOptions } from '@vmsb/efi';
import { FirmwareClient } from '@vmsb/protocol';
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

/** The C tools' view of the VM: variable services as the firmware calls them, at boot time. */
export type ToolSession = FirmwareClient<Promise<Uint8Array>>;

/** Loads the VM's NVRAM. Rejects with a message naming what failed. */
export async function openSession(options: SessionOptions, nvram?: SessionNvram): Promise<ToolSession> {
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
  return FirmwareClient.forStore(store, async (changed) => {
    try {
      await source.save(changed);
      return true;
    } catch (e) {
      io.err(`${e instanceof Error ? e.message : String(e)}\n`);
      return false;
    }
  });
}
