// The public functions, over whichever binding a loader provides: the real one for the package's
// exports, the one linked against the fake hypervisor in tests.
import { type LoadResult, type NativeBinding, probeFailureReason } from './native.js';
import { IoreqServerImpl } from './server.js';
import type { Availability, GuestHandler, IoreqServer, StartIoreqServerOptions } from './types.js';

/** XENSTORE_ABS_PATH_MAX and XENSTORE_PAYLOAD_MAX from xen/io/xs_wire.h. */
const XENSTORE_PATH_MAX = 3072;
const XENSTORE_VALUE_MAX = 4096;
const DOMID_MAX = 0x7fef; // below DOMID_FIRST_RESERVED

export interface XenApi {
  xenAvailability(): Availability;
  startIoreqServer(options: StartIoreqServerOptions): Promise<IoreqServer>;
  xenstoreRead(path: string): string | undefined;
  xenstoreWrite(path: string, value: string): void;
}

/** An Error for "Xen is not usable here", carrying code ENOXEN. */
export function unavailable(reason: string): Error {
  return Object.assign(new Error(`Xen is unavailable: ${reason}`), { code: 'ENOXEN' });
}

export function createXenApi(load: () => LoadResult): XenApi {
  const binding = (): NativeBinding => {
    const loaded = load();
    if (!loaded.ok) throw unavailable(loaded.reason);
    return loaded.binding;
  };

  function xenAvailability(): Availability {
    const loaded = load();
    if (!loaded.ok) return { ok: false, reason: loaded.reason };
    const probe = loaded.binding.probe();
    return probe.ok ? { ok: true } : { ok: false, reason: probeFailureReason(probe) };
  }

  async function startIoreqServer(options: StartIoreqServerOptions): Promise<IoreqServer> {
    const { domid, handler } = options;
    if (!Number.isInteger(domid) || domid < 1 || domid > DOMID_MAX) {
      throw new RangeError(`domid must be an integer from 1 to ${DOMID_MAX}, got ${String(domid)}`);
    }
    checkHandler(handler);
    const native = binding();
    const log = options.log ?? (() => {});
    try {
      return new IoreqServerImpl(native, domid, handler, log);
    } catch (e) {
      throw explainStartFailure(native, e);
    }
  }

  function xenstoreRead(path: string): string | undefined {
    checkPath(path);
    return binding().xenstoreRead(path);
  }

  function xenstoreWrite(path: string, value: string): void {
    checkPath(path);
    if (typeof value !== 'string' || Buffer.byteLength(value, 'utf8') > XENSTORE_VALUE_MAX) {
      throw new TypeError(`a xenstore value is a string of at most ${XENSTORE_VALUE_MAX} bytes`);
    }
    binding().xenstoreWrite(path, value);
  }

  return { xenAvailability, startIoreqServer, xenstoreRead, xenstoreWrite };
}

function checkHandler(handler: GuestHandler): void {
  if (
    typeof handler !== 'object' ||
    handler === null ||
    typeof handler.handleCommand !== 'function' ||
    typeof handler.ppiRead !== 'function' ||
    typeof handler.ppiWrite !== 'function'
  ) {
    throw new TypeError('handler must implement handleCommand, ppiRead and ppiWrite');
  }
}

function checkPath(path: string): void {
  if (typeof path !== 'string' || path === '' || path.includes('\0') || path.length > XENSTORE_PATH_MAX) {
    throw new TypeError(`a xenstore path is a non-empty string of at most ${XENSTORE_PATH_MAX} characters without NUL`);
  }
}

/** A device node that is missing at open means "not a dom0": say so the way xenAvailability does. */
function explainStartFailure(native: NativeBinding, e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const { code, syscall } = e as Error & { code?: string; syscall?: string };
  if (code === 'ENOENT' && typeof syscall === 'string' && syscall.endsWith('_open')) {
    const probe = native.probe();
    if (!probe.ok) return Object.assign(unavailable(probeFailureReason(probe)), { errno: 2, syscall, cause: e });
  }
  return e;
}
