/** Helpers for the `varstore` tests: the built executable, real peers (openssl, efitools), fixtures made at run time. */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Attrs, Guids, utf16le, type StoreState, type Variable } from '@vmsb/efi';
import type { CliIo } from '../output.js';

export const BIN = fileURLToPath(new URL('../../../bin/varstore', import.meta.url));
const DIST = fileURLToPath(new URL('../../../dist/varstore.js', import.meta.url));

export function assertBuilt(): void {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: build first (pnpm --filter varstore build)`);
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
}

/**
 * Runs the built `varstore` with `args` in `cwd`. The environment is fixed so output does not
 * depend on the caller's terminal: UTF-8 locale, no colour forcing.
 */
export function varstore(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string>; input?: Uint8Array } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code: code ?? -1,
        stdout: stdoutBytes.toString('utf8'),
        stdoutBytes,
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.end(options.input ?? new Uint8Array(0));
  });
}

/** Runs a peer tool; throws with its output when it fails. */
export function peer(command: string, args: readonly string[], cwd?: string): Buffer {
  try {
    return execFileSync(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer; stdout?: Buffer; message: string };
    throw new Error(
      `${command} ${args.join(' ')} failed: ${err.stderr?.toString() ?? ''}${err.stdout?.toString() ?? ''}${err.message}`,
    );
  }
}

/** Whether a peer tool is installed (efitools, openssl). */
export function requirePeer(command: string, pkg: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`${command} is missing: install the Debian package "${pkg}" (scripts/setup does)`);
  }
}

export const OVMF_DIR = '/usr/share/OVMF';
export const SNAKEOIL_KEY = '/usr/share/ovmf/PkKek-1-snakeoil.key';
export const SNAKEOIL_PEM = '/usr/share/ovmf/PkKek-1-snakeoil.pem';

/** A Debian OVMF file (installed by scripts/setup through the `ovmf` package). */
export function ovmfFile(path: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: install the Debian package "ovmf" (scripts/setup does)`);
  return path;
}

/** A self-signed RSA certificate and key made with openssl in `dir`. */
export function makeCert(dir: string, name: string, cn = name): { key: string; crt: string; der: string } {
  const key = `${dir}/${name}.key`;
  const crt = `${dir}/${name}.crt`;
  const der = `${dir}/${name}.der`;
  peer('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    crt,
    '-subj',
    `/CN=${cn}`,
    '-days',
    '3650',
  ]);
  peer('openssl', ['x509', '-in', crt, '-outform', 'DER', '-out', der]);
  return { key, crt, der };
}

export function variable(
  name: string,
  guid: Uint8Array,
  attributes: number,
  data: Uint8Array,
  fields: Partial<Variable> = {},
): Variable {
  return {
    name: utf16le(name),
    guid,
    attributes,
    data,
    timestamp: new Uint8Array(16),
    signerDigest: new Uint8Array(32),
    ...fields,
  };
}

export function stateOf(variables: readonly Variable[]): StoreState {
  return { variables, morKey: new Uint8Array(8), ppi: { index: 0, func: new Uint8Array(256) } };
}

export const GLOBAL = Guids.GLOBAL_VARIABLE;
export const IMAGE_SECURITY = Guids.IMAGE_SECURITY_DATABASE;
export const SB_ATTRS = Attrs.NV_BS_RT_AT;

/** An in-process I/O for `run()`: captured output, a fixed clock. */
export function memoryIo(
  options: { now?: Date; env?: Record<string, string>; tty?: boolean } = {},
): CliIo & { out(): string; err(): string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    stdout: {
      write: (c: string | Uint8Array) => out.push(typeof c === 'string' ? c : Buffer.from(c).toString('latin1')),
      isTTY: options.tty === true,
    },
    stderr: {
      write: (c: string | Uint8Array) => err.push(typeof c === 'string' ? c : Buffer.from(c).toString('latin1')),
      isTTY: options.tty === true,
    },
    env: { LANG: 'C.UTF-8', ...options.env },
    now: () => options.now ?? new Date('2026-11-22T12:00:00Z'),
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

export function readBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}
