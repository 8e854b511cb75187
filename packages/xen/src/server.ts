// The JS side of an ioreq server: a FIFO of the guest's requests, handed to the GuestHandler one at a
// time, each completed exactly once whatever the handler does.
import { EfiStatus, encodeStatus, Limits } from '@vmsb/protocol';
import { type NativeBinding, type NativeServer, RequestKind } from './native.js';
import type { GuestHandler, IoreqServer, Logger, LogLevel } from './types.js';

interface Job {
  readonly vcpu: number;
  /** Runs the handler and completes the request; never rejects. */
  readonly run: () => Promise<void> | void;
}

/**
 * Messages a guest can cause (bad frames, odd port accesses) are rate-limited so a guest cannot flood
 * the host's log: a burst, then a steady trickle, with a note of how many were dropped.
 */
export class GuestLogLimiter {
  private tokens: number;
  private last: number;
  private dropped = 0;

  constructor(
    private readonly burst = 20,
    private readonly perSecond = 1,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Returns the message to log (with a dropped count when some were), or undefined to drop it. */
  admit(message: string): string | undefined {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
    if (this.tokens < 1) {
      this.dropped++;
      return undefined;
    }
    this.tokens -= 1;
    if (this.dropped === 0) return message;
    const note = `${message} (${this.dropped} earlier guest-caused message(s) suppressed)`;
    this.dropped = 0;
    return note;
  }
}

const LEVELS: ReadonlySet<string> = new Set(['error', 'warn', 'info', 'debug']);

function deviceErrorResponse(): Uint8Array {
  const out = new Uint8Array(8);
  encodeStatus(EfiStatus.DEVICE_ERROR, out);
  return out;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class IoreqServerImpl implements IoreqServer {
  readonly vcpus: number;
  readonly id: number;
  readonly legacyMapping: boolean;
  private readonly native: NativeServer;
  private readonly queue: Job[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  private closing: Promise<void> | undefined;
  private readonly limiters = new Map<LogLevel, GuestLogLimiter>();

  constructor(
    binding: NativeBinding,
    readonly domid: number,
    private readonly handler: GuestHandler,
    private readonly logger: Logger,
    private readonly newLimiter: () => GuestLogLimiter = () => new GuestLogLimiter(),
  ) {
    this.native = new binding.Server(
      domid,
      (kind, vcpu, a, b, c) => this.onRequest(kind, vcpu, a, b, c),
      (level, message, guestCaused) => this.onNativeLog(level, message, guestCaused),
    );
    // process.exit() skips the binding's environment cleanup; release the domain's server anyway.
    process.on('exit', this.onExit);
    this.vcpus = this.native.vcpus;
    this.id = this.native.id;
    this.legacyMapping = this.native.legacyMapping;
    this.log(
      'info',
      `ioreq server ${this.id} for domain ${domid}: ${this.vcpus} vCPU(s), ports 0x100-0x10b, ` +
        `${this.legacyMapping ? 'page mapped through its guest frame (no resource mapping)' : 'page mapped as a resource'}`,
    );
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    // From a fresh turn of the event loop, never from inside a request callback.
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.native.pause();
    this.native.sweep();
    await this.idle();
    process.off('exit', this.onExit);
    for (const problem of this.native.close()) this.log('warn', `ioreq server teardown: ${problem}`);
    this.log('info', `ioreq server ${this.id} for domain ${this.domid} closed`);
  }

  private readonly onExit = (): void => {
    try {
      this.native.close(true);
    } catch {
      // Exiting anyway.
    }
  };

  private idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Called by the binding from the event-channel poll; must never throw. Returns a command's
   * response when it is answered at once (the binding then completes it), else undefined.
   */
  private onRequest(kind: number, vcpu: number, a: unknown, b: unknown, c: unknown): Uint8Array | undefined {
    try {
      // The common case: nothing queued or in flight, so the command is served here and its
      // response returned, without a job, a queue round or a second call into the binding.
      if (kind === RequestKind.Command && !this.running && this.queue.length === 0)
        return this.commandNow(vcpu, a as Uint8Array);
      switch (kind) {
        case RequestKind.Command:
          this.enqueue({ vcpu, run: () => this.runCommand(vcpu, a as Uint8Array) });
          break;
        case RequestKind.PpiRead:
          this.enqueue({ vcpu, run: () => this.runPpiRead(vcpu, a as number, b as number) });
          break;
        case RequestKind.PpiWrite:
          this.enqueue({ vcpu, run: () => this.runPpiWrite(vcpu, a as number, b as number, c as number) });
          break;
        default:
          this.log('error', `vCPU ${vcpu}: unknown request kind ${kind}`);
          this.complete(vcpu, undefined);
      }
    } catch (e) {
      this.log('error', `vCPU ${vcpu}: cannot queue a request: ${describe(e)}`);
    }
    return undefined;
  }

  /**
   * Serves a command with nothing else queued: returns its response when the handler answers
   * synchronously; otherwise the request becomes the running job and completes when it settles.
   */
  private commandNow(vcpu: number, request: Uint8Array): Uint8Array | undefined {
    const answer = this.answerCommand(vcpu, request);
    if (!(answer instanceof Promise)) return answer;
    this.runUntilSettled(answer.then((response) => this.complete(vcpu, response)));
    return undefined;
  }

  private enqueue(job: Job): void {
    this.queue.push(job);
    this.pump();
  }

  private pump(): void {
    // Synchronous jobs (PPI reads, commands answered without I/O) complete in this loop, before
    // this poll wake-up returns; an asynchronous one resumes the loop when it settles.
    while (!this.running) {
      const job = this.queue.shift();
      if (!job) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const resolve of waiters) resolve();
        return;
      }
      this.running = true;
      const pending = this.execute(job);
      this.running = false;
      if (pending !== undefined) {
        this.runUntilSettled(pending);
        return;
      }
    }
  }

  /** An asynchronous job is running: nothing else runs until it settles, then the queue resumes. */
  private runUntilSettled(pending: Promise<void>): void {
    this.running = true;
    void pending.then(() => {
      this.running = false;
      this.pump();
    });
  }

  private execute(job: Job): Promise<void> | undefined {
    const lastResort = (e: unknown): void => {
      // run() handles the handler's failures; this is a last resort so the vCPU is released.
      this.log('error', `vCPU ${job.vcpu}: request failed: ${describe(e)}`);
      this.complete(job.vcpu, undefined);
    };
    try {
      const outcome = job.run();
      return outcome instanceof Promise ? outcome.catch(lastResort) : undefined;
    } catch (e) {
      lastResort(e);
      return undefined;
    }
  }

  private runCommand(vcpu: number, request: Uint8Array): Promise<void> | void {
    const answer = this.answerCommand(vcpu, request);
    if (answer instanceof Promise) return answer.then((response) => this.complete(vcpu, response));
    this.complete(vcpu, answer);
  }

  /**
   * The handler's response to a command, at once or when it settles; EFI_DEVICE_ERROR when the
   * handler fails or answers something the guest's buffer cannot take. Never throws or rejects.
   */
  private answerCommand(vcpu: number, request: Uint8Array): Uint8Array | Promise<Uint8Array> {
    const failed = (e: unknown): Uint8Array => {
      this.log('error', `vCPU ${vcpu}: the handler failed (${describe(e)}); answering EFI_DEVICE_ERROR`);
      return deviceErrorResponse();
    };
    let result: unknown;
    try {
      result = this.handler.handleCommand(request);
    } catch (e) {
      return failed(e);
    }
    if (result instanceof Promise)
      return result.then((response: unknown) => this.validResponse(vcpu, response), failed);
    return this.validResponse(vcpu, result);
  }

  /** The handler's result if it is a response the guest's buffer can take, else EFI_DEVICE_ERROR. */
  private validResponse(vcpu: number, result: unknown): Uint8Array {
    if (result instanceof Uint8Array && result.length <= Limits.BUFFER_SIZE) return result;
    this.log('error', `vCPU ${vcpu}: the handler returned no valid response; answering EFI_DEVICE_ERROR`);
    return deviceErrorResponse();
  }

  private runPpiRead(vcpu: number, index: number, size: number): void {
    let value = 0;
    try {
      const result: unknown = this.handler.ppiRead(index, size);
      if (typeof result === 'number' && Number.isFinite(result)) value = result >>> 0;
      else this.log('error', `vCPU ${vcpu}: ppiRead returned ${typeof result}; the guest reads 0`);
    } catch (e) {
      this.log('error', `vCPU ${vcpu}: ppiRead failed (${describe(e)}); the guest reads 0`);
    }
    this.complete(vcpu, value);
  }

  private async runPpiWrite(vcpu: number, index: number, size: number, value: number): Promise<void> {
    try {
      await this.handler.ppiWrite(index, size, value);
    } catch (e) {
      this.log('error', `vCPU ${vcpu}: ppiWrite failed: ${describe(e)}`);
    }
    this.complete(vcpu, undefined);
  }

  private complete(vcpu: number, result: Uint8Array | number | undefined): void {
    try {
      if (!this.native.complete(vcpu, result)) this.log('warn', `vCPU ${vcpu}: answered after the server closed`);
    } catch (e) {
      this.log('error', `vCPU ${vcpu}: cannot complete the request: ${describe(e)}`);
    }
  }

  private onNativeLog(level: string, message: string, guestCaused: boolean): void {
    const lvl = (LEVELS.has(level) ? level : 'error') as LogLevel;
    if (!guestCaused) {
      this.log(lvl, message);
      return;
    }
    // One budget per level, so a flood of debug messages cannot hide a warning.
    let limiter = this.limiters.get(lvl);
    if (!limiter) {
      limiter = this.newLimiter();
      this.limiters.set(lvl, limiter);
    }
    const admitted = limiter.admit(message);
    if (admitted !== undefined) this.log(lvl, admitted);
  }

  private log(level: LogLevel, message: string): void {
    try {
      this.logger(level, message);
    } catch {
      // A failing logger must not break the request path.
    }
  }
}
