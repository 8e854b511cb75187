/**
 * The daemon's side of the Xen transport. @vmsb/xen (a native addon) is loaded only when it is
 * needed — `--transport xen`, or privilege dropping — so that the guest-simulation transport runs
 * on machines without Xen.
 */
import type { GuestHandler } from '@vmsb/protocol';
import type { Logger } from '../log.js';

export type XenModule = typeof import('@vmsb/xen');
export type IoreqServer = import('@vmsb/xen').IoreqServer;

export class XenUnavailable extends Error {}

/** Loads @vmsb/xen; rejects with XenUnavailable naming why it cannot be loaded. */
export async function importXen(): Promise<XenModule> {
  try {
    return await import('@vmsb/xen');
  } catch (e) {
    throw new XenUnavailable(`the Xen support package @vmsb/xen cannot be loaded (${(e as Error).message})`);
  }
}

/**
 * A GuestHandler that holds requests until the real one is attached: the ioreq server must be set
 * up while the daemon is still privileged, before the store (read inside the chroot) exists. The
 * guest does not run before readiness, so nothing normally waits here.
 */
export class DeferredHandler implements GuestHandler {
  private target: GuestHandler | undefined;
  private resolveTarget!: (handler: GuestHandler) => void;
  private readonly ready = new Promise<GuestHandler>((resolve) => {
    this.resolveTarget = resolve;
  });

  attach(handler: GuestHandler): void {
    this.target = handler;
    this.resolveTarget(handler);
  }

  handleCommand(request: Uint8Array): Uint8Array | Promise<Uint8Array> {
    return this.target ? this.target.handleCommand(request) : this.ready.then((h) => h.handleCommand(request));
  }

  ppiRead(index: number, size: number): number {
    // Before initialisation there is no PPI state to read: as an out-of-range index, 0.
    return this.target ? this.target.ppiRead(index, size) : 0;
  }

  ppiWrite(index: number, size: number, value: number): Promise<void> {
    return this.target
      ? this.target.ppiWrite(index, size, value)
      : this.ready.then((h) => h.ppiWrite(index, size, value));
  }
}

export interface XenTransport {
  readonly xen: XenModule;
  readonly server: IoreqServer;
  readonly handler: DeferredHandler;
  /** platform/<key> from xenstore, undefined when absent. */
  readPlatform(key: 'secureboot' | 'auth-enforce'): string | undefined;
  /** Readiness for xenopsd: /local/domain/<domid>/varstored-pid. */
  announceReady(): void;
  close(): Promise<void>;
}

/**
 * Opens the ioreq server for `domid` and serves it through a DeferredHandler. Throws XenUnavailable
 * when this machine cannot do Xen, with the reason @vmsb/xen gives.
 */
export async function startXenTransport(
  domid: number,
  log: Logger,
  load: () => Promise<XenModule> = importXen,
): Promise<XenTransport> {
  const xen = await load();
  const availability = xen.xenAvailability();
  if (!availability.ok) throw new XenUnavailable(availability.reason);
  const handler = new DeferredHandler();
  const server = await xen.startIoreqServer({ domid, handler, log: log.sink });
  log.info(`${server.vcpus} vCPU(s)`);
  return {
    xen,
    server,
    handler,
    readPlatform: (key) => xen.xenstoreRead(`/local/domain/${domid}/platform/${key}`),
    announceReady: () => xen.xenstoreWrite(`/local/domain/${domid}/varstored-pid`, String(process.pid)),
    close: () => server.close(),
  };
}
