import { guidFromText, guidToText } from '@vmsb/protocol';

export { guidFromText, guidToText };

/** GUID bytes (EFI memory order) of a GUID literal; throws on a malformed literal, so use it for constants only. */
export function guid(text: string): Uint8Array {
  const bytes = guidFromText(text);
  if (bytes === undefined) throw new TypeError(`not a GUID: ${text}`);
  return bytes;
}

/** Byte-exact GUID comparison (how UEFI matches vendor GUIDs). */
export function guidEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== 16 || b.length !== 16) return false;
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Well-known GUIDs, as 16 bytes in EFI memory order. The arrays are shared: treat them as read-only
 * (copy before handing one to code that may write into it).
 */
export const Guids = {
  /** EFI_GLOBAL_VARIABLE: PK, KEK, Boot####, SetupMode, SecureBoot, ... */
  GLOBAL_VARIABLE: guid('8be4df61-93ca-11d2-aa0d-00e098032b8c'),
  /** EFI_IMAGE_SECURITY_DATABASE_GUID: db, dbx, dbt, dbr. */
  IMAGE_SECURITY_DATABASE: guid('d719b2cb-3d3a-4596-a3bc-dad00e67656f'),
  /** EFI_HARDWARE_ERROR_VARIABLE: HwErrRec####. */
  HARDWARE_ERROR_VARIABLE: guid('414e6bdd-e47b-47cc-b244-bb61020cf516'),

  /** WIN_CERTIFICATE_UEFI_GUID.CertType of an EFI_VARIABLE_AUTHENTICATION_2 descriptor. */
  CERT_PKCS7: guid('4aafd29d-68df-49ee-8aa9-347d375665a7'),
  /** CertType of the deprecated counter-based EFI_VARIABLE_AUTHENTICATION. */
  CERT_TYPE_RSA2048_SHA256: guid('a7717414-c616-4977-9420-844712a735bf'),

  // EFI_SIGNATURE_LIST types (ImageAuthentication.h).
  CERT_SHA1: guid('826ca512-cf10-4ac9-b187-be01496631bd'),
  CERT_SHA224: guid('0b6e5233-a65c-44c9-9407-d9ab83bfc8bd'),
  CERT_SHA256: guid('c1c41626-504c-4092-aca9-41f936934328'),
  CERT_SHA384: guid('ff3e5307-9fd0-48c9-85f1-8ad56c701e01'),
  CERT_SHA512: guid('093e0fae-a6c4-4f50-9f1b-d41e2b89c19a'),
  CERT_RSA2048: guid('3c5766e8-269c-4e34-aa14-ed776e85b3b6'),
  CERT_RSA2048_SHA1: guid('67f8444f-8743-48f1-a328-1eaab8736080'),
  CERT_RSA2048_SHA256: guid('e2b36190-879b-4a3d-ad8d-f2e7bba32784'),
  CERT_X509: guid('a5c059a1-94e4-4aa7-87b5-ab155c2bf072'),
  CERT_X509_SHA256: guid('3bd2a492-96c0-4079-b420-fcf98ef103ed'),
  CERT_X509_SHA384: guid('7076876e-80c2-4ee6-aad2-28b349a6865b'),
  CERT_X509_SHA512: guid('446dbf63-2502-4cda-bcfa-2465d2b0fe9d'),
  CERT_SM3: guid('57347f87-7a9b-403a-b93c-dc4afb7a0ebc'),
  CERT_X509_SM3: guid('60d807e5-10b4-49a9-9331-e40437888d37'),

  // edk2-private Secure Boot variables (present in real NVRAMs; plain variables here).
  SECURE_BOOT_ENABLE_DISABLE: guid('f0a30bc7-af08-4556-99c4-001009c93a44'),
  CUSTOM_MODE_ENABLE: guid('c076ec0c-7028-4399-a072-71ee5c448b9f'),
  VENDOR_KEYS_NV: guid('9073e4e0-60ec-4b6e-9903-4c223c260f3c'),
  CERT_DB: guid('d9bee56e-75dc-49d9-b4d7-b534210f637a'),

  /** MemoryOverwriteRequestControl (TCG Platform Reset Attack Mitigation). */
  MEMORY_OVERWRITE_CONTROL: guid('e20939be-32d4-41be-a150-897f85d49829'),
  /** MemoryOverwriteRequestControlLock. */
  MEMORY_OVERWRITE_CONTROL_LOCK: guid('bb983ccf-151d-40e1-a07b-4a17be168292'),
  /** TCG2 physical presence: PPIBuffer, Tcg2PhysicalPresenceFlags, Tcg2PhysicalPresenceFlagsLock. */
  TCG2_PHYSICAL_PRESENCE: guid('9d1947eb-09bb-4780-a3cd-bea956e0e056'),

  /** shim's variables (MokList, SbatLevel, ...). */
  SHIM_LOCK: guid('605dab50-e046-4300-abb6-3dd810dd8b23'),

  // Signature owners.
  MICROSOFT: guid('77fa9abd-0359-4d32-bd60-28f4e78f784b'),
  CITRIX: guid('c0acc535-25c8-6446-925b-5dd7d0b2f5aa'),
} as const;

export type GuidName = keyof typeof Guids;
