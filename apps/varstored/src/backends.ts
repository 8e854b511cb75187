/**
 * NVRAM backends, chosen with --backend: each turns its --arg values into an NvramStore.
 * `file` is embedded; `xapidb` (the default, as the C daemon) lives in @vmsb/xapi and is loaded
 * only when chosen.
 */
import { createFileStore, FileStoreLocked, lockFileStore, type NvramStore } from '@vmsb/nvram';
import type { BackendName } from './args.js';
import type { Logger } from './log.js';

export interface Backend {
  readonly store: NvramStore;
  /** For the log: where the variables live. */
  readonly description: string;
  /** Raises the VM_SECURE_BOOT_FAILED alert, where the backend can. */
  readonly notifySecureBootFailure?: () => Promise<void>;
  /** Lets go of what the backend holds for the daemon's life (the file store's lock). */
  readonly release?: () => void;
}

export interface BackendContext {
  readonly log: Logger;
  readonly nonPersistent: boolean;
}

/** Makes the backend from its --arg values. */
export type CreateBackend = (args: ReadonlyMap<string, string>, context: BackendContext) => Backend;

/**
 * Loads what a backend needs (its code) and takes what must be held for the daemon's life (the file
 * store's lock), and returns its constructor. This happens before privileges are dropped: inside a
 * chroot the daemon's own modules are out of reach. `root`: the chroot the daemon will enter, which
 * the backend's paths are relative to.
 */
export type BackendLoader = (args: ReadonlyMap<string, string>, options: { root?: string }) => Promise<CreateBackend>;

function required(args: ReadonlyMap<string, string>, key: string): string {
  const value = args.get(key);
  // The command line already insisted on it; this guards direct callers.
  if (value === undefined) throw new Error(`backend argument ${key}: is required`);
  return value;
}

export const BACKENDS: Record<BackendName, BackendLoader> = {
  file: async (loaderArgs, { root }) => {
    const path = required(loaderArgs, 'path');
    // One writer per NVRAM: a second daemon, or `varstore` writing the file, is refused while we run.
    let lock: Awaited<ReturnType<typeof lockFileStore>>;
    try {
      lock = await lockFileStore(path, root === undefined ? {} : { root });
    } catch (e) {
      if (e instanceof FileStoreLocked) {
        throw new Error(
          `Failed to lock the NVRAM file '${path}': it is in use by another process${e.heldBy ? ` (pid ${e.heldBy})` : ''}, another varstored serving this VM or varstore writing it (lock ${e.lockPath})`,
        );
      }
      throw e;
    }
    return () => ({
      store: createFileStore({ path, lock }),
      description: `file ${path}`,
      release: () => lock.release(),
    });
  },
  xapidb: async () => {
    let xapi: typeof import('@vmsb/xapi');
    try {
      xapi = await import('@vmsb/xapi');
    } catch (e) {
      throw new Error(`the xapidb backend is unavailable: @vmsb/xapi cannot be loaded (${(e as Error).message})`);
    }
    return (args, { log, nonPersistent }) => {
      const uuid = required(args, 'uuid');
      const socket = required(args, 'socket');
      const store = xapi.createXapidbStore({ uuid, socket, log: log.sink, nonPersistent });
      return {
        store,
        description: `xapidb VM ${uuid} via ${socket}`,
        notifySecureBootFailure: () => store.notifySecureBootFailure(),
      };
    };
  },
};
