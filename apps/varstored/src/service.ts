/**
 * The daemon's GuestHandler: requests from any transport, one at a time, through the
 * VariableStore; a non-volatile change is made durable before the guest gets its answer, or rolled
 * back and answered EFI_DEVICE_ERROR. The store decodes each request once and returns, with its
 * answer, everything the service acts on and logs (docs/architecture.md §1).
 */
import {
  hasTimeBasedAttr,
  type DispatchOutcome,
  type PendingChange,
  type StoreState,
  type VariableStore,
} from '@vmsb/efi';
import { EfiStatus, encodeStatus, fromUtf16le, guidToText, statusName, type Request } from '@vmsb/protocol';
import type { GuestHandler } from '@vmsb/protocol';
import { guestCausedLog, type Logger } from './log.js';

export interface ServiceOptions {
  readonly store: VariableStore;
  /** Makes the NV state durable; absent with --nonpersistent (changes are kept in memory only). */
  readonly persist?: (state: StoreState) => Promise<void>;
  /** Raises the Secure Boot failure alert (xapidb); absent: the event is only logged. */
  readonly notifySecureBootFailure?: () => Promise<void>;
  /**
   * Loads the authenticator (apps/varstored/src/authenticator.ts), which is not loaded at start. Called
   * once, when the first TIME_BASED SetVariable has been refused (the verifier was missing, which
   * changes nothing); that write is then dispatched again. If loading failed, the authenticator itself
   * refuses every authenticated write.
   */
  readonly prepareAuthenticatedWrite?: () => Promise<void>;
  readonly log: Logger;
  /**
   * Work for when the guest has gone quiet (giving memory back): `run` is called once `afterMs` have
   * passed with no request (between afterMs and twice afterMs after the last one) and nothing in
   * flight, once per quiet period, and only if the guest made at least `afterRequests` requests since
   * the last run (so that a guest calling now and then does not pay a run each time); a guest that
   * keeps calling never triggers it. Never on the request path: it runs from a timer that does not
   * keep the process alive.
   */
  readonly whenIdle?: { readonly afterMs: number; readonly afterRequests: number; readonly run: () => void };
}

/** Statuses that are the normal flow of the protocol rather than failures worth a warning. */
function isRoutine(command: string | undefined, status: bigint): boolean {
  if (status === EfiStatus.BUFFER_TOO_SMALL) return command === 'GetVariable' || command === 'GetNextVariableName';
  // Probing for a variable, reaching the end of the enumeration, deleting what is not there.
  return (
    status === EfiStatus.NOT_FOUND &&
    (command === 'GetVariable' || command === 'GetNextVariableName' || command === 'SetVariable')
  );
}

function statusBytes(status: bigint): Uint8Array {
  const out = new Uint8Array(8);
  encodeStatus(status, out);
  return out;
}

/** A guest-supplied name fit for one log line: printable, bounded. */
function printableName(name: Uint8Array): string {
  const text = fromUtf16le(name.subarray(0, 128)).replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(name.length > 128 ? `${text}…` : text);
}

export class VariableService implements GuestHandler {
  private tail: Promise<unknown> = Promise.resolve();
  /** Requests and PPI writes accepted whose asynchronous part (persisting, alerting) is not over. */
  private inFlight = 0;
  /** prepareAuthenticatedWrite has run: a refused authenticated write is final. */
  private authenticatorPrepared = false;
  private readonly options: ServiceOptions;
  private readonly guestLog: (level: 'warn' | 'debug', message: string) => void;
  /** A request arrived since the idle timer was last armed or checked. */
  private active = false;
  /** Requests since whenIdle last ran (or since start), counted while the idle timer is not armed. */
  private requestsSinceIdleRun = 0;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** options.whenIdle until the daemon stops watching for idleness. */
  private whenIdle: ServiceOptions['whenIdle'];

  constructor(options: ServiceOptions) {
    this.options = options;
    this.whenIdle = options.whenIdle;
    this.guestLog = guestCausedLog(options.log);
  }

  /**
   * Stops watching for idleness (the daemon is stopping): for good, so that a request still served
   * while the transports close does not arm the timer again.
   */
  stopIdleWatch(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.active = false;
    this.whenIdle = undefined;
  }

  /**
   * Notes guest activity: while the timer is armed, a flag write per request and nothing else (an
   * armed timer always ends in a run, which resets the count, so requests are counted only while
   * none is armed).
   */
  private touch(): void {
    this.active = true;
    if (this.idleTimer !== undefined) return;
    const idle = this.whenIdle;
    if (idle !== undefined && ++this.requestsSinceIdleRun >= idle.afterRequests) this.armIdleTimer(idle.afterMs);
  }

  private armIdleTimer(afterMs: number): void {
    this.idleTimer = setTimeout(() => this.idleTimerFired(), afterMs);
    this.idleTimer.unref();
  }

  private idleTimerFired(): void {
    const idle = this.whenIdle;
    this.idleTimer = undefined;
    if (idle === undefined) return;
    if (this.active || this.inFlight > 0) {
      // The guest was busy in the last period: look again one period later.
      this.active = false;
      this.armIdleTimer(idle.afterMs);
      return;
    }
    this.requestsSinceIdleRun = 0;
    try {
      idle.run();
    } catch (e) {
      this.options.log.error(`internal error in idle work: ${(e as Error).message}`);
    }
  }

  /**
   * Answers synchronously when nothing is in flight and the request needs no I/O (reads, volatile
   * writes, failures): most of a boot. Anything that must wait is serialised behind earlier work.
   */
  handleCommand(request: Uint8Array): Uint8Array | Promise<Uint8Array> {
    this.touch();
    return this.serialised(() => this.commandOrDeviceError(request));
  }

  ppiRead(index: number, size: number): number {
    this.touch();
    try {
      // The save file carries the PPI index register, which the transport keeps to itself; the
      // address last accessed (register plus port offset, 0 for OVMF's accesses) stands in for it.
      this.options.store.ppiIndex = index;
      return this.options.store.ppiRead(index, size);
    } catch (e) {
      this.options.log.error(`internal error in a PPI read: ${(e as Error).message}`);
      return 0;
    }
  }

  ppiWrite(index: number, size: number, value: number): Promise<void> {
    this.touch();
    const done = this.serialised((): void | Promise<void> => {
      const failed = (e: unknown): void =>
        this.options.log.error(`internal error in a PPI write: ${(e as Error).message}`);
      try {
        this.options.store.ppiIndex = index;
        const outcome = this.options.store.ppiWrite(index, size, value);
        if (outcome.pending)
          return this.settle(outcome.pending, () => `PPI write at 0x${index.toString(16)}`).then(
            () => undefined,
            failed,
          );
      } catch (e) {
        failed(e);
      }
    });
    return Promise.resolve(done);
  }

  /** Resolves once every request accepted so far has been answered. */
  async drain(): Promise<void> {
    for (;;) {
      const tail = this.tail;
      await tail;
      if (tail === this.tail) return;
    }
  }

  /** Runs `work` now if nothing is in flight, else after everything accepted before it. */
  private serialised<T>(work: () => T | Promise<T>): T | Promise<T> {
    if (this.inFlight === 0) {
      const result = work();
      return result instanceof Promise ? this.hold(result) : result;
    }
    return this.hold(this.tail.then(work));
  }

  private hold<T>(work: Promise<T>): Promise<T> {
    this.inFlight++;
    this.tail = work.then(
      () => void this.inFlight--,
      () => void this.inFlight--,
    );
    return work;
  }

  private commandOrDeviceError(request: Uint8Array): Uint8Array | Promise<Uint8Array> {
    // Nothing a guest sends may escape as an exception; answer as a failed device would.
    const failed = (e: unknown): Uint8Array => {
      this.options.log.error(`internal error while handling a request: ${(e as Error).stack ?? String(e)}`);
      return statusBytes(EfiStatus.DEVICE_ERROR);
    };
    try {
      const response = this.command(request);
      return response instanceof Promise ? response.catch(failed) : response;
    } catch (e) {
      return failed(e);
    }
  }

  /** Persists a pending change, then commits it; on failure rolls it back and returns rollback()'s value. */
  private async settle<R>(
    pending: PendingChange<R>,
    what: () => string,
  ): Promise<{ ok: true } | { ok: false; rolledBack: R }> {
    const { persist, log } = this.options;
    if (persist === undefined) {
      pending.commit();
      return { ok: true };
    }
    try {
      await persist(pending.state);
    } catch (e) {
      log.error(
        `${what()}: the NVRAM could not be saved (${(e as Error).message}); change rolled back, answering DEVICE_ERROR`,
      );
      return { ok: false, rolledBack: pending.rollback() };
    }
    pending.commit();
    return { ok: true };
  }

  private command(request: Uint8Array): Uint8Array | Promise<Uint8Array> {
    const outcome = this.options.store.dispatch(request);
    if (outcome.raiseSecureBootFailureAlert === true) return this.raiseSecureBootFailureAlert(outcome);
    const prepare = this.options.prepareAuthenticatedWrite;
    if (
      !this.authenticatorPrepared &&
      prepare !== undefined &&
      outcome.status !== EfiStatus.SUCCESS &&
      outcome.request?.command === 'SetVariable' &&
      hasTimeBasedAttr(outcome.request.attributes)
    ) {
      // Refused before anything changed: load the verifier, then dispatch the write again (once per daemon).
      return prepare().then(() => {
        this.authenticatorPrepared = true;
        return this.answer(this.options.store.dispatch(request));
      });
    }
    return this.answer(outcome);
  }

  /** The response to send for `outcome`, once its change (if any) is durable. */
  private answer(outcome: DispatchOutcome): Uint8Array | Promise<Uint8Array> {
    if (outcome.pending === undefined) {
      this.logOutcome(outcome, outcome.status, outcome.reason);
      return outcome.response;
    }
    return this.settle(outcome.pending, () => describeRequest(outcome.request)).then((settled) => {
      if (settled.ok) {
        this.logOutcome(outcome, outcome.status, outcome.reason);
        return outcome.response;
      }
      this.logOutcome(outcome, EfiStatus.DEVICE_ERROR, 'the NVRAM could not be saved');
      return settled.rolledBack;
    });
  }

  private logOutcome(outcome: DispatchOutcome, status: bigint, reason: string | undefined): void {
    const level = status === EfiStatus.SUCCESS || isRoutine(outcome.command, status) ? 'debug' : 'warn';
    if (!this.options.log.enabled(level)) return;
    this.guestLog(
      level,
      `${describeRequest(outcome.request)}: ${statusName(status)}${level === 'warn' && reason ? ` (${reason})` : ''}`,
    );
  }

  /** The store's decision to alert (the first NotifySBFailure), carried out; answered once it is. */
  private async raiseSecureBootFailureAlert(outcome: DispatchOutcome): Promise<Uint8Array> {
    const { log, notifySecureBootFailure } = this.options;
    log.warn('NotifySBFailure: the guest failed to pass Secure Boot verification');
    if (notifySecureBootFailure === undefined) return outcome.response;
    try {
      await notifySecureBootFailure();
      log.info('NotifySBFailure: VM_SECURE_BOOT_FAILED raised');
      return outcome.response;
    } catch (e) {
      log.error(`NotifySBFailure: the alert could not be raised: ${(e as Error).message}; DEVICE_ERROR`);
      return statusBytes(EfiStatus.DEVICE_ERROR);
    }
  }
}

/** "SetVariable "Boot0001" 8be4df61-…" for logs, from the request the store decoded. */
export function describeRequest(r: Request | undefined): string {
  // The store's reason says what is wrong with it.
  if (r === undefined) return 'undecodable request';
  switch (r.command) {
    case 'GetVariable':
    case 'SetVariable':
      return `${r.command} ${printableName(r.name)} ${guidToText(r.guid)}${r.command === 'SetVariable' ? ` attributes 0x${r.attributes.toString(16)}` : ''}`;
    case 'GetNextVariableName':
      return r.name.length === 0
        ? 'GetNextVariableName (first)'
        : `GetNextVariableName after ${printableName(r.name)} ${guidToText(r.guid)}`;
    case 'QueryVariableInfo':
      return `QueryVariableInfo attributes 0x${r.attributes.toString(16)}`;
    case 'NotifySBFailure':
      return 'NotifySBFailure';
  }
}
