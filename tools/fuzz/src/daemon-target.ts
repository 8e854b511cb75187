/**
 * The daemon target: the built varstored over its guest-simulation socket, with an in-process
 * shadow store fed the same frames. Every reply must be byte-identical to the shadow's (the daemon
 * is the store plus a transport and persistence, so any difference is a bug in one of those), the
 * framing abuse must only cost the offending connection, the daemon must stay up, and what it
 * persisted must be what the shadow holds.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { createAuthenticator } from '@vmsb/auth';
import { Guids, VariableStore, type PlatformSettings } from '@vmsb/efi';
import { GuestConnection } from '@vmsb/guest-sim';
import { decodeVarsBlob, encodeVarsBlob } from '@vmsb/nvram';
import { encodeRequest, encodedRequestSize, statusName, utf16le } from '@vmsb/protocol';
import type { Corpus } from './corpus.js';
import { DaemonProcess } from './daemon.js';
import { FUZZ_PLATFORM, zeroFilled } from './dispatch-target.js';
import type { FuzzInput, VariableRef } from './generate.js';
import { checkReply, sameState, type Violation } from './invariants.js';

const SECURE_BOOT = utf16le('SecureBoot');

function hex(bytes: Uint8Array, max = 48): string {
  const h = Buffer.from(bytes.subarray(0, max)).toString('hex');
  return bytes.length > max ? `${h}… (${bytes.length} bytes)` : h;
}

function status(reply: Uint8Array): string {
  return reply.length >= 8
    ? statusName(new DataView(reply.buffer, reply.byteOffset, 8).getBigUint64(0, true))
    : `${reply.length} bytes`;
}

export class DaemonTarget {
  private daemon: DaemonProcess | undefined;
  private connection: GuestConnection | undefined;
  private shadow!: VariableStore;
  private known: VariableRef[] | undefined;
  /** The EFI status of the last reply (statistics). */
  lastStatus: bigint | undefined;
  private readonly seedBlob: Uint8Array;

  private constructor(
    corpus: Corpus,
    private readonly dir: string,
    private readonly platform: PlatformSettings,
    /** The daemon's own platform settings when they must differ from the shadow's (to check the checker). */
    private readonly daemonPlatform: PlatformSettings,
  ) {
    // The state as a file store would hold it: builtins computed once, as a daemon would have saved them.
    const initial = VariableStore.restore(corpus.state, { platform, resume: false });
    this.seedBlob = encodeVarsBlob(initial.state(), { nonVolatileOnly: true });
  }

  static async start(
    corpus: Corpus,
    dir: string,
    platform: PlatformSettings = FUZZ_PLATFORM,
    daemonPlatform: PlatformSettings = platform,
  ): Promise<DaemonTarget> {
    const target = new DaemonTarget(corpus, dir, platform, daemonPlatform);
    await mkdir(dir, { recursive: true });
    await target.boot();
    return target;
  }

  get pid(): number {
    return this.daemon?.pid ?? -1;
  }

  /** The variables held now (cached until the next exchange). */
  names(): VariableRef[] {
    this.known ??= this.shadow.variables().map((v) => ({ name: v.name, guid: v.guid }));
    return this.known;
  }

  private async boot(): Promise<void> {
    await writeFile(join(this.dir, 'nvram.vars'), this.seedBlob);
    const decoded = decodeVarsBlob(this.seedBlob);
    if (!decoded.ok) throw new Error(`seed blob: ${decoded.error}`);
    this.known = undefined;
    this.shadow = VariableStore.restore(decoded.state, {
      platform: this.platform,
      authenticator: createAuthenticator(),
      resume: false,
    });
    this.daemon = await DaemonProcess.start({
      dir: this.dir,
      secureBoot: this.daemonPlatform.secureBoot,
      authEnforce: this.daemonPlatform.authEnforce,
    });
    this.connection = await GuestConnection.connect(this.daemon.socketPath);
  }

  private daemonDown(): Violation[] {
    const d = this.daemon;
    if (d === undefined || d.running) return [];
    return [{ invariant: 'daemon-down', detail: `varstored exited:\n${d.stderr.slice(-4000)}` }];
  }

  private async reconnect(): Promise<void> {
    await this.connection?.close().catch(() => undefined);
    this.connection = await GuestConnection.connect(this.daemon!.socketPath);
  }

  /** A request and the shadow's answer to it; a violation if they differ. */
  private async exchangeChecked(frame: Uint8Array, what: string): Promise<Violation[]> {
    const buffer = zeroFilled(frame);
    const expected = this.settledShadowReply(buffer);
    let reply: Uint8Array;
    try {
      reply = await this.connection!.exchange(frame);
    } catch (e) {
      return [...this.daemonDown(), { invariant: 'daemon-connection', detail: `${what}: ${(e as Error).message}` }];
    }
    this.lastStatus =
      reply.length >= 8 ? new DataView(reply.buffer, reply.byteOffset, 8).getBigUint64(0, true) : undefined;
    const violations = checkReply(buffer, reply).violations;
    if (Buffer.compare(reply, expected) !== 0) {
      violations.push({
        invariant: 'daemon-differs',
        detail: `${what}: the daemon answered ${status(reply)} ${hex(reply)}, the store ${status(expected)} ${hex(expected)}`,
      });
    }
    return violations;
  }

  /** What the store answers, with any change committed (the daemon's save succeeds in a writable directory). */
  private settledShadowReply(buffer: Uint8Array): Uint8Array {
    this.known = undefined;
    const outcome = this.shadow.dispatch(buffer);
    outcome.pending?.commit();
    return outcome.response;
  }

  /** The daemon still answers, as the store would. */
  private async probe(): Promise<Violation[]> {
    const request = {
      command: 'GetVariable' as const,
      name: SECURE_BOOT,
      guid: Guids.GLOBAL_VARIABLE,
      dataSize: 1,
      atRuntime: false,
    };
    const frame = new Uint8Array(encodedRequestSize(request));
    encodeRequest(request, frame);
    return this.exchangeChecked(frame, 'probe after a dropped connection');
  }

  async step(input: FuzzInput): Promise<Violation[]> {
    this.lastStatus = undefined;
    if (input.transport === 'oversize') {
      // A frame longer than the buffer closes the connection, and only it.
      let answered = false;
      try {
        await this.connection!.exchange(input.frame, input.frame.length);
        answered = true;
      } catch {
        // Expected: the daemon closed this connection.
      }
      await this.reconnect().catch(() => undefined);
      const violations = answered
        ? [{ invariant: 'daemon-framing', detail: `a ${input.frame.length}-byte frame was answered` }]
        : [];
      return [...violations, ...this.daemonDown(), ...(this.daemon?.running ? await this.probe() : [])];
    }
    if (input.transport === 'truncated') {
      // Another guest connection that ends mid-frame: the daemon drops it and serves the next one.
      await this.connection?.close().catch(() => undefined);
      await sendTruncated(this.daemon!.socketPath, input.frame);
      await this.reconnect().catch(() => undefined);
      return [...this.daemonDown(), ...(this.daemon?.running ? await this.probe() : [])];
    }
    const violations = await this.exchangeChecked(input.frame, input.kind);
    return [...violations, ...this.daemonDown()];
  }

  /**
   * Stops the daemon (SIGTERM: exit 0 expected) and checks what it left: the NVRAM file loads and
   * holds the shadow's non-volatile variables; no internal error was logged. Then, unless `final`,
   * starts afresh from the seed.
   */
  async restart(final = false): Promise<Violation[]> {
    const violations: Violation[] = [];
    await this.connection?.close().catch(() => undefined);
    this.connection = undefined;
    const daemon = this.daemon!;
    const exit = await daemon.stop();
    if (exit.code !== 0)
      violations.push({
        invariant: 'daemon-exit',
        detail: `SIGTERM: exit ${exit.code ?? exit.signal}\n${daemon.stderr.slice(-4000)}`,
      });
    if (/internal error/.test(daemon.stderr))
      violations.push({
        invariant: 'daemon-internal-error',
        detail: daemon.stderr
          .split('\n')
          .filter((l) => l.includes('internal error'))
          .slice(0, 5)
          .join('\n'),
      });
    const file = await readFile(join(this.dir, 'nvram.vars'));
    const decoded = decodeVarsBlob(new Uint8Array(file));
    if (!decoded.ok) {
      violations.push({ invariant: 'daemon-persisted', detail: `the NVRAM file does not load: ${decoded.error}` });
    } else {
      // MOR is reset every boot, so its writes are not saved on their own.
      const differs = sameState(decoded.state, this.shadow.state(), { nonVolatileOnly: true, ignoreMor: true });
      if (differs !== undefined)
        violations.push({
          invariant: 'daemon-persisted',
          detail: `the NVRAM file is not what was acknowledged: ${differs}`,
        });
    }
    if (!final) await this.boot();
    return violations;
  }

  async close(): Promise<Violation[]> {
    const violations = await this.restart(true);
    await rm(join(this.dir, 'nvram.vars'), { force: true });
    return violations;
  }

  /** Kills the daemon and starts afresh from the seed, without checks (after a failure). */
  async reboot(): Promise<void> {
    await this.abort();
    await this.boot();
  }

  /** Kills the daemon without checks (after a failure). */
  async abort(): Promise<void> {
    await this.connection?.close().catch(() => undefined);
    await this.daemon?.kill();
  }
}

/** Sends `u32 n` and fewer than n bytes on a fresh connection, ends it, waits until the daemon closes it. */
async function sendTruncated(path: string, frame: Uint8Array): Promise<void> {
  await new Promise<void>((resolve) => {
    const socket = createConnection(path);
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.on('connect', () => {
      const header = Buffer.alloc(4);
      header.writeUInt32LE(frame.length + 1, 0);
      socket.end(Buffer.concat([header, frame]));
    });
    socket.resume();
  });
}
