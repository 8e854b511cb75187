import type { GuestHandler, LogLevel } from '@vmsb/protocol';

export type { GuestHandler, LogLevel };

export type Logger = (level: LogLevel, message: string) => void;

export interface StartIoreqServerOptions {
  /** The HVM guest, 1..32751. */
  domid: number;
  handler: GuestHandler;
  log?: Logger;
}

/** A running ioreq server serving ports 0x100-0x10B of one domain. */
export interface IoreqServer {
  /** vCPUs of the domain, one event channel each. */
  readonly vcpus: number;
  /**
   * Stops taking requests, answers every request already raised (through the handler, in order),
   * then unclaims the ports and destroys the server. Idempotent.
   */
  close(): Promise<void>;
}

export interface DropPrivilegesOptions {
  /** Directory to chroot into (the working directory becomes its root). */
  chroot?: string;
  /** User to become; 0 or absent leaves it unchanged (as varstored's --uid 0). */
  uid?: number;
  /** Group to become, and the only supplementary group; 0 or absent leaves it unchanged. */
  gid?: number;
  /** varstored's --depriv: rlimits, PR_SET_NO_NEW_PRIVS and the seccomp filter (see `@vmsb/xen/host`). */
  depriv: boolean;
  /** RLIMIT_FSIZE under depriv, in bytes: the largest file the process writes. */
  fileSizeLimit?: number;
}

export type Availability = { ok: true } | { ok: false; reason: string };
