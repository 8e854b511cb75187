import {
  Guids,
  guidEquals,
  guidToText,
  parseSignatureLists,
  secureBootValue,
  signatureTypeOf,
  utf16le,
  type SecureBootRule,
  type StoreState,
  type Variable,
} from '@vmsb/efi';
import { microsoftCertificates, describeCertificate, type MicrosoftCertificate } from '@vmsb/keys';
import type { NvramFormat } from '@vmsb/nvram/formats';
import { Limits } from '@vmsb/protocol';
import { createHash } from 'node:crypto';

/** XAPI's words for a VM's Secure Boot readiness, as far as its NVRAM decides them. */
export type Readiness = 'first_boot' | 'ready' | 'ready_no_dbx' | 'setup_mode' | 'certs_incomplete';

/** XenServer's certificate-check words. */
export type CertificatesVerdict = 'update_required' | 'update_ok' | 'unknown';

export type Generation = '2011' | '2023' | 'other';

export interface CertificateReport {
  readonly subject: string;
  readonly commonName: string | null;
  readonly issuer: string;
  /** SignatureOwner of the entry. */
  readonly owner: string;
  readonly sha256: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly expired: boolean;
  /** Microsoft's 2011 or 2023 CAs, or anyone else's certificate. */
  readonly generation: Generation;
  /** The Microsoft certificate this is (`kek-2011`, `db-windows-2023`, ...), else null. */
  readonly microsoftId: string | null;
  /** Always null here: an entry that does not parse is reported in its database's `problem`. */
  readonly problem: null;
}

export interface HashCount {
  /** Signature type, e.g. CERT_SHA256. */
  readonly type: string;
  readonly count: number;
}

export interface DatabaseReport {
  readonly present: boolean;
  /** Bytes of the value (0 when absent). */
  readonly size: number;
  readonly entries: number;
  readonly certificates: readonly CertificateReport[];
  readonly hashes: readonly HashCount[];
  /** Why the value is not a list of signature lists, or a certificate does not parse. */
  readonly problem: string | null;
}

export interface StatusReport {
  readonly store: string;
  readonly format: NvramFormat | null;
  readonly readiness: Readiness;
  /** setup: no PK (nothing enforced); user: PK enrolled. null on first boot. */
  readonly mode: 'setup' | 'user' | null;
  readonly secureBoot: {
    /** Signatures are checked at boot once the platform turns Secure Boot on. */
    readonly enforceable: boolean;
    readonly detail: string;
    /** Who decides SecureBoot for this kind of store: varstored's builtins (Xen) or OVMF's own driver (edk2). */
    readonly rule: SecureBootRule;
    /** edk2's SecureBootEnable setting, when the store carries it. */
    readonly secureBootEnable: boolean | null;
  };
  readonly pk: CertificateReport | { readonly problem: string } | null;
  readonly kek: DatabaseReport;
  readonly db: DatabaseReport;
  readonly dbx: DatabaseReport & { readonly headroom: number; readonly placeholderOnly: boolean };
  readonly microsoft: {
    readonly kek2011: boolean;
    readonly kek2023: boolean;
    readonly windows2011: boolean;
    readonly windows2023: boolean;
    readonly uefi2011: boolean;
    readonly uefi2023: boolean;
    readonly oprom2023: boolean;
  };
  /** Whether the 2011→2023 Microsoft rollover is still to be applied. */
  readonly certificates: CertificatesVerdict;
  /** Microsoft certificate ids the rollover would add (`kek-2023`, `db-windows-2023`, ...). */
  readonly missing2023: readonly string[];
  readonly variables: number;
  readonly warnings: readonly string[];
}

const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

function find(state: StoreState, name: string, guid: Uint8Array): Variable | undefined {
  const bytes = utf16le(name);
  return state.variables.find(
    (v) => guidEquals(v.guid, guid) && v.name.length === bytes.length && v.name.every((b, i) => b === bytes[i]),
  );
}

let microsoft: readonly MicrosoftCertificate[] | undefined;

function microsoftOf(sha256: string, spkiSha256: string | undefined): MicrosoftCertificate | undefined {
  microsoft ??= microsoftCertificates();
  return (
    microsoft.find((m) => m.sha256 === sha256) ??
    (spkiSha256 === undefined ? undefined : microsoft.find((m) => spkiOf(m) === spkiSha256))
  );
}

const spkiCache = new Map<string, string>();
function spkiOf(m: MicrosoftCertificate): string {
  let v = spkiCache.get(m.id);
  if (v === undefined) {
    v = describeCertificate(m.der).spkiSha256;
    spkiCache.set(m.id, v);
  }
  return v;
}

/**
 * Which code decides SecureBoot for a store in `format`: VARS blobs (files and XAPI) are served by
 * varstored under Xen; .fd and JSON stores by OVMF's own variable driver (QEMU).
 */
function secureBootRuleOf(format: NvramFormat | null): SecureBootRule {
  return format === 'ovmf-fd' || format === 'json' ? 'edk2' : 'varstored';
}

/**
 * Certificates parsed so far, by the SHA-256 of their DER: a pool's VMs hold the same few
 * certificates hundreds of times, and parsing one costs far more than hashing it.
 */
const parsedCertificates = new Map<string, ReturnType<typeof describeCertificate>>();
const PARSED_CERTIFICATES_MAX = 1024;

function parsedCertificate(der: Uint8Array): ReturnType<typeof describeCertificate> {
  const key = createHash('sha256').update(der).digest('hex');
  let info = parsedCertificates.get(key);
  if (info === undefined) {
    info = describeCertificate(der);
    if (parsedCertificates.size >= PARSED_CERTIFICATES_MAX) parsedCertificates.clear();
    parsedCertificates.set(key, info);
  }
  return info;
}

/** What an administrator needs to know about one certificate entry. */
export function certificateReport(
  der: Uint8Array,
  owner: Uint8Array,
  now: Date,
): CertificateReport | { problem: string } {
  let info;
  try {
    info = parsedCertificate(der);
  } catch (e) {
    return { problem: `an X.509 entry does not parse: ${e instanceof Error ? e.message : String(e)}` };
  }
  const ms = microsoftOf(info.sha256, info.spkiSha256);
  return {
    subject: info.subject,
    commonName: info.commonName ?? null,
    issuer: info.issuer,
    owner: guidToText(owner),
    sha256: info.sha256,
    notBefore: info.notBefore.toISOString(),
    notAfter: info.notAfter.toISOString(),
    expired: info.notAfter.getTime() < now.getTime(),
    generation: ms === undefined ? 'other' : ms.generation === 2011 ? '2011' : '2023',
    microsoftId: ms?.id ?? null,
    problem: null,
  };
}

export function databaseReport(v: Variable | undefined, now: Date): DatabaseReport {
  if (v === undefined) return { present: false, size: 0, entries: 0, certificates: [], hashes: [], problem: null };
  const parsed = parseSignatureLists(v.data);
  if (!parsed.ok)
    return { present: true, size: v.data.length, entries: 0, certificates: [], hashes: [], problem: parsed.reason };
  const certificates: CertificateReport[] = [];
  const hashes = new Map<string, number>();
  let entries = 0;
  const problems: string[] = [];
  for (const list of parsed.lists) {
    const info = signatureTypeOf(list.type);
    for (const s of list.signatures) {
      entries++;
      if (info?.kind === 'x509') {
        const r = certificateReport(s.data, s.owner, now);
        if (r.problem !== null) problems.push(r.problem);
        else certificates.push(r);
      } else {
        const type = info?.name ?? guidToText(list.type);
        hashes.set(type, (hashes.get(type) ?? 0) + 1);
      }
    }
  }
  return {
    present: true,
    size: v.data.length,
    entries,
    certificates,
    hashes: [...hashes].map(([type, count]) => ({ type, count })),
    problem: problems.length > 0 ? problems.join('; ') : null,
  };
}

/** XAPI's readiness rule (VM.get_secureboot_readiness) on the presence of PK, KEK, db and dbx. */
export function readinessOf(state: StoreState | undefined): Readiness {
  if (state === undefined) return 'first_boot';
  const has = (name: string, guid: Uint8Array): boolean => find(state, name, guid) !== undefined;
  if (!has('PK', Guids.GLOBAL_VARIABLE)) return 'setup_mode';
  if (!has('KEK', Guids.GLOBAL_VARIABLE) || !has('db', Guids.IMAGE_SECURITY_DATABASE)) return 'certs_incomplete';
  return has('dbx', Guids.IMAGE_SECURITY_DATABASE) ? 'ready' : 'ready_no_dbx';
}

/** The Microsoft 2023 certificates a store still needs: each 2011 CA it trusts, without its successor. */
export function missing2023(kek: DatabaseReport, db: DatabaseReport): string[] {
  const ids = new Set(
    [...kek.certificates, ...db.certificates].map((c) => c.microsoftId).filter((id): id is string => id !== null),
  );
  const missing: string[] = [];
  if (ids.has('kek-2011') && !ids.has('kek-2023')) missing.push('kek-2023');
  if (ids.has('db-windows-2011') && !ids.has('db-windows-2023')) missing.push('db-windows-2023');
  // Microsoft split the third-party UEFI CA in two: loaders (UEFI CA 2023) and option ROMs.
  if (ids.has('db-uefi-2011') && !ids.has('db-uefi-2023')) missing.push('db-uefi-2023');
  if (ids.has('db-uefi-2011') && !ids.has('db-oprom-2023')) missing.push('db-oprom-2023');
  return missing;
}

export function microsoftName(id: string): string {
  microsoft ??= microsoftCertificates();
  return microsoft.find((m) => m.id === id)?.name ?? id;
}

export function analyzeStore(
  state: StoreState | undefined,
  options: { store: string; format: NvramFormat | null; now: Date },
): StatusReport {
  const { now } = options;
  const warnings: string[] = [];
  const get = (name: string, guid: Uint8Array): Variable | undefined =>
    state === undefined ? undefined : find(state, name, guid);
  const pkVar = get('PK', Guids.GLOBAL_VARIABLE);
  const kek = databaseReport(get('KEK', Guids.GLOBAL_VARIABLE), now);
  const db = databaseReport(get('db', Guids.IMAGE_SECURITY_DATABASE), now);
  const dbxBase = databaseReport(get('dbx', Guids.IMAGE_SECURITY_DATABASE), now);

  let pk: StatusReport['pk'] = null;
  if (pkVar !== undefined) {
    const report = databaseReport(pkVar, now);
    if (report.problem !== null) pk = { problem: report.problem };
    else if (report.entries !== 1 || report.certificates.length !== 1)
      pk = { problem: `PK holds ${report.entries} entries; it must hold exactly one X.509 certificate` };
    else pk = report.certificates[0]!;
  }

  // A dbx whose only entry is the SHA-256 of nothing revokes nothing (virt-firmware's placeholder).
  const dbxVar = get('dbx', Guids.IMAGE_SECURITY_DATABASE);
  let placeholderOnly = false;
  if (dbxVar !== undefined) {
    const parsed = parseSignatureLists(dbxVar.data);
    if (parsed.ok) {
      const all = parsed.lists.flatMap((l) => l.signatures.map((s) => ({ type: l.type, data: s.data })));
      placeholderOnly =
        all.length > 0 &&
        all.every((e) => guidEquals(e.type, Guids.CERT_SHA256) && Buffer.from(e.data).toString('hex') === EMPTY_SHA256);
    }
  }
  const dbx = { ...dbxBase, headroom: Limits.DATA_MAX - dbxBase.size, placeholderOnly };

  const ids = new Set([...kek.certificates, ...db.certificates].map((c) => c.microsoftId));
  const ms = {
    kek2011: ids.has('kek-2011'),
    kek2023: ids.has('kek-2023'),
    windows2011: ids.has('db-windows-2011'),
    windows2023: ids.has('db-windows-2023'),
    uefi2011: ids.has('db-uefi-2011'),
    uefi2023: ids.has('db-uefi-2023'),
    oprom2023: ids.has('db-oprom-2023'),
  };
  const missing = state === undefined ? [] : missing2023(kek, db);
  const verdict: CertificatesVerdict =
    state === undefined ? 'unknown' : missing.length > 0 ? 'update_required' : 'update_ok';

  const sbEnableVar = get('SecureBootEnable', Guids.SECURE_BOOT_ENABLE_DISABLE);
  const secureBootEnable = sbEnableVar === undefined ? null : sbEnableVar.data[0] === 1;
  const rule = secureBootRuleOf(options.format);
  const ruleText =
    rule === 'varstored' ? "varstored's rule (Xen)" : "edk2's rule (OVMF's own variable store, as under QEMU)";
  const enforceable =
    state !== undefined &&
    secureBootValue(rule, {
      pkEnrolled: pkVar !== undefined,
      platformSecureBoot: true,
      secureBootEnable: sbEnableVar?.data[0],
    }) === 1;
  let detail: string;
  if (state === undefined) {
    detail = 'no NVRAM yet: the first boot provisions the keys (varstored applies its auth files)';
  } else if (pkVar === undefined) {
    detail = 'no PK: the firmware runs in setup mode and checks no signatures, even with Secure Boot turned on';
  } else if (rule === 'edk2') {
    detail = enforceable
      ? `${ruleText}: PK enrolled and SecureBootEnable is ${secureBootEnable === null ? 'absent (created enabled)' : '1'}: OVMF enforces signatures`
      : `${ruleText}: PK enrolled, but SecureBootEnable is not 1: OVMF does not enforce`;
  } else {
    detail = `${ruleText}: PK enrolled: signatures are enforced when the platform turns Secure Boot on (platform:secureboot=true)${secureBootEnable === null ? '' : '; SecureBootEnable is not consulted'}`;
  }
  const secureBoot: StatusReport['secureBoot'] = { enforceable, detail, rule, secureBootEnable };

  if (pk !== null && pk.problem !== null) warnings.push(`PK: ${pk.problem}`);
  for (const [name, r] of [
    ['KEK', kek],
    ['db', db],
    ['dbx', dbx],
  ] as const) {
    if (r.problem !== null) warnings.push(`${name}: ${r.problem}`);
  }
  const expired = [
    ...(pk !== null && pk.problem === null ? [{ where: 'PK', c: pk }] : []),
    ...kek.certificates.map((c) => ({ where: 'KEK', c })),
    ...db.certificates.map((c) => ({ where: 'db', c })),
  ].filter((x) => x.c.expired);
  for (const { where, c } of expired) {
    warnings.push(
      `${where}: "${c.commonName ?? c.subject}" expired on ${c.notAfter.slice(0, 10)} (firmware ignores expiry, but no new updates are signed with it)`,
    );
  }
  if (missing.length > 0)
    warnings.push(
      `Microsoft 2023 certificates missing: ${missing.map(microsoftName).join(', ')} (\`varstore certs update\`)`,
    );
  if (state !== undefined && pkVar !== undefined && !ms.uefi2011 && !ms.oprom2023)
    warnings.push(
      'db trusts no option-ROM CA (Microsoft UEFI CA 2011 or Option ROM UEFI CA 2023): the UEFI option ROMs of passed-through GPUs and NICs will not run (`varstore enroll --db <yours> --microsoft-db all`)',
    );
  if (state !== undefined && pkVar !== undefined && dbxVar === undefined)
    warnings.push('no dbx: no revoked boot loader is refused');
  if (placeholderOnly)
    warnings.push(
      'dbx holds only a placeholder entry (the SHA-256 of nothing): nothing is revoked (`varstore enroll --dbx bundled`)',
    );
  if (dbx.present && dbx.headroom < 4096)
    warnings.push(
      `dbx is ${dbx.size} bytes, ${dbx.headroom} below the ${Limits.DATA_MAX}-byte variable limit: later dbx updates may not fit`,
    );

  return {
    store: options.store,
    format: options.format,
    readiness: readinessOf(state),
    mode: state === undefined ? null : pkVar === undefined ? 'setup' : 'user',
    secureBoot,
    pk,
    kek,
    db,
    dbx,
    microsoft: ms,
    certificates: verdict,
    missing2023: missing,
    variables: state?.variables.length ?? 0,
    warnings,
  };
}
