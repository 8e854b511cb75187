import { EfiStatus, statusMeaning, statusName } from '@vmsb/protocol';

/** Exit codes of `varstore` (documented in the README). */
export const ExitCode = {
  /** Done; the check passed; the update would be accepted. */
  OK: 0,
  /** Refused or failed: an EFI error from the store, a rejected signature, a missing variable. */
  FAILED: 1,
  /** The command line is wrong. */
  USAGE: 2,
  /** A store or input file cannot be read, decoded or written (or XAPI cannot be reached). */
  STORE: 3,
  /** `certs check`: at least one store needs the 2023 certificate update. */
  UPDATE_REQUIRED: 4,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** An error the command reports as one message (plus an optional hint) and an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue = ExitCode.FAILED,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export function usageError(message: string, hint?: string): CliError {
  return new CliError(message, ExitCode.USAGE, hint);
}

export function storeError(message: string, hint?: string): CliError {
  return new CliError(message, ExitCode.STORE, hint);
}

/** The most likely fix for an EFI status returned by SetVariable. */
const FIXES: Partial<Record<string, string>> = {
  SECURITY_VIOLATION:
    'the update must be signed by a key allowed to sign this variable (PK for PK and KEK; PK or a KEK certificate for db/dbx) with a timestamp later than the stored one; check it with `varstore verify <file.auth> --var <name> --store <store>`',
  INVALID_PARAMETER:
    'check the attributes (PK, KEK, db and dbx need NV|BS|RT|AT = 0x27, and an append adds 0x40; an existing variable keeps its attributes), the name and GUID, and that the payload is a well-formed signature list',
  WRITE_PROTECTED:
    'the variable is read-only: the store computes SetupMode, SecureBoot, DeployedMode, AuditMode, VendorKeys and SignatureSupport itself; change them by enrolling or removing PK, or through the platform settings',
  OUT_OF_RESOURCES:
    'the value exceeds 57344 bytes, or the store its 131072 bytes (128 counted per variable): remove entries or variables you do not need (dbx grows with every revocation update)',
  NOT_FOUND: 'there is no such variable: list them with `varstore ls <store>` and check the GUID (--guid)',
  UNSUPPORTED:
    'the attributes are not supported: AUTHENTICATED_WRITE_ACCESS (0x10), ENHANCED_AUTHENTICATED_ACCESS (0x80) and HARDWARE_ERROR_RECORD (0x08) are refused',
  DEVICE_ERROR: 'the store could not be written: check the file or the XAPI connection and retry',
  ACCESS_DENIED: 'the store refused the operation in its current state',
};

export interface StatusExplanation {
  readonly name: string;
  /** One line: what the status means. */
  readonly meaning: string;
  /** One line: what usually fixes it, when known. */
  readonly fix?: string;
}

export function explainStatus(status: bigint): StatusExplanation {
  const name = statusName(status);
  const fix = FIXES[name];
  return { name, meaning: statusMeaning(status), ...(fix !== undefined ? { fix } : {}) };
}

/** "EFI_SECURITY_VIOLATION: <meaning>" — the first line of a refused write. */
export function statusLine(status: bigint): string {
  const e = explainStatus(status);
  return `EFI_${e.name}: ${e.meaning}`;
}

export function isSuccess(status: bigint): boolean {
  return status === EfiStatus.SUCCESS;
}

/** A message from anything thrown. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
