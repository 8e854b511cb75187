/**
 * Test support for the compatibility tools: runs the BUILT executables (bin/varstore-*), builds
 * NVRAM blobs, and makes real keys and .auth files with openssl and efitools.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Guids, makeVariable, serializeSignatureLists, signatureListOfHashes, type Variable } from '@vmsb/efi';
import { decodeVarsBlob, encodeVarsBlob } from '@vmsb/nvram';
import { guidFromText, utf16le } from '@vmsb/protocol';
import type { GuardDouble } from '@vmsb/xapi/testing';

export const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN_DIR = join(PACKAGE_DIR, 'bin');
export const TOOLS = ['ls', 'get', 'set', 'rm', 'sb-state'] as const;
export type ToolName = (typeof TOOLS)[number];

/** The tests run what users run: fail loudly when the package has not been built. */
export function assertBuilt(): void {
  for (const tool of TOOLS) {
    const bundle = join(PACKAGE_DIR, 'dist', `varstore-${tool}.js`);
    if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run \`pnpm --filter varstore build\` first`);
  }
}

export function toolPath(tool: ToolName): string {
  return join(BIN_DIR, `varstore-${tool}`);
}

export interface ToolRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly out: string;
  readonly err: string;
}

/** Runs bin/varstore-<tool> with `args`; never rejects. */
export function runTool(
  tool: ToolName,
  args: readonly string[],
  options: { env?: Record<string, string>; input?: Uint8Array } = {},
): Promise<ToolRun> {
  return new Promise((done, fail) => {
    const env: Record<string, string | undefined> = { ...process.env, ...options.env };
    delete env.POSIXLY_CORRECT;
    const child = spawn(toolPath(tool), [...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', fail);
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out);
      done({ code, signal, stdout, out: stdout.toString('utf8'), err: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.end(options.input ?? new Uint8Array(0));
  });
}

export const GLOBAL = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
export const IMAGE_SECURITY = 'd719b2cb-3d3a-4596-a3bc-dad00e67656f';
export const VENDOR = '12345678-1234-1234-1234-123456789abc';

export function guid(text: string): Uint8Array {
  const g = guidFromText(text);
  if (g === undefined) throw new Error(`bad GUID ${text}`);
  return g;
}

export function variable(
  name: string | Uint8Array,
  guidText: string,
  attributes: number,
  data: Uint8Array,
  timestamp?: Uint8Array,
): Variable {
  return makeVariable({
    name: typeof name === 'string' ? utf16le(name) : name,
    guid: guid(guidText),
    attributes,
    data,
    ...(timestamp ? { timestamp } : {}),
  });
}

/** VM.NVRAM["EFI-variables"] holding these (non-volatile) variables. */
export function nvramOf(variables: readonly Variable[]): string {
  const blob = encodeVarsBlob(
    { variables, morKey: new Uint8Array(8), ppi: { index: 0, func: new Uint8Array(256) } },
    { nonVolatileOnly: true },
  );
  return Buffer.from(blob).toString('base64');
}

/** The variables XAPI holds for the double's VM now. */
export function storedVariables(guard: GuardDouble): Variable[] {
  const encoded = guard.nvram.get('EFI-variables');
  if (encoded === undefined) throw new Error('no EFI-variables in the NVRAM');
  const decoded = decodeVarsBlob(new Uint8Array(Buffer.from(encoded, 'base64')));
  if (!decoded.ok) throw new Error(decoded.error);
  return [...decoded.state.variables];
}

export function findVariable(variables: readonly Variable[], name: string, guidText: string): Variable | undefined {
  const n = Buffer.from(utf16le(name));
  const g = Buffer.from(guid(guidText));
  return variables.find((v) => n.equals(v.name) && g.equals(v.guid));
}

/**
 * XAPI's VM.get_secureboot_readiness reading of `varstore-ls` output (xapi_vm.ml): split lines on
 * '\n', take the second space-separated field, and look for PK, KEK, db and dbx.
 */
export function xapiReadiness(lsOutput: string): 'ready' | 'ready_no_dbx' | 'setup_mode' | 'certs_incomplete' {
  const keys = lsOutput.split('\n').flatMap((line) => {
    const field = line.split(' ')[1];
    return field === undefined ? [] : [field];
  });
  const [pk, kek, db, dbx] = ['PK', 'KEK', 'db', 'dbx'].map((k) => keys.includes(k));
  if (pk && kek && db && dbx) return 'ready';
  if (pk && kek && db && !dbx) return 'ready_no_dbx';
  if (!pk) return 'setup_mode';
  return 'certs_incomplete';
}

export interface SecureBootKeys {
  readonly dir: string;
  /** Directory with PK.auth, KEK.auth, db.auth, dbx.auth (VARSTORED_AUTH_DIR). */
  readonly authDir: string;
  /** The signature lists inside each .auth. */
  readonly esl: Readonly<Record<'PK' | 'KEK' | 'db' | 'dbx', Uint8Array>>;
  readonly auth: Readonly<Record<'PK' | 'KEK' | 'db' | 'dbx', Uint8Array>>;
  /** A time-based authenticated private variable MyVar (VENDOR GUID), payload "hi\n". */
  readonly privateAuth: Uint8Array;
}

const OWNER = '11111111-2222-3333-4444-555555555555';

/**
 * PK, KEK and db keys and certificates (openssl), their signature lists (efitools'
 * cert-to-efi-sig-list; dbx: two SHA-256 entries), and .auth files signed with efitools'
 * sign-efi-sig-list the way a host's defaults are: PK self-signed, KEK by PK, db and dbx by KEK.
 */
export function makeSecureBootKeys(dir: string): SecureBootKeys {
  const authDir = join(dir, 'auth');
  mkdirSync(authDir, { recursive: true });
  const run = (cmd: string, args: string[]): void => void execFileSync(cmd, args, { cwd: dir, stdio: 'pipe' });
  for (const k of ['PK', 'KEK', 'db']) {
    run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-sha256',
      '-days',
      '3650',
      '-subj',
      `/CN=Test ${k}/`,
      '-keyout',
      `${k}.key`,
      '-out',
      `${k}.crt`,
    ]);
    run('cert-to-efi-sig-list', ['-g', OWNER, `${k}.crt`, `${k}.esl`]);
  }
  const hashes = [new Uint8Array(32).fill(0xa1), new Uint8Array(32).fill(0xb2)];
  writeFileSync(
    join(dir, 'dbx.esl'),
    serializeSignatureLists([signatureListOfHashes(Guids.CERT_SHA256, hashes, guid(OWNER))]),
  );
  const sign = (name: string, signer: string, extra: string[] = []): void =>
    run('sign-efi-sig-list', [
      ...extra,
      '-t',
      '2024-01-01 00:00:00',
      '-k',
      `${signer}.key`,
      '-c',
      `${signer}.crt`,
      name,
      `${name}.esl`,
      join(authDir, `${name}.auth`),
    ]);
  sign('PK', 'PK');
  sign('KEK', 'PK');
  sign('db', 'KEK');
  sign('dbx', 'KEK', ['-a']);
  writeFileSync(join(dir, 'my.bin'), 'hi\n');
  run('sign-efi-sig-list', [
    '-g',
    VENDOR,
    '-t',
    '2024-01-01 00:00:00',
    '-k',
    'db.key',
    '-c',
    'db.crt',
    'MyVar',
    'my.bin',
    'MyVar.auth',
  ]);
  const read = (path: string): Uint8Array => new Uint8Array(readFileSync(join(dir, path)));
  const names = ['PK', 'KEK', 'db', 'dbx'] as const;
  return {
    dir,
    authDir,
    esl: Object.fromEntries(names.map((n) => [n, read(`${n}.esl`)])) as SecureBootKeys['esl'],
    auth: Object.fromEntries(names.map((n) => [n, read(join('auth', `${n}.auth`))])) as SecureBootKeys['auth'],
    privateAuth: read('MyVar.auth'),
  };
}

/** The payload of an EFI_VARIABLE_AUTHENTICATION_2 file (what ends up stored). */
export function authPayload(auth: Uint8Array): Uint8Array {
  const dwLength = new DataView(auth.buffer, auth.byteOffset, auth.byteLength).getUint32(16, true);
  return auth.subarray(16 + dwLength);
}

/** The EFI_TIME of an EFI_VARIABLE_AUTHENTICATION_2 file. */
export function authTimestamp(auth: Uint8Array): Uint8Array {
  return auth.subarray(0, 16);
}
