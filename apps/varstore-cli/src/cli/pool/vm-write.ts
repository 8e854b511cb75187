/**
 * Writing a VM's NVRAM through XAPI, safely. XAPI's VM.set_NVRAM_EFI_variables does not check the
 * power state (varstored calls it while the VM runs), and a running VM's varstored never reads
 * XAPI again: it overwrites whatever was written on its next variable write, and its NVRAM is
 * what it holds in memory. So the tool writes only to halted VMs, and asks XAPI for the power
 * state right before each write; the current NVRAM is backed up first.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DEFAULT_XAPI_SOCKET,
  decodeBase64Strict,
  EFI_VARIABLES_KEY,
  PoolClient,
  type PoolSession,
  XapiError,
} from '@vmsb/xapi';
import { CliError, ExitCode, messageOf, storeError } from '../errors.js';

/** Why a VM in this power state is not written, and what to do. */
export function notHaltedReason(powerState: string): string {
  switch (powerState) {
    case 'Running':
      return 'running: shut it down and run again';
    case 'Paused':
      return 'paused: shut it down and run again';
    case 'Suspended':
      return 'suspended: its memory image holds the NVRAM the VM resumes with; resume it, shut it down and run again';
    default:
      return `${powerState.toLowerCase()}: not halted; shut it down and run again`;
  }
}

/** The message of an XAPI failure, naming the socket when it could not be reached. */
export function xapiProblem(e: unknown): string {
  return e instanceof XapiError ? e.message : messageOf(e);
}

/** An XAPI call that failed because XAPI could not be reached (not because it refused). */
export function unreachable(e: unknown): boolean {
  return e instanceof XapiError && e.kind !== 'failure';
}

/** CliError (exit 3) for XAPI not answering at `socket`. */
export function unreachableError(socket: string, e: unknown): CliError {
  return storeError(
    `cannot reach XAPI at ${socket}: ${xapiProblem(e)}`,
    `run this on a host of the pool, or give XAPI's socket with --socket (default ${DEFAULT_XAPI_SOCKET})`,
  );
}

function stamp(now: Date): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/**
 * Where backups go: --backup-dir, or a new `varstore-backup-<UTC time>` directory in the current
 * one. Made on first use, mode 0700 (NVRAM can hold secrets the guest stored).
 */
export class BackupDirectory {
  private made: Promise<string> | undefined;

  constructor(
    private readonly given: string | undefined,
    private readonly now: Date,
  ) {}

  path(): Promise<string> {
    this.made ??= this.make();
    return this.made;
  }

  private async make(): Promise<string> {
    if (this.given !== undefined) {
      try {
        await mkdir(this.given, { recursive: true, mode: 0o700 });
      } catch (e) {
        throw storeError(`--backup-dir ${this.given}: ${messageOf(e)}`);
      }
      return this.given;
    }
    const base = `varstore-backup-${stamp(this.now)}`;
    for (let n = 1; n < 100; n++) {
      const path = n === 1 ? base : `${base}-${n}`;
      try {
        await mkdir(path, { mode: 0o700 });
        return path;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw storeError(`cannot create ${path}: ${messageOf(e)}`);
      }
    }
    throw storeError(`cannot find a free name for the backup directory ${base}`);
  }

  /**
   * Saves one VM's NVRAM blob (the bytes XAPI holds, base64-decoded) as `<uuid>.vars`, never
   * over an existing file (`<uuid>-2.vars`, ...), mode 0600. Resolves to its path.
   */
  async save(uuid: string, blob: Uint8Array): Promise<string> {
    const dir = await this.path();
    for (let n = 1; n < 100; n++) {
      const path = join(dir, n === 1 ? `${uuid}.vars` : `${uuid}-${n}.vars`);
      try {
        await writeFile(path, blob, { flag: 'wx', mode: 0o600 });
        return path;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
          throw storeError(`cannot write the backup ${path}: ${messageOf(e)}`);
      }
    }
    throw storeError(`cannot find a free backup name for ${uuid} in ${dir}`);
  }
}

/**
 * Saves a VM's NVRAM as XAPI holds it now (NVRAM["EFI-variables"], base64-decoded) into `backups`;
 * undefined when it has none.
 */
export async function backupVmNvram(
  socket: string,
  uuid: string,
  backups: BackupDirectory,
): Promise<string | undefined> {
  let encoded: string | undefined;
  try {
    encoded = await new PoolClient({ socket }).withSession(async (s) =>
      (await s.nvram(await s.vmByUuid(uuid))).get(EFI_VARIABLES_KEY),
    );
  } catch (e) {
    throw storeError(`vm:${uuid}: cannot read the NVRAM to back it up: ${xapiProblem(e)}`);
  }
  if (encoded === undefined) return undefined;
  // Saved as it is, even if it is not base64: nothing is lost.
  return backups.save(uuid, decodeBase64Strict(encoded) ?? new Uint8Array(Buffer.from(encoded, 'utf8')));
}

export type WriteOutcome =
  | { readonly written: true }
  /** The VM was not halted at the last check: nothing written. */
  | { readonly written: false; readonly kind: 'not-halted'; readonly powerState: string; readonly reason: string }
  /** XAPI refused or did not answer the write; its NVRAM is as it was (XAPI replaces it whole or not at all). */
  | { readonly written: false; readonly kind: 'refused'; readonly reason: string };

/**
 * Checks the power state, then writes NVRAM["EFI-variables"]. The check is the last call before
 * the write, so the window in which a start can slip in is one XAPI round trip.
 */
export async function writeIfHalted(session: PoolSession, ref: string, base64: string): Promise<WriteOutcome> {
  let powerState: string;
  try {
    powerState = await session.powerState(ref);
  } catch (e) {
    return { written: false, kind: 'refused', reason: `cannot read its power state: ${xapiProblem(e)}` };
  }
  if (powerState !== 'Halted')
    return { written: false, kind: 'not-halted', powerState, reason: notHaltedReason(powerState) };
  try {
    await session.setNvramEfiVariables(ref, base64);
  } catch (e) {
    return {
      written: false,
      kind: 'refused',
      reason: `XAPI did not take the write (NVRAM unchanged): ${xapiProblem(e)}`,
    };
  }
  return { written: true };
}

/**
 * For `vm:<uuid>` writes of every command: refuses (exit 3) unless XAPI says the VM is halted.
 * xapi-guard's per-VM socket does not answer VM.get_power_state (it exists only while the VM
 * runs), so a write through it is refused too.
 */
export async function assertVmHalted(socket: string, uuid: string): Promise<void> {
  let powerState: string;
  try {
    powerState = await new PoolClient({ socket }).withSession(async (s) => s.powerState(await s.vmByUuid(uuid)));
  } catch (e) {
    if (e instanceof XapiError && e.errorDescription[0] === 'MESSAGE_METHOD_UNKNOWN')
      throw storeError(
        `vm:${uuid}: cannot confirm that the VM is halted: ${socket} does not answer VM.get_power_state (xapi-guard's per-VM socket exists only while the VM runs)`,
        `shut the VM down and use XAPI's socket (--socket, default ${DEFAULT_XAPI_SOCKET})`,
      );
    if (e instanceof XapiError && e.errorDescription[0] === 'UUID_INVALID')
      throw storeError(`vm:${uuid}: no such VM in the pool`);
    throw storeError(`vm:${uuid}: cannot read the power state: ${xapiProblem(e)}`);
  }
  if (powerState !== 'Halted')
    throw new CliError(
      `vm:${uuid} is not halted, nothing written: ${notHaltedReason(powerState)}`,
      ExitCode.STORE,
      "a VM's NVRAM is written only while it is halted: a running VM's varstored would overwrite the change",
    );
}
