/**
 * Shared set-up of the compatibility tools' end-to-end tests: real keys and .auth files
 * (openssl, efitools), and per test an xapi-guard double — a real HTTP server on a Unix socket
 * standing in for xapi-guard and XAPI — holding the VM's NVRAM. The exported state is live.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Variable } from '@vmsb/efi';
import { startGuardDouble, type GuardDouble } from '@vmsb/xapi/testing';
import { afterAll, afterEach, beforeAll, vi } from 'vitest';
import {
  GLOBAL,
  IMAGE_SECURITY,
  VENDOR,
  assertBuilt,
  authPayload,
  authTimestamp,
  makeSecureBootKeys,
  nvramOf,
  runTool,
  variable,
  type SecureBootKeys,
  type ToolName,
  type ToolRun,
} from './support.js';

export const VM = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
/** A `varstore-ls` line: lower-case GUID, one space, printable ASCII. */
export const LINE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} [\x20-\x7e]*$/;
/** The variables the C tools' start (setup_variables) adds to any VM. */
export const C_BUILTIN_LINES = ['SignatureSupport', 'SetupMode', 'AuditMode', 'DeployedMode', 'SecureBoot'].map(
  (n) => `${GLOBAL} ${n}`,
);
export const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);

export let work: string;
export let keys: SecureBootKeys;
export let guard: GuardDouble;
export let sock: string;

/** Registers the file's hooks: keys once, the double closed after each test. */
export function useCompatHarness(): void {
  // Each test spawns several Node processes; a loaded 2-core machine makes that slow.
  vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });
  beforeAll(() => {
    assertBuilt();
    work = mkdtempSync(join(tmpdir(), 'vmsb-compat-'));
    keys = makeSecureBootKeys(join(work, 'keys'));
  });
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });
  afterEach(async () => {
    await guard?.close();
  });
}

/** Starts the double for VM with these stored variables (none: a VM that never booted). */
export async function startVm(variables?: readonly Variable[], socketPath?: string): Promise<void> {
  sock = socketPath ?? join(work, `xapi-${Math.random().toString(36).slice(2)}.sock`);
  guard = await startGuardDouble({
    socketPath: sock,
    vmUuid: VM,
    ...(variables ? { nvram: { 'EFI-variables': nvramOf(variables) } } : {}),
  });
}

/** A tool against the double's socket. */
export function tool(name: ToolName, ...args: string[]): Promise<ToolRun> {
  return runTool(name, ['-s', sock, ...args]);
}

/** PK, KEK, db and dbx as the generated .auth files would have stored them. */
export function secureBootVariables(): Variable[] {
  return [
    variable('PK', GLOBAL, 0x27, authPayload(keys.auth.PK), authTimestamp(keys.auth.PK)),
    variable('KEK', GLOBAL, 0x27, authPayload(keys.auth.KEK), authTimestamp(keys.auth.KEK)),
    variable('db', IMAGE_SECURITY, 0x27, authPayload(keys.auth.db), authTimestamp(keys.auth.db)),
    variable('dbx', IMAGE_SECURITY, 0x27, authPayload(keys.auth.dbx), authTimestamp(keys.auth.dbx)),
  ];
}

export function otherVariables(): Variable[] {
  return [
    variable('Boot0000', GLOBAL, 7, Uint8Array.of(1, 0, 0, 0, 0x2c, 0)),
    variable('BootOrder', GLOBAL, 7, Uint8Array.of(0, 0)),
    variable('Tésté', VENDOR, 7, Uint8Array.of(1)),
    variable('ŁX', VENDOR, 7, Uint8Array.of(2)),
    variable('Blob', VENDOR, 3, ALL_BYTES),
  ];
}

/** NVRAM writes so far. */
export function setCalls(): number {
  return guard.callsOf('VM.set_NVRAM_EFI_variables').length;
}
