/** EFI variable attribute bits (UefiMultiPhase.h). */
export const Attr = {
  NON_VOLATILE: 0x01,
  BOOTSERVICE_ACCESS: 0x02,
  RUNTIME_ACCESS: 0x04,
  HARDWARE_ERROR_RECORD: 0x08,
  /** Deprecated counter-based authentication; every write that sets it is refused. */
  AUTHENTICATED_WRITE_ACCESS: 0x10,
  TIME_BASED_AUTHENTICATED_WRITE_ACCESS: 0x20,
  /** Request-only: never stored. */
  APPEND_WRITE: 0x40,
  /** UEFI 2.8; edk2 does not define it, so it is a reserved bit. */
  ENHANCED_AUTHENTICATED_ACCESS: 0x80,
} as const;

/** Common combinations. */
export const Attrs = {
  BS: Attr.BOOTSERVICE_ACCESS,
  NV_BS: Attr.NON_VOLATILE | Attr.BOOTSERVICE_ACCESS,
  BS_RT: Attr.BOOTSERVICE_ACCESS | Attr.RUNTIME_ACCESS,
  NV_BS_RT: Attr.NON_VOLATILE | Attr.BOOTSERVICE_ACCESS | Attr.RUNTIME_ACCESS,
  /** PK, KEK, db, dbx, dbt: 0x27. */
  NV_BS_RT_AT:
    Attr.NON_VOLATILE | Attr.BOOTSERVICE_ACCESS | Attr.RUNTIME_ACCESS | Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS,
} as const;

/** edk2's EFI_VARIABLE_ATTRIBUTES_MASK: the bits SetVariable understands (AW is handled separately). */
export const ATTRIBUTES_MASK =
  Attr.NON_VOLATILE |
  Attr.BOOTSERVICE_ACCESS |
  Attr.RUNTIME_ACCESS |
  Attr.HARDWARE_ERROR_RECORD |
  Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS |
  Attr.APPEND_WRITE;

/** The bits a stored variable may carry. */
export const STORED_ATTRIBUTES_MASK = ATTRIBUTES_MASK & ~Attr.APPEND_WRITE;

export function hasTimeBasedAttr(attributes: number): boolean {
  return (attributes & Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS) !== 0;
}

export function hasAppendAttr(attributes: number): boolean {
  return (attributes & Attr.APPEND_WRITE) !== 0;
}

export function isNonVolatile(attributes: number): boolean {
  return (attributes & Attr.NON_VOLATILE) !== 0;
}

export function hasRuntimeAccess(attributes: number): boolean {
  return (attributes & Attr.RUNTIME_ACCESS) !== 0;
}

const SHORT_NAMES: readonly [number, string][] = [
  [Attr.NON_VOLATILE, 'NV'],
  [Attr.BOOTSERVICE_ACCESS, 'BS'],
  [Attr.RUNTIME_ACCESS, 'RT'],
  [Attr.HARDWARE_ERROR_RECORD, 'HR'],
  [Attr.AUTHENTICATED_WRITE_ACCESS, 'AW'],
  [Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS, 'AT'],
  [Attr.APPEND_WRITE, 'AP'],
  [Attr.ENHANCED_AUTHENTICATED_ACCESS, 'EA'],
];

/** Attributes as `NV|BS|RT|AT`; unknown bits as hex; `0` for none. */
export function formatAttributes(attributes: number): string {
  const value = attributes >>> 0;
  const parts: string[] = [];
  let rest = value;
  for (const [bit, name] of SHORT_NAMES) {
    if ((value & bit) !== 0) {
      parts.push(name);
      rest &= ~bit;
    }
  }
  if (rest !== 0) parts.push(`0x${(rest >>> 0).toString(16)}`);
  return parts.length === 0 ? '0' : parts.join('|');
}
