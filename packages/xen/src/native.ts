// Loads the compiled binding lazily and explains, when it cannot, exactly what is missing.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Request kinds the binding hands to JS (everything else it completes itself). */
export const RequestKind = { Command: 0, PpiRead: 1, PpiWrite: 2 } as const;

export interface NativeServer {
  readonly vcpus: number;
  readonly id: number;
  readonly legacyMapping: boolean;
  /** Completes vCPU `vcpu`'s request in process; false once the server has closed. */
  complete(vcpu: number, result?: Uint8Array | number): boolean;
  /** Stops watching the event channel. */
  pause(): void;
  /** Takes every request left READY, whether or not its event was read. */
  sweep(): void;
  /** Tears down; returns the teardown steps that failed. `force` only for a process that is exiting. */
  close(force?: boolean): string[];
}

/**
 * Called for each request the binding hands to JS. For a command, returning the response (a
 * Uint8Array of at most 64 KiB) answers and completes it at once; returning undefined leaves it in
 * process until complete(). `a` (a command's request) is the vCPU's request buffer, rewritten by that
 * vCPU's next command: nothing may keep it, or a view of it, after answering.
 */
export type OnRequest = (kind: number, vcpu: number, a: unknown, b: unknown, c: unknown) => Uint8Array | undefined;
export type OnLog = (level: string, message: string, guestCaused: boolean) => void;

export type ProbeResult = { ok: true } | { ok: false; call: string; errno: number; code: string; detail: string };

export interface NativeBinding {
  Server: new (domid: number, onRequest: OnRequest, onLog: OnLog) => NativeServer;
  probe(): ProbeResult;
  xenstoreRead(path: string): string | undefined;
  xenstoreWrite(path: string, value: string): void;
  /** Drops the process's xenstore connection (kept open so writes work after a chroot). */
  xenstoreClose(): void;
}

export type LoadResult = { ok: true; binding: NativeBinding } | { ok: false; reason: string };

/** The package root: the nearest folder with a package.json, from src/ (tests) or anywhere in dist/ (built). */
export const packageRoot = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(from: string): string {
  let dir = from;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return join(from, '..');
    dir = up;
  }
  return dir;
}
export const defaultBuildDir = join(packageRoot, 'build');

/**
 * Set only in a program bundled by tools/package: where its native files are, relative to the
 * bundle (the bundle has no package root and no node_modules).
 */
declare const VMSB_BUNDLED_NATIVE_DIR: string | undefined;

/**
 * Where the compiled files the programs need are: build/Release in a checkout, the bundler's
 * directory in a host package. tools/package ships each file of build/Release whose name (without
 * `.node`) appears in a bundle, so load binaries by a literal name: `loadBinding('<name>')` or
 * `nativeFile('<file name>')`.
 */
export const nativeDir =
  typeof VMSB_BUNDLED_NATIVE_DIR === 'string'
    ? fileURLToPath(new URL(VMSB_BUNDLED_NATIVE_DIR, import.meta.url))
    : join(defaultBuildDir, 'Release');

/** The path of a compiled file (an executable, a library) in nativeDir. */
export function nativeFile(fileName: string): string {
  return join(nativeDir, fileName);
}

const requireNative = createRequire(import.meta.url);
const cache = new Map<string, LoadResult>();

/** Loads `<name>.node` from nativeDir, or from `<buildDir>/Release` when given, once. Never throws. */
export function loadBinding(name = 'vmsb_xen', buildDir?: string): LoadResult {
  const file = join(buildDir === undefined ? nativeDir : join(buildDir, 'Release'), `${name}.node`);
  let result = cache.get(file);
  if (!result) {
    result = load(file, buildDir ?? defaultBuildDir);
    cache.set(file, result);
  }
  return result;
}

function load(file: string, buildDir: string): LoadResult {
  if (!existsSync(file)) return { ok: false, reason: notBuiltReason(file, buildDir) };
  try {
    return { ok: true, binding: requireNative(file) as NativeBinding };
  } catch (e) {
    return { ok: false, reason: loadFailureReason(file, e) };
  }
}

function notBuiltReason(file: string, buildDir: string): string {
  const marker = join(buildDir, 'xen-build.json');
  try {
    const outcome = JSON.parse(readFileSync(marker, 'utf8')) as { built?: boolean; reason?: string };
    if (outcome.built === false && typeof outcome.reason === 'string') {
      return `the Xen binding was not built when @vmsb/xen was installed: ${outcome.reason}; install them and run pnpm install again`;
    }
  } catch {
    // No record of a build attempt: fall through.
  }
  return `the Xen binding is not built (${file} is missing): run pnpm install on a host with the Xen headers (libxen-dev)`;
}

/** Explains a failed dlopen: a missing Xen library is the common case and gets its own message. */
export function loadFailureReason(file: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const missing = /([^\s:/]+\.so(?:\.[0-9]+)*): cannot open shared object file/.exec(message);
  if (missing) {
    return `the Xen runtime library ${missing[1]} is missing (install the Xen tools libraries, e.g. Debian's libxen-dev); ${file} needs it`;
  }
  return `cannot load the Xen binding ${file}: ${message.split('\n')[0]}`;
}

/** Turns a failed probe into what an administrator needs to hear. */
export function probeFailureReason(probe: Exclude<ProbeResult, { ok: true }>): string {
  const node = probe.call === 'xenevtchn_open' ? '/dev/xen/evtchn' : '/dev/xen/privcmd';
  const detail = probe.detail ? ` (${probe.call}: ${probe.detail})` : ` (${probe.call}: ${probe.code})`;
  if (probe.code === 'ENOENT') {
    return node === '/dev/xen/evtchn'
      ? `${node} is missing: the Xen event-channel driver (xen-evtchn) is not loaded${detail}`
      : `${node} is missing: this host is not a Xen dom0, or the privcmd driver is not loaded${detail}`;
  }
  if (probe.code === 'EACCES' || probe.code === 'EPERM') {
    return `permission denied opening ${node}: varstored must run as root in dom0${detail}`;
  }
  return `cannot open ${node}: ${probe.code}${detail}`;
}
