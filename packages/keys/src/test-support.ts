/**
 * Test utilities: temporary directories and the real peers (openssl, efitools) run through
 * child_process. Not part of the package's public surface.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Scratch {
  readonly dir: string;
  path(name: string): string;
  write(name: string, contents: Uint8Array | string): string;
  read(name: string): Uint8Array;
  remove(): void;
}

export function scratch(): Scratch {
  const dir = mkdtempSync(join(tmpdir(), 'vmsb-keys-'));
  return {
    dir,
    path: (name) => join(dir, name),
    write(name, contents) {
      const p = join(dir, name);
      writeFileSync(p, contents);
      return p;
    },
    read: (name) => new Uint8Array(readFileSync(join(dir, name))),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface RunResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a peer tool; never throws for a non-zero exit (tests assert on `status`). */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; input?: Uint8Array } = {},
): RunResult {
  const r = spawnSync(command, args, {
    cwd: options.cwd,
    input: options.input,
    encoding: 'latin1',
    env: { ...process.env, TZ: 'UTC' },
  });
  if (r.error !== undefined)
    throw new Error(`${command} could not run (${r.error.message}); scripts/setup installs openssl and efitools`);
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a peer tool and throws with its stderr unless it exits 0. */
export function runOk(
  command: string,
  args: readonly string[],
  options: { cwd?: string; input?: Uint8Array } = {},
): string {
  const r = run(command, args, options);
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/**
 * A bare PKCS#7 SignedData inside a ContentInfo, built the way edk2's WrapPkcs7Data does (fixed
 * 19-byte header with two-byte lengths), independently of the package's own encoder, so openssl can
 * read what the package produced.
 */
export function contentInfoFor(bare: Uint8Array): Uint8Array {
  const inner = bare.length;
  const outer = inner + 15;
  const header = Uint8Array.from([
    0x30,
    0x82,
    outer >> 8,
    outer & 0xff,
    0x06,
    0x09,
    0x2a,
    0x86,
    0x48,
    0x86,
    0xf7,
    0x0d,
    0x01,
    0x07,
    0x02,
    0xa0,
    0x82,
    inner >> 8,
    inner & 0xff,
  ]);
  const out = new Uint8Array(header.length + inner);
  out.set(header);
  out.set(bare, header.length);
  return out;
}

/** EFI_VARIABLE_AUTHENTICATION_2 split by fixed offsets (independent of the package's parser). */
export function splitAuth(auth: Uint8Array): {
  timestamp: Uint8Array;
  header: Uint8Array;
  p7: Uint8Array;
  payload: Uint8Array;
} {
  const dwLength = new DataView(auth.buffer, auth.byteOffset + 16, 4).getUint32(0, true);
  return {
    timestamp: auth.subarray(0, 16),
    header: auth.subarray(16, 40),
    p7: auth.subarray(40, 16 + dwLength),
    payload: auth.subarray(16 + dwLength),
  };
}

/** The signed serialization, assembled by hand: UTF-16LE name ‖ GUID ‖ u32 attributes ‖ EFI_TIME ‖ payload. */
export function serialization(
  name: string,
  guid: Uint8Array,
  attributes: number,
  timestamp: Uint8Array,
  payload: Uint8Array,
): Uint8Array {
  const n = Buffer.from(name, 'utf16le');
  const a = Buffer.alloc(4);
  a.writeUInt32LE(attributes);
  return new Uint8Array(Buffer.concat([n, guid, a, timestamp, payload]));
}

/**
 * `openssl cms -verify` of a detached signature over `content`: with an anchor certificate as the
 * only trust (partial chain, no time or purpose checks, as UEFI firmware verifies), or with
 * -noverify (signature only). Returns the exit status and stderr.
 */
export function opensslVerify(s: Scratch, p7: Uint8Array, content: Uint8Array, anchorPem?: string): RunResult {
  const tag = Math.random().toString(36).slice(2);
  const p7Path = s.write(`p7-${tag}.der`, p7[4] === 0x06 ? p7 : contentInfoFor(p7));
  const dataPath = s.write(`data-${tag}.bin`, content);
  const args = [
    'cms',
    '-verify',
    '-binary',
    '-inform',
    'DER',
    '-in',
    p7Path,
    '-content',
    dataPath,
    '-out',
    '/dev/null',
  ];
  if (anchorPem === undefined) args.push('-noverify');
  else
    args.push(
      '-CAfile',
      s.write(`anchor-${tag}.pem`, anchorPem),
      '-partial_chain',
      '-no_check_time',
      '-purpose',
      'any',
    );
  return run('openssl', args);
}
