import { readFileSync } from 'node:fs';
import { Attr, Attrs, countSignatures, Guids, parseSignatureLists } from '@vmsb/efi';
import { splitAuthenticatedVariable } from './authenticated-variable.js';
import { describeCertificate } from './certificate.js';
import { buildSignatureList, concatSignatureLists } from './signature-list.js';

/**
 * Microsoft's Secure Boot certificates and dbx update, vendored from microsoft/secureboot_objects
 * (BSD-2-Clause-Patent; see data/microsoft/License.txt and README.md). Files are read on first use.
 */

/** SignatureOwner of every entry Microsoft publishes, so later Microsoft updates de-duplicate against them. */
export const MICROSOFT_OWNER = '77fa9abd-0359-4d32-bd60-28f4e78f784b';

export type MicrosoftGeneration = 2011 | 2023;
export type MicrosoftRole = 'PK' | 'KEK' | 'db';
/** What a db CA signs: Windows boot managers, third-party UEFI loaders (shim, ...), or option ROMs. */
export type MicrosoftDbPurpose = 'windows' | 'uefi' | 'oprom';

export interface MicrosoftCertificate {
  /** Stable short identifier, e.g. `kek-2023`, `db-uefi-2011`. */
  readonly id: string;
  /** The subject CN, e.g. `Microsoft Corporation KEK 2K CA 2023`. */
  readonly name: string;
  readonly fileName: string;
  readonly generation: MicrosoftGeneration;
  readonly role: MicrosoftRole;
  /** For db certificates. */
  readonly purpose?: MicrosoftDbPurpose;
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SHA-256 of the DER, lower-case hex. */
  readonly sha256: string;
  readonly der: Uint8Array;
}

interface Entry {
  readonly id: string;
  readonly fileName: string;
  readonly generation: MicrosoftGeneration;
  readonly role: MicrosoftRole;
  readonly purpose?: MicrosoftDbPurpose;
}

const ENTRIES: readonly Entry[] = [
  { id: 'kek-2011', fileName: 'MicCorKEKCA2011_2011-06-24.der', generation: 2011, role: 'KEK' },
  { id: 'kek-2023', fileName: 'MicCorKEK2kCA2023.der', generation: 2023, role: 'KEK' },
  {
    id: 'db-windows-2011',
    fileName: 'MicWinProPCA2011_2011-10-19.der',
    generation: 2011,
    role: 'db',
    purpose: 'windows',
  },
  { id: 'db-uefi-2011', fileName: 'MicCorUEFCA2011_2011-06-27.der', generation: 2011, role: 'db', purpose: 'uefi' },
  { id: 'db-windows-2023', fileName: 'WindowsUEFICA2023.der', generation: 2023, role: 'db', purpose: 'windows' },
  { id: 'db-uefi-2023', fileName: 'MicUEFICA2023.der', generation: 2023, role: 'db', purpose: 'uefi' },
  { id: 'db-oprom-2023', fileName: 'MicOptionROMUEFICA2023.der', generation: 2023, role: 'db', purpose: 'oprom' },
  // The PK Microsoft signs KEK updates with for "Windows OEM Devices"; useful to verify those updates.
  { id: 'pk-windows-oem-devices', fileName: 'WindowsOEMDevicesPK.der', generation: 2023, role: 'PK' },
];

const DATA_DIR = new URL('../data/microsoft/', import.meta.url);

function readData(fileName: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(fileName, DATA_DIR)));
}

let certificates: readonly MicrosoftCertificate[] | undefined;

export interface MicrosoftCertificateFilter {
  readonly generation?: MicrosoftGeneration;
  readonly role?: MicrosoftRole;
  readonly purpose?: MicrosoftDbPurpose;
}

/** Microsoft's certificates, optionally filtered; KEK first, then db (2011 before 2023), then the PK. */
export function microsoftCertificates(filter: MicrosoftCertificateFilter = {}): readonly MicrosoftCertificate[] {
  certificates ??= Object.freeze(
    ENTRIES.map((e): MicrosoftCertificate => {
      const der = readData(e.fileName);
      const info = describeCertificate(der);
      return Object.freeze({
        ...e,
        name: info.commonName ?? info.subject,
        subject: info.subject,
        issuer: info.issuer,
        notBefore: info.notBefore,
        notAfter: info.notAfter,
        sha256: info.sha256,
        der,
      });
    }),
  );
  return certificates.filter(
    (c) =>
      (filter.generation === undefined || c.generation === filter.generation) &&
      (filter.role === undefined || c.role === filter.role) &&
      (filter.purpose === undefined || c.purpose === filter.purpose),
  );
}

/**
 * EFI_SIGNATURE_LISTs (one per certificate, owner Microsoft) of the certificates matching `filter`,
 * ready to be a KEK or db payload or appended to one. Throws when nothing matches.
 */
export function microsoftSignatureList(
  filter: MicrosoftCertificateFilter & { readonly role: MicrosoftRole },
): Uint8Array {
  const certs = microsoftCertificates(filter);
  if (certs.length === 0) throw new RangeError('no Microsoft certificate matches');
  return concatSignatureLists(
    certs.map((c) => buildSignatureList({ type: 'x509', certificates: [c.der], owner: MICROSOFT_OWNER })),
  );
}

/** Microsoft's signed dbx update, as published: apply it with SetVariable(dbx, image-security GUID, 0x67). */
export interface BundledDbxUpdate {
  /** The whole signed file (EFI_VARIABLE_AUTHENTICATION_2 + payload): the .auth to write. */
  readonly bytes: Uint8Array;
  readonly name: 'dbx';
  readonly guid: Uint8Array;
  /** NV|BS|RT|AT|APPEND_WRITE: Microsoft signs dbx updates as appends. */
  readonly attributes: number;
  readonly architecture: 'x64';
  readonly timestamp: Uint8Array;
  /** One EFI_CERT_SHA256 list, owner Microsoft. */
  readonly payload: Uint8Array;
  readonly hashCount: number;
  /** Where the file comes from. */
  readonly source: string;
}

let dbxUpdate: BundledDbxUpdate | undefined;

export function bundledDbxUpdate(): BundledDbxUpdate {
  if (dbxUpdate === undefined) {
    const bytes = readData('DBXUpdate-amd64.bin');
    const parts = splitAuthenticatedVariable(bytes);
    const parsed = parseSignatureLists(parts.payload);
    if (!parsed.ok) throw new TypeError(`DBXUpdate-amd64.bin: ${parsed.reason}`);
    const lists = parsed.lists;
    dbxUpdate = Object.freeze({
      bytes,
      name: 'dbx',
      guid: Guids.IMAGE_SECURITY_DATABASE.slice(),
      attributes: Attrs.NV_BS_RT_AT | Attr.APPEND_WRITE,
      architecture: 'x64',
      timestamp: parts.timestamp.slice(),
      payload: parts.payload.slice(),
      hashCount: countSignatures(lists),
      source: 'microsoft/secureboot_objects@06fe58a31d2d PostSignedObjects/DBX/amd64/DBXUpdate.bin',
    });
  }
  return dbxUpdate;
}

/** Architectures in Microsoft's dbx description. */
export type DbxArchitecture = 'x64' | 'ia32' | 'aarch64' | 'arm';

export interface DbxImageEntry {
  /** Authenticode SHA-256 of a revoked image, upper-case hex. */
  readonly authenticodeHash: string;
  readonly hashType: string;
  readonly filename: string;
  readonly description: string;
  readonly companyName: string;
  readonly dateOfAddition: string;
  readonly signingAuthority: string;
}

export interface DbxCertificateEntry {
  /** File name of the revoked certificate in Microsoft's repository. */
  readonly value: string;
  readonly subjectName: string;
  readonly issuerName: string;
  readonly thumbprint: string;
  readonly description: string;
  readonly dateOfAddition: string;
}

export interface DbxSvnEntry {
  /** The 32-byte SVN record, hex. */
  readonly value: string;
  readonly version: string;
  readonly filename: string;
  readonly guid: string;
  readonly description: string;
  readonly dateOfLastChange: string;
}

/** Microsoft's description of dbx content (`dbx_info_msft_latest.json`). */
export interface DbxInfo {
  readonly images: Readonly<Record<DbxArchitecture, readonly DbxImageEntry[]>>;
  readonly certificates: readonly DbxCertificateEntry[];
  readonly svns: readonly DbxSvnEntry[];
}

let dbxInfo: DbxInfo | undefined;

export function microsoftDbxInfo(): DbxInfo {
  if (dbxInfo === undefined) {
    const raw = JSON.parse(new TextDecoder().decode(readData('dbx_info_msft_latest.json'))) as Partial<DbxInfo>;
    const images = raw.images;
    if (images === undefined || !Array.isArray(raw.certificates) || !Array.isArray(raw.svns)) {
      throw new TypeError('dbx_info_msft_latest.json lacks images, certificates or svns');
    }
    for (const arch of ['x64', 'ia32', 'aarch64', 'arm'] as const) {
      if (!Array.isArray(images[arch])) throw new TypeError(`dbx_info_msft_latest.json has no ${arch} images`);
    }
    dbxInfo = raw as DbxInfo;
  }
  return dbxInfo;
}

/**
 * The EFI_CERT_SHA256 list (owner Microsoft) of the revoked images for an architecture, in
 * Microsoft's order: for x64 byte-identical to the bundled update's payload.
 */
export function microsoftDbxSignatureList(architecture: DbxArchitecture): Uint8Array {
  const entries = microsoftDbxInfo().images[architecture];
  const sha256 = entries.filter((e) => e.hashType.toUpperCase() === 'SHA256').map((e) => e.authenticodeHash);
  return buildSignatureList({ type: 'sha256', hashes: sha256, owner: MICROSOFT_OWNER });
}
