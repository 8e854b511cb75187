/**
 * The `xapidb` NVRAM store: the VM's non-volatile variables live in XAPI, in
 * `VM.NVRAM["EFI-variables"]` (base64 of a VARS v2 blob), reached through a Unix socket
 * (xapi-guard's per-VM socket in production). Calls and their order are those of the C varstored.
 */
import type { StoreState } from '@vmsb/efi';
import { decodeVarsBlob, encodeVarsBlob, type NvramStore } from '@vmsb/nvram';
import { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_XAPI_SOCKET, XapiClient, XapiError } from './client.js';
import { SendThrottle, systemClock, type Clock } from './throttle.js';
import { decodeBase64Strict } from './xmlrpc.js';

/** The NVRAM key holding the variables. */
export const EFI_VARIABLES_KEY = 'EFI-variables';

/** The alert raised when the guest reports a Secure Boot verification failure. */
export const SECURE_BOOT_FAILURE_MESSAGE = {
  name: 'VM_SECURE_BOOT_FAILED',
  priority: 5,
  cls: 'VM',
  body: 'The VM failed to pass Secure Boot verification.',
} as const;

export type XapiLogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface XapidbStoreOptions {
  /** The VM whose NVRAM this is (`--arg uuid:`). */
  readonly uuid: string;
  /** The socket (`--arg socket:`); varstored's default is /var/lib/xcp/xapi. */
  readonly socket?: string;
  readonly log?: (level: XapiLogLevel, message: string) => void;
  /** `--nonpersistent`: load from XAPI but never write back (every boot starts from the stored NVRAM). */
  readonly nonPersistent?: boolean;
  /** Time source for the write throttle; tests pass a controllable one. */
  readonly clock?: Clock;
  /** Per-call limit before the connection is abandoned and the call fails. */
  readonly timeoutMs?: number;
}

export interface XapidbStore extends NvramStore {
  readonly uuid: string;
  readonly socket: string;
  /**
   * message.create(session, "VM_SECURE_BOOT_FAILED", 5, "VM", <uuid>, "The VM failed to pass Secure
   * Boot verification."). Rejects when XAPI does not accept it. (Once per boot is the caller's rule.)
   */
  notifySecureBootFailure(): Promise<void>;
}

/**
 * Creates the store. `load()` reads NVRAM (login, VM.get_by_uuid, VM.get_NVRAM, logout) and
 * resolves to undefined when there is no `EFI-variables` key (first boot); `save(state)` writes
 * the NV-only blob (login, [VM.get_by_uuid], VM.set_NVRAM_EFI_variables, logout), throttled, and
 * rejects when any step fails so the caller can roll back. Operations run one at a time in call order.
 */
export function createXapidbStore(options: XapidbStoreOptions): XapidbStore {
  const uuid = options.uuid;
  const socket = options.socket ?? DEFAULT_XAPI_SOCKET;
  const log = options.log ?? (() => undefined);
  const client = new XapiClient({ socket, timeoutMs: options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS });
  const throttle = new SendThrottle(options.clock ?? systemClock);
  // The VM reference, cached for the life of the store as varstored does (it changes only when the
  // VM moves, and then a new daemon starts).
  let vmRef: string | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  const serialised = <T>(operation: () => Promise<T>): Promise<T> => {
    const result = queue.then(operation, operation);
    queue = result.catch(() => undefined);
    return result;
  };

  const logout = (session: string): Promise<void> =>
    client.logout(session).catch((error: unknown) => {
      log('warn', `${(error as Error).message} (ignored)`);
    });

  /**
   * login, body(session), logout. Once the body has succeeded its effect is in XAPI, so a failed
   * logout is only logged: failing then would make the caller roll back a change XAPI already
   * holds. (varstored fails the whole operation there.) A body that XAPI refused still logs out.
   */
  const inSession = async <T>(body: (session: string) => Promise<T>): Promise<T> => {
    const session = await client.login();
    let result: T;
    try {
      result = await body(session);
    } catch (error) {
      if (error instanceof XapiError && error.kind === 'failure') await logout(session);
      throw error;
    }
    await logout(session);
    return result;
  };

  const vm = async (session: string): Promise<string> => {
    if (vmRef === undefined) vmRef = await client.vmByUuid(session, uuid);
    return vmRef;
  };

  const load = (): Promise<StoreState | undefined> =>
    serialised(async () => {
      let encoded: string | undefined;
      try {
        encoded = await inSession(async (session) => {
          // get_by_uuid on every load: varstored does, and the reference it returns is cached.
          vmRef = await client.vmByUuid(session, uuid);
          const nvram = await client.getNvram(session, vmRef);
          return nvram.get(EFI_VARIABLES_KEY);
        });
      } catch (error) {
        throw new Error(`cannot read the NVRAM of VM ${uuid} from XAPI (${socket}): ${(error as Error).message}`, {
          cause: error,
        });
      }
      const source = `VM.NVRAM["${EFI_VARIABLES_KEY}"] of VM ${uuid}`;
      if (encoded === undefined) {
        log('info', `${source} is absent: first boot`);
        return undefined;
      }
      const bytes = decodeBase64Strict(encoded);
      if (!bytes) throw new Error(`${source} is not valid base64 (${encoded.length} characters)`);
      const decoded = decodeVarsBlob(bytes);
      if (!decoded.ok) throw new Error(`${source} is corrupt: ${decoded.error}`);
      log(
        'info',
        `loaded ${decoded.state.variables.length} variables (${bytes.length}-byte VARS v${decoded.version} blob) from XAPI`,
      );
      return decoded.state;
    });

  const save = (state: StoreState): Promise<void> =>
    serialised(async () => {
      if (options.nonPersistent) {
        log('debug', 'non-persistent: NVRAM change not written to XAPI');
        return;
      }
      let encoded: string;
      try {
        encoded = Buffer.from(encodeVarsBlob(state, { nonVolatileOnly: true })).toString('base64');
      } catch (error) {
        throw new Error(`cannot save the NVRAM of VM ${uuid}: ${(error as Error).message}`, { cause: error });
      }
      const waited = await throttle.acquire();
      if (waited > 0) log('debug', `XAPI write throttled: waited ${waited} ms for a credit`);
      try {
        await inSession(async (session) => client.setNvramEfiVariables(session, await vm(session), encoded));
      } catch (error) {
        throw new Error(`cannot save the NVRAM of VM ${uuid} to XAPI (${socket}): ${(error as Error).message}`, {
          cause: error,
        });
      }
    });

  const notifySecureBootFailure = (): Promise<void> =>
    serialised(async () => {
      const m = SECURE_BOOT_FAILURE_MESSAGE;
      try {
        await inSession((session) => client.createMessage(session, m.name, m.priority, m.cls, uuid, m.body));
      } catch (error) {
        throw new Error(`cannot raise ${m.name} for VM ${uuid} (${socket}): ${(error as Error).message}`, {
          cause: error,
        });
      }
    });

  return { uuid, socket, load, save, notifySecureBootFailure };
}
