/**
 * EFI_STATUS values as UEFI defines them for x64 (UINTN = 64 bits): errors have the top bit set.
 * Carried as bigint because they are u64 on the wire.
 */
const ERROR_BIT = 0x8000_0000_0000_0000n;

export const EfiStatus = {
  SUCCESS: 0n,
  LOAD_ERROR: ERROR_BIT | 1n,
  INVALID_PARAMETER: ERROR_BIT | 2n,
  UNSUPPORTED: ERROR_BIT | 3n,
  BAD_BUFFER_SIZE: ERROR_BIT | 4n,
  BUFFER_TOO_SMALL: ERROR_BIT | 5n,
  NOT_READY: ERROR_BIT | 6n,
  DEVICE_ERROR: ERROR_BIT | 7n,
  WRITE_PROTECTED: ERROR_BIT | 8n,
  OUT_OF_RESOURCES: ERROR_BIT | 9n,
  VOLUME_CORRUPTED: ERROR_BIT | 10n,
  VOLUME_FULL: ERROR_BIT | 11n,
  NO_MEDIA: ERROR_BIT | 12n,
  MEDIA_CHANGED: ERROR_BIT | 13n,
  NOT_FOUND: ERROR_BIT | 14n,
  ACCESS_DENIED: ERROR_BIT | 15n,
  NO_RESPONSE: ERROR_BIT | 16n,
  NO_MAPPING: ERROR_BIT | 17n,
  TIMEOUT: ERROR_BIT | 18n,
  NOT_STARTED: ERROR_BIT | 19n,
  ALREADY_STARTED: ERROR_BIT | 20n,
  ABORTED: ERROR_BIT | 21n,
  SECURITY_VIOLATION: ERROR_BIT | 26n,
} as const;

export type EfiStatusName = keyof typeof EfiStatus;
export type EfiStatusValue = bigint;

/** What each status means to someone managing a VM's variables, in one line. */
const MEANINGS: Record<EfiStatusName, string> = {
  SUCCESS: 'the operation completed',
  LOAD_ERROR: 'the image failed to load',
  INVALID_PARAMETER: 'a parameter was invalid (bad name, attributes or unknown previous variable)',
  UNSUPPORTED: 'the operation or attribute combination is not supported',
  BAD_BUFFER_SIZE: 'the buffer size was wrong for the request',
  BUFFER_TOO_SMALL: "the caller's buffer is too small; the required size was returned",
  NOT_READY: 'there is no data pending',
  DEVICE_ERROR: 'the variable store failed (persistence error or over-long name)',
  WRITE_PROTECTED: 'the variable is read-only, or cannot be written at runtime',
  OUT_OF_RESOURCES: 'the variable store is full or the variable is too large',
  VOLUME_CORRUPTED: 'the store is corrupted',
  VOLUME_FULL: 'the store is full',
  NO_MEDIA: 'no medium',
  MEDIA_CHANGED: 'the medium changed',
  NOT_FOUND: 'no such variable (or the end of the enumeration)',
  ACCESS_DENIED: 'access denied',
  NO_RESPONSE: 'no response',
  NO_MAPPING: 'no mapping',
  TIMEOUT: 'timed out',
  NOT_STARTED: 'not started',
  ALREADY_STARTED: 'already started',
  ABORTED: 'aborted',
  SECURITY_VIOLATION: 'the authenticated write failed verification (signature, signer or timestamp)',
};

const BY_VALUE = new Map<bigint, EfiStatusName>(
  (Object.entries(EfiStatus) as [EfiStatusName, bigint][]).map(([name, value]) => [value, name]),
);

/** The status's UEFI name without the EFI_ prefix, or its hex value when it has no name. */
export function statusName(status: bigint): string {
  return BY_VALUE.get(status) ?? `0x${status.toString(16).padStart(16, '0')}`;
}

/** A one-line explanation of the status. */
export function statusMeaning(status: bigint): string {
  const name = BY_VALUE.get(status);
  return name === undefined ? 'an unknown status' : MEANINGS[name];
}

export function isError(status: bigint): boolean {
  return (status & ERROR_BIT) !== 0n;
}
