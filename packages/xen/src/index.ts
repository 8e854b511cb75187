// @vmsb/xen: the Xen side of varstored. The binding is loaded on first use, so importing this module
// never fails on a host without Xen; xenAvailability() says what is missing.
import { createXenApi } from './api.js';
import { enterSandbox } from './host.js';
import { loadBinding } from './native.js';
import type { Availability, DropPrivilegesOptions, IoreqServer, StartIoreqServerOptions } from './types.js';

const api = createXenApi(() => loadBinding());

/** Whether an ioreq server can run here; otherwise what is missing (headers at build time, libraries, device nodes). */
export function xenAvailability(): Availability {
  return api.xenAvailability();
}

/** Registers an ioreq server for `domid`, claims ports 0x100-0x10B and serves them with `handler`. */
export function startIoreqServer(options: StartIoreqServerOptions): Promise<IoreqServer> {
  return api.startIoreqServer(options);
}

/** Reads a xenstore node; undefined when it does not exist. */
export function xenstoreRead(path: string): string | undefined {
  return api.xenstoreRead(path);
}

/** Writes a xenstore node. */
export function xenstoreWrite(path: string, value: string): void {
  api.xenstoreWrite(path, value);
}

/**
 * Chroot, drop groups, gid and uid, and prove root cannot be regained; under `depriv` also the rlimits,
 * no new privileges and the seccomp filter (varstored's --chroot/--gid/--uid/--depriv). The host
 * binding does it (`@vmsb/xen/host`), so it works without the Xen libraries.
 */
export function dropPrivileges(options: DropPrivilegesOptions): void {
  enterSandbox(options);
}

export type {
  Availability,
  DropPrivilegesOptions,
  GuestHandler,
  IoreqServer,
  Logger,
  LogLevel,
  StartIoreqServerOptions,
} from './types.js';
