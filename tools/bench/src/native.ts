/**
 * The C peers of the benchmarks, built with the system's C compiler at bench time (never shipped):
 * `echo` (the unix transport's cheapest peer), `responder` (a minimal ioreq server under the fake
 * Xen libraries) and `guest` (plays a vCPU on the fake hypervisor, the same for every server).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { varstoredEntry } from '@vmsb/fuzz';

const SOURCES = fileURLToPath(new URL('../native/', import.meta.url));

export interface NativePeers {
  readonly echo: string;
  /** Absent when the Xen headers or the fake hypervisor are not built. */
  readonly xen?: {
    readonly responder: string;
    readonly guest: string;
    /** LD_PRELOAD this under a server so that its Xen libraries are the fake ones. */
    readonly fakeLibrary: string;
  };
  /** Why the Xen peers are absent. */
  readonly xenMissing?: string;
}

function cc(out: string, args: readonly string[]): void {
  const r = spawnSync('cc', ['-O2', '-Wall', '-o', out, ...args], { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run cc (install a C compiler): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`cc ${args.join(' ')} failed:\n${r.stderr}`);
}

/** The @vmsb/xen package the daemon loads (its fake hypervisor and headers). */
export function xenPackageDir(): string | undefined {
  try {
    const fromDaemon = createRequire(join(dirname(dirname(varstoredEntry())), 'package.json'));
    return dirname(fromDaemon.resolve('@vmsb/xen/package.json'));
  } catch {
    return undefined;
  }
}

/**
 * The node options the daemon's launcher starts it with (apps/varstored/bin/node-flags, its
 * `options='…'` line), and the start-up snapshot it starts from when the build made one
 * (dist/varstored.blob): the benchmarks run the daemon as installed.
 */
export function launcherNodeFlags(): string[] {
  try {
    const dist = dirname(varstoredEntry());
    const launcher = join(dirname(dist), 'bin', 'node-flags');
    const match = /^options='(.*)'$/m.exec(readFileSync(launcher, 'utf8'));
    const options = match ? match[1]!.split(/\s+/).filter(Boolean) : [];
    const blob = join(dist, 'varstored.blob');
    return existsSync(blob) ? [...options, '--snapshot-blob', blob] : options;
  } catch {
    return [];
  }
}

export function buildNative(dir: string): NativePeers {
  const echo = join(dir, 'echo');
  cc(echo, [join(SOURCES, 'echo.c')]);
  const xen = xenPackageDir();
  const release = xen === undefined ? '' : join(xen, 'build', 'Release');
  const fakeLibrary = join(release, 'libvmsbfakexen.so');
  if (xen === undefined || !existsSync(fakeLibrary)) {
    return { echo, xenMissing: 'the fake Xen library (packages/xen/build/Release/libvmsbfakexen.so) is not built' };
  }
  const guest = join(dir, 'guest');
  const responder = join(dir, 'responder');
  cc(guest, [
    join(SOURCES, 'guest.c'),
    `-I${join(xen, 'fake')}`,
    '-D__XEN_TOOLS__',
    `-L${release}`,
    '-lvmsbfakexen',
    `-Wl,-rpath,${release}`,
  ]);
  cc(responder, [
    join(SOURCES, 'responder.c'),
    '-D__XEN_TOOLS__',
    '-lxendevicemodel',
    '-lxenforeignmemory',
    '-lxenevtchn',
    '-lxenstore',
  ]);
  return { echo, xen: { responder, guest, fakeLibrary } };
}
