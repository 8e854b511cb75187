/**
 * varstored: serves one guest's UEFI variables. Start-up order (as the C daemon, with readiness
 * last): check the pidfile and prepare it (locked, beside it); read the auth files and open the Xen side (or the guest-simulation
 * socket) while still privileged; read the platform settings; lock the file store; enter the
 * sandbox (chroot, ids, and under --depriv rlimits and the seccomp filter; the namespaces were
 * entered by the launcher before Node started); load the NVRAM (or the resume file); set up builtins
 * and, on first boot, the keys; start serving; announce readiness (the pidfile appears by a rename,
 * xenstore varstored-pid).
 * SIGTERM/SIGINT/SIGHUP: finish the request in flight, write the save file, exit 0.
 */
import { readlinkSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { VariableStore, type PlatformSettings, type StoreOptions, type StoreState } from '@vmsb/efi';
import { readSaveFile, writeSaveFile } from '@vmsb/nvram';
import { type DaemonConfig, parseArgs, usageText } from './args.js';
import { LazyAuthenticator } from './authenticator.js';
import { type Backend, BACKENDS } from './backends.js';
import { createLogger, type Logger } from './log.js';
import { lockPidfile, type PidfileLock } from './pidfile.js';
import { applyAuthFiles, type AuthFile, readAuthFiles } from './provision.js';
import type { GuestHandler } from '@vmsb/protocol';
import { VariableService } from './service.js';
import { startUnixTransport, type UnixTransport } from './transports/unix.js';
import { startXenTransport, XenUnavailable, type XenTransport } from './transports/xen-glue.js';

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
type StopSignal = (typeof SIGNALS)[number];

/** Set by the daemon's build (tsup.config.ts) when the verifier is inside the bundle. */
declare const __VMSB_AUTH_BUNDLED__: boolean | undefined;
const AUTH_BUNDLED = typeof __VMSB_AUTH_BUNDLED__ !== 'undefined' && __VMSB_AUTH_BUNDLED__;

/** A start-up failure: logged as one line, exit status 1. */
class StartupError extends Error {}

export interface Streams {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

/** Runs the daemon; resolves to the exit status. */
export async function main(argv: readonly string[], streams: Streams = process): Promise<number> {
  const parsed = parseArgs(argv);
  if (parsed.kind === 'help') {
    streams.stdout.write(usageText());
    return 0;
  }
  if (parsed.kind === 'usage-error') {
    streams.stderr.write(`varstored: ${parsed.message} (see --help)\n`);
    return 2;
  }
  const config = parsed.config;
  const log = createLogger(config.logLevel, streams);
  const daemon = new Daemon(config, log, streams);
  return daemon.run();
}

/**
 * RLIMIT_FSIZE under --depriv, as the C daemon's: 256 KiB. The largest file the daemon writes is a VARS
 * blob (the NVRAM file, the save file, their temporaries): its header and ancillary data plus, per
 * variable, 84 bytes besides name and data, where the store's quota counts 128, so a store within its
 * 131072-byte quota encodes to at most 131364 bytes; the rest is room for a store loaded over quota.
 * The pidfile is a few bytes.
 */
export const DEPRIV_FILE_SIZE_LIMIT = 256 * 1024;

/**
 * How long the guest must have been quiet (no request) before the daemon gives memory back: its V8
 * heap collected and compacted, glibc's free memory trimmed (BENCHMARKS.md, footprint). A boot
 * calls in bursts; when a pause between its phases is longer, the trim costs its CPU once more.
 */
export const IDLE_TRIM_MS = 1000;
/**
 * Requests the guest must have made since the last trim for a quiet period to trim again: a trim
 * costs 10-40 ms of CPU (BENCHMARKS.md), a boot makes thousands of requests, and a running guest
 * that calls now and then pays at most that cost once per this many calls.
 */
export const IDLE_TRIM_REQUESTS = 64;

/** A handler that holds requests until the service exists (the socket is opened before the drop). */
class PendingHandler {
  private service: GuestHandler['handleCommand'] | undefined;
  private readonly waiting: (() => void)[] = [];
  private failed = false;

  attach(service: VariableService): void {
    this.service = (request) => service.handleCommand(request);
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** Start-up failed: whatever waits is answered with nothing, so the transport can close. */
  fail(): void {
    this.failed = true;
    for (const wake of this.waiting.splice(0)) wake();
  }

  handleCommand(request: Uint8Array): Uint8Array | Promise<Uint8Array> {
    if (this.service !== undefined) return this.service(request);
    if (this.failed) return new Uint8Array(0);
    return new Promise<void>((wake) => this.waiting.push(wake)).then(() =>
      this.service !== undefined ? this.service(request) : new Uint8Array(0),
    );
  }
}

class Daemon {
  private pidfile: PidfileLock | undefined;
  private backend: Backend | undefined;
  private readonly pending = new PendingHandler();
  private unix: UnixTransport | undefined;
  private xen: XenTransport | undefined;
  private stopSignal: ((signal: StopSignal) => void) | undefined;
  private stopRequested: Promise<StopSignal> | undefined;
  /** The host binding's module, once loaded (by the drop, or after readiness): it trims memory when idle. */
  private host: typeof import('@vmsb/xen/host') | undefined;
  private trimFailed = false;
  private readonly earlySignal = (signal: StopSignal): void => {
    if (this.stopSignal !== undefined) {
      this.stopSignal(signal);
      return;
    }
    // Nothing is served yet, so there is nothing to finish or save (the C daemon _exit(0)s here).
    this.log.info(`${signal} received during start-up; exiting`);
    this.pidfile?.release();
    process.exit(0);
  };

  constructor(
    private readonly config: DaemonConfig,
    private readonly log: Logger,
    private readonly streams: Streams,
  ) {}

  async run(): Promise<number> {
    for (const s of SIGNALS) process.on(s, this.earlySignal);
    try {
      const { store, service } = await this.start();
      return await this.serveUntilStopped(store, service);
    } catch (e) {
      if (e instanceof XenUnavailable && this.config.transport.kind === 'xen') {
        this.streams.stderr.write(
          `varstored: the Xen transport is unavailable: ${e.message}; use --transport unix:<path> to run without Xen\n`,
        );
      } else if (e instanceof StartupError || e instanceof XenUnavailable) {
        this.log.error(e.message);
      } else {
        this.log.error(`start-up failed: ${(e as Error).stack ?? String(e)}`);
      }
      await this.teardown();
      return 1;
    } finally {
      for (const s of SIGNALS) process.off(s, this.earlySignal);
    }
  }

  private async start(): Promise<{ store: VariableStore; service: VariableService }> {
    const { config, log } = this;
    const transport = config.transport.kind === 'unix' ? `unix:${config.transport.path}` : 'xen';
    log.info(
      `varstored for domain ${config.domid}: transport ${transport}, backend ${config.backend}` +
        `${config.resume ? ', resuming' : ''}${config.nonPersistent ? ', non-persistent' : ''}`,
    );

    if (config.pidfile !== undefined) {
      const pidfile = await guard(lockPidfile(config.pidfile, { uid: config.uid, gid: config.gid }));
      this.pidfile = pidfile;
      if (!pidfile.publishableAfterDrop) {
        const ids = `uid ${config.uid || process.geteuid?.()} gid ${config.gid || process.getegid?.()}`;
        if (config.transport.kind === 'unix') {
          // The pidfile is the readiness signal of this transport: it cannot appear early.
          throw new StartupError(
            `--pidfile ${config.pidfile}: its directory is not writable by ${ids}, which the daemon runs as after the drop, so the pidfile could not appear at readiness; put it in a directory they may write (a sticky one such as /tmp works)`,
          );
        }
        // Under Xen readiness is xenstore's varstored-pid; the pidfile appears at start, as the C daemon's.
        await guard(Promise.resolve().then(() => pidfile.publish()));
        log.info(
          `Pidfile ${config.pidfile} published at start: its directory is not writable by ${ids} after the drop`,
        );
      }
    }
    if (config.depriv) checkNamespaces();

    // Files that need the daemon's initial privileges are read before they are dropped.
    const authFiles = config.resume ? [] : await guard(readAuthFiles(config.authDir));

    const dropping = config.chroot !== undefined || config.uid !== 0 || config.gid !== 0 || config.depriv;
    if (config.transport.kind === 'xen') {
      this.xen = await guard(startXenTransport(config.domid, log));
    } else if (dropping) {
      // A host path, so opened before the drop like the Xen handles (inside a chroot it would be out
      // of reach); requests wait for the service. Without a drop it appears only once ready.
      this.unix = await guard(startUnixTransport({ path: config.transport.path, handler: this.pending, log }));
    }
    const platform = this.platformSettings();
    log.info(`Secure boot enable: ${platform.secureBoot}`);
    log.info(`Authenticated variables: ${platform.authEnforce ? 'enforcing' : 'permissive'}`);

    const createBackend = await guard(
      BACKENDS[config.backend](config.backendArgs, config.chroot !== undefined ? { root: config.chroot } : {}),
    );
    const authenticator = new LazyAuthenticator(log);
    if (config.chroot !== undefined && !AUTH_BUNDLED) {
      // Inside the chroot no module file can be read any more: load the verifier now, unless it is
      // part of the daemon's bundle (then it is evaluated on first use, even inside the chroot).
      await authenticator
        .load()
        .catch((e: Error) => log.error(`authenticated variables: ${e.message}; authenticated writes will be refused`));
    }
    await this.dropPrivileges();

    const backend = await guard(createBackend(config.backendArgs, { log, nonPersistent: config.nonPersistent }));
    this.backend = backend;
    log.info(`NVRAM: ${backend.description}`);
    const persist = config.nonPersistent ? undefined : (state: StoreState) => backend.store.save(state);

    const options: StoreOptions = { platform, authenticator, log: log.sink };
    const store = await this.loadStore(backend, options, authFiles, authenticator, persist);
    this.logSecureBootState(store);

    const service = new VariableService({
      store,
      log,
      ...(persist ? { persist } : {}),
      ...(backend.notifySecureBootFailure ? { notifySecureBootFailure: backend.notifySecureBootFailure } : {}),
      whenIdle: { afterMs: IDLE_TRIM_MS, afterRequests: IDLE_TRIM_REQUESTS, run: () => this.trimMemory() },
      prepareAuthenticatedWrite: async () => {
        if (authenticator.loaded) return;
        try {
          await authenticator.load();
        } catch (e) {
          log.error(`authenticated variables: ${(e as Error).message}; authenticated writes are refused`);
        }
      },
    });

    if (config.transport.kind === 'unix') {
      if (this.unix !== undefined) this.pending.attach(service);
      else this.unix = await guard(startUnixTransport({ path: config.transport.path, handler: service, log }));
    } else {
      this.xen!.handler.attach(service);
    }
    // Serving: from now on a signal means a clean stop (finish, save), even one that arrives
    // while readiness is being announced.
    this.stopRequested = new Promise<StopSignal>((resolve) => {
      this.stopSignal = resolve;
    });
    const pidfile = this.pidfile;
    if (pidfile !== undefined) await guard(Promise.resolve().then(() => pidfile.publish()));
    this.xen?.announceReady();
    log.info(`Ready: serving domain ${config.domid} (pid ${process.pid})`);
    if (this.host === undefined) {
      // Without a drop nothing loaded it; after readiness, so that start-up does not wait for it.
      import('@vmsb/xen/host').then(
        (host) => {
          this.host = host;
        },
        (e: Error) => log.debug(`memory is not trimmed when idle: the host binding cannot be loaded: ${e.message}`),
      );
    }
    return { store, service };
  }

  /** The guest has gone quiet: give the memory the boot left behind back to the host. */
  private trimMemory(): void {
    const host = this.host;
    if (host === undefined || this.trimFailed) return;
    // The global performance, not node:perf_hooks: the start-up snapshot cannot hold that module.
    const started = performance.now();
    let trim: ReturnType<typeof host.trimMemory>;
    try {
      trim = host.trimMemory();
    } catch (e) {
      this.trimFailed = true;
      this.log.debug(`memory is not trimmed when idle: ${(e as Error).message}`);
      return;
    }
    if (this.log.enabled('debug')) {
      const mib = (n: number): string => (n / 1048576).toFixed(1);
      this.log.debug(
        `Idle: memory returned in ${(performance.now() - started).toFixed(1)} ms (V8 heap ${mib(trim.heapBefore)} -> ${mib(trim.heapAfter)} MiB; malloc_trim ${trim.mallocReleased ? 'released memory' : 'had nothing to release'})`,
      );
    }
  }

  private platformSettings(): PlatformSettings {
    const xen = this.xen;
    return resolvePlatform(this.config.platform, xen ? (key) => xen.readPlatform(key) : undefined);
  }

  private async dropPrivileges(): Promise<void> {
    const { chroot, uid, gid, depriv } = this.config;
    if (chroot === undefined && uid === 0 && gid === 0 && !depriv) return;
    const wanted = [
      chroot !== undefined && '--chroot',
      uid !== 0 && '--uid',
      gid !== 0 && '--gid',
      depriv && '--depriv',
    ]
      .filter(Boolean)
      .join(', ');
    let host: typeof import('@vmsb/xen/host');
    try {
      host = await import('@vmsb/xen/host');
      this.host = host;
    } catch (e) {
      throw new StartupError(`${wanted}: the host binding of @vmsb/xen cannot be loaded: ${(e as Error).message}`);
    }
    // libuv starts its thread pool at the first piece of work it is given; under --depriv no thread
    // can be created after the drop (RLIMIT_NPROC 0), so make sure it exists now.
    await stat('/');
    try {
      host.enterSandbox({
        depriv,
        ...(chroot !== undefined ? { chroot } : {}),
        ...(uid !== 0 ? { uid } : {}),
        ...(gid !== 0 ? { gid } : {}),
        ...(depriv ? { fileSizeLimit: DEPRIV_FILE_SIZE_LIMIT } : {}),
      });
    } catch (e) {
      throw new StartupError(`Failed to drop privileges (${wanted}): ${(e as Error).message}`);
    }
    this.log.info(`Privileges dropped (${wanted})`);
  }

  private async loadStore(
    backend: Backend,
    options: StoreOptions,
    authFiles: readonly AuthFile[],
    authenticator: LazyAuthenticator,
    persist: ((state: StoreState) => Promise<void>) | undefined,
  ): Promise<VariableStore> {
    const { config, log } = this;
    if (config.resume) {
      const path = config.resumePath!;
      const state = await guard(readSaveFile(path));
      const store = restoreStore(() => VariableStore.restore(state, { ...options, resume: true }), path);
      log.info(`Resumed ${state.variables.length} variables from ${path}`);
      return store;
    }
    const stored = await guard(backend.store.load());
    if (stored !== undefined) {
      const store = restoreStore(
        () => VariableStore.restore(stored, { ...options, resume: false }),
        backend.description,
      );
      log.info(`Loaded ${stored.variables.length} variables`);
      return store;
    }
    log.info('No stored NVRAM: first boot');
    const store = VariableStore.create(options);
    if (authFiles.some((f) => f.data !== undefined)) {
      try {
        await authenticator.load();
      } catch (e) {
        const paths = authFiles.filter((f) => f.data !== undefined).map((f) => f.path);
        throw new StartupError(
          `Cannot apply ${paths.join(', ')}: signed provisioning is unavailable: ${(e as Error).message}`,
        );
      }
    }
    const applied = await guard(applyAuthFiles(store, authFiles, persist, log));
    log.info(applied.length > 0 ? `Provisioned ${applied.join(', ')}` : `No keys provisioned from ${config.authDir}`);
    return store;
  }

  private logSecureBootState(store: VariableStore): void {
    const mode = store.setupMode ? 'setup mode (no PK)' : 'user mode (PK enrolled)';
    this.log.info(`Secure Boot: ${store.secureBoot ? 'enabled' : 'disabled'}, ${mode}`);
  }

  private async serveUntilStopped(store: VariableStore, service: VariableService): Promise<number> {
    const signal = await this.stopRequested!;
    // Later signals while stopping change nothing.
    this.stopSignal = () => undefined;
    this.log.info(`${signal}: finishing the request in flight and stopping`);
    service.stopIdleWatch();
    await this.closeTransports();
    await service.drain();
    let status = 0;
    if (this.config.savePath !== undefined) {
      try {
        const state = store.state();
        await writeSaveFile(this.config.savePath, state);
        this.log.info(`Saved ${state.variables.length} variables to ${this.config.savePath}`);
      } catch (e) {
        this.log.error(`Failed to write the save file: ${(e as Error).message}`);
        status = 1;
      }
    }
    this.release();
    this.log.info('Stopped');
    return status;
  }

  private async closeTransports(): Promise<void> {
    const unix = this.unix;
    const xen = this.xen;
    this.unix = undefined;
    this.xen = undefined;
    await unix?.close();
    await xen?.close();
  }

  private async teardown(): Promise<void> {
    this.pending.fail();
    await this.closeTransports().catch(() => undefined);
    this.release();
  }

  /** Drops the locks: the store's, then the pidfile (readiness ends last). */
  private release(): void {
    this.backend?.release?.();
    this.backend = undefined;
    this.pidfile?.release();
    this.pidfile = undefined;
  }
}

/**
 * The platform settings: xenstore platform/<key> when it has the key (it wins under Xen), else
 * --platform, else the C daemon's defaults (Secure Boot off, enforcing). As the C daemon reads
 * xenstore: secureboot only when exactly "true", permissive only when exactly "false".
 */
export function resolvePlatform(
  args: DaemonConfig['platform'],
  readXenstore?: (key: 'secureboot' | 'auth-enforce') => string | undefined,
): PlatformSettings {
  const sb = readXenstore?.('secureboot');
  const enforce = readXenstore?.('auth-enforce');
  return {
    secureBoot: sb !== undefined ? sb === 'true' : (args.secureboot ?? false),
    authEnforce: enforce !== undefined ? enforce !== 'false' : (args.authEnforce ?? true),
  };
}

/**
 * Under --depriv the daemon must already be in the private mount, IPC, network and UTS namespaces the
 * launcher (vmsb-launch, started by bin/varstored) creates: unshare() in Node itself would move one
 * thread only. The launcher names them in VMSB_DEPRIV_NAMESPACES; this process must be in exactly those.
 */
function checkNamespaces(): void {
  const expected = process.env.VMSB_DEPRIV_NAMESPACES;
  delete process.env.VMSB_DEPRIV_NAMESPACES;
  let actual: string;
  try {
    actual = ['net', 'ipc', 'uts', 'mnt'].map((k) => readlinkSync(`/proc/self/ns/${k}`)).join(' ');
  } catch (e) {
    throw new StartupError(`--depriv: cannot read /proc/self/ns: ${(e as Error).message}`);
  }
  if (expected !== actual) {
    throw new StartupError(
      '--depriv: not in the private namespaces the launcher creates; start varstored through bin/varstored (which runs vmsb-launch from @vmsb/xen), not with node directly',
    );
  }
}

/** The store rejects a state it could never have produced; say where that state came from. */
function restoreStore(restore: () => VariableStore, source: string): VariableStore {
  try {
    return restore();
  } catch (e) {
    throw new StartupError(`${source}: unusable NVRAM: ${(e as Error).message}`);
  }
}

/** Awaits a start-up step; its failure becomes a one-line StartupError with the step's message. */
async function guard<T>(step: Promise<T> | T): Promise<T> {
  try {
    return await step;
  } catch (e) {
    if (e instanceof StartupError || e instanceof XenUnavailable) throw e;
    throw new StartupError((e as Error).message);
  }
}
