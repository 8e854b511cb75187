import { chmod, open } from 'node:fs/promises';
import { checkSignatureLists, Guids, guidEquals } from '@vmsb/efi';
import { readCertificates } from '@vmsb/keys';
import { replaceFile } from '@vmsb/nvram';
import { authenticodeDigest, parsePeImage } from '@vmsb/pe';
import { CliError, ExitCode, messageOf } from './errors.js';

/** Inputs (certificates, lists, .auth files, payloads) are small; anything larger is a mistake. */
export const MAX_INPUT_SIZE = 16 * 1024 * 1024;

let stdinTaken = false;

/** Standard input, read to its end (at most `max` bytes); only one input of a command may be `-`. */
export async function readStdin(what: string, max = MAX_INPUT_SIZE): Promise<Uint8Array> {
  if (stdinTaken) throw new CliError(`${what} -: standard input is already used by another input`, ExitCode.USAGE);
  stdinTaken = true;
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > max)
        throw new CliError(`${what} on standard input: more than the ${max} bytes a ${what} can be`, ExitCode.STORE);
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`${what} on standard input: ${messageOf(e)}`, ExitCode.STORE);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** Reads a whole input file of at most `max` bytes (`-`: standard input); errors name the file and exit with code 3. */
export async function readInput(path: string, what: string, max = MAX_INPUT_SIZE): Promise<Uint8Array> {
  if (path === '-') return readStdin(what, max);
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(`${what} ${path}: ${code === 'ENOENT' ? 'no such file' : messageOf(e)}`, ExitCode.STORE);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new CliError(`${what} ${path}: not a regular file`, ExitCode.STORE);
    if (stat.size > max)
      throw new CliError(
        `${what} ${path}: ${stat.size} bytes is more than the ${max} a ${what} can be`,
        ExitCode.STORE,
      );
    const buffer = new Uint8Array(stat.size);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return buffer.subarray(0, length);
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`${what} ${path}: ${messageOf(e)}`, ExitCode.STORE);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * File modes, one policy: what can be published (signature lists, signed updates, certificates)
 * is 0644; private keys and anything holding NVRAM content (stores, variable values) 0600.
 * A store that is replaced keeps its own mode, and a backup its original's.
 */
export const FileMode = { PUBLIC: 0o644, PRIVATE: 0o600 } as const;

/**
 * Writes an output file atomically (temporary file, fsync, rename) with `mode`; `-` writes the
 * bytes to `stdout` instead.
 */
export async function writeOutput(
  path: string,
  bytes: Uint8Array | string,
  options: { mode: number; stdout: { write(chunk: Uint8Array): unknown } },
): Promise<void> {
  const data = typeof bytes === 'string' ? new Uint8Array(Buffer.from(bytes, 'utf8')) : bytes;
  if (path === '-') {
    options.stdout.write(data);
    return;
  }
  try {
    await replaceFile(path, data);
    await chmod(path, options.mode);
  } catch (e) {
    throw new CliError(messageOf(e), ExitCode.STORE);
  }
}

/** Every certificate in a PEM (possibly a bundle) or DER file. */
export async function readCertificateFile(path: string): Promise<Uint8Array[]> {
  const bytes = await readInput(path, 'certificate');
  try {
    const certs = readCertificates(bytes);
    if (certs.length === 0) throw new TypeError('no CERTIFICATE block');
    return certs;
  } catch (e) {
    const text = bytes.length > 0 && bytes.every((b) => b === 9 || b === 10 || b === 13 || (b >= 0x20 && b < 0x7f));
    throw new CliError(
      text && !Buffer.from(bytes).toString('latin1').includes('-----BEGIN')
        ? `certificate ${path}: not a certificate (a text file without a "-----BEGIN CERTIFICATE-----" block)`
        : `certificate ${path}: not a certificate (${messageOf(e)})`,
      ExitCode.STORE,
      'give an X.509 certificate in PEM or DER (e.g. `openssl x509 -in cert.pem -outform DER`)',
    );
  }
}

/** The Authenticode SHA-256 of a PE/COFF image file, as firmware looks it up in db and dbx. */
export async function imageHash(path: string): Promise<Uint8Array> {
  const bytes = await readInput(path, 'image', 512 * 1024 * 1024);
  const parsed = parsePeImage(bytes);
  if (!parsed.ok) throw new CliError(`image ${path}: ${parsed.reason}`, ExitCode.STORE);
  const digest = authenticodeDigest(bytes, parsed.image, 'sha256');
  if (!digest.ok) throw new CliError(`image ${path}: ${digest.reason}`, ExitCode.STORE);
  return digest.digest;
}

export type SecureBootInput =
  | { readonly kind: 'auth'; readonly bytes: Uint8Array }
  | { readonly kind: 'esl'; readonly bytes: Uint8Array }
  | { readonly kind: 'certificates'; readonly certificates: readonly Uint8Array[] };

/** A signed update: EFI_TIME, then WIN_CERTIFICATE_UEFI_GUID (revision 0x0200, type 0x0EF1, PKCS7 GUID). */
export function looksLikeAuth(bytes: Uint8Array): boolean {
  if (bytes.length < 40) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(16, true);
  return (
    length >= 24 &&
    length <= bytes.length - 16 &&
    view.getUint16(22, true) === 0x0ef1 &&
    guidEquals(bytes.subarray(24, 40), Guids.CERT_PKCS7)
  );
}

/**
 * What an enrolment file holds: a signed update (.auth), signature lists (.esl), or certificates
 * (PEM, possibly several, or DER). Decided from the content, not the file name.
 */
export async function readSecureBootInput(path: string): Promise<SecureBootInput> {
  const bytes = await readInput(path, 'input');
  if (looksLikeAuth(bytes)) return { kind: 'auth', bytes };
  if (bytes.length >= 28 && checkSignatureLists(bytes).ok) return { kind: 'esl', bytes };
  try {
    const certificates = readCertificates(bytes);
    if (certificates.length > 0) return { kind: 'certificates', certificates };
  } catch {
    // Fall through to the message naming the three accepted kinds.
  }
  throw new CliError(
    `${path}: neither a signed update (.auth), signature lists (.esl) nor X.509 certificates (PEM or DER)`,
    ExitCode.STORE,
  );
}

/** Hex text (spaces and colons allowed) of exactly `size` bytes. */
export function parseHex(text: string, size: number | undefined, what: string): Uint8Array {
  const clean = text.replace(/[\s:]/g, '');
  const bad = /[^0-9a-fA-F]/.exec(clean);
  if (bad !== null)
    throw new CliError(
      `${what} ${JSON.stringify(text.slice(0, 80))}: ${JSON.stringify(bad[0])} is not a hex digit (0-9, a-f)`,
      ExitCode.USAGE,
    );
  if (clean.length === 0 || clean.length % 2 !== 0)
    throw new CliError(`${what}: an odd number of hex digits (${clean.length}); give whole bytes`, ExitCode.USAGE);
  const bytes = Uint8Array.from(Buffer.from(clean, 'hex'));
  if (size !== undefined && bytes.length !== size)
    throw new CliError(`${what} is ${bytes.length} bytes, expected ${size}`, ExitCode.USAGE);
  return bytes;
}
