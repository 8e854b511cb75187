import { buildAuthentication2 } from '@vmsb/auth';
import { Attr, Attrs, fromUtf16le, Guids, guidToText, parseSignatureLists, signatureTypeOf, utf16le } from '@vmsb/efi';
import {
  buildSignatureList,
  concatSignatureLists,
  MICROSOFT_OWNER,
  microsoftCertificates,
  describeCertificate,
  type MicrosoftCertificate,
} from '@vmsb/keys';
import { EfiStatus } from '@vmsb/protocol';
import type { Change, EditSession } from './session.js';
import { usageError } from './errors.js';
import { printable } from './output.js';
import { hex, nameText } from './command.js';
import { isSignatureDatabase } from './names.js';

export type MicrosoftKekChoice = 'none' | '2011' | '2023' | 'all';
export type MicrosoftDbChoice = 'none' | 'windows' | 'uefi' | 'oprom' | 'all';

export function parseKekChoice(text: string | undefined): MicrosoftKekChoice | undefined {
  if (text === undefined) return undefined;
  if (!['none', '2011', '2023', 'all'].includes(text))
    throw usageError(`--microsoft-kek ${JSON.stringify(text)}: use none, 2011, 2023 or all`);
  return text as MicrosoftKekChoice;
}

/** Values of --microsoft-db (repeatable, or comma-separated). */
export function parseDbChoices(values: readonly string[]): MicrosoftDbChoice[] | undefined {
  if (values.length === 0) return undefined;
  const out: MicrosoftDbChoice[] = [];
  for (const v of values.flatMap((x) => x.split(','))) {
    if (!['none', 'windows', 'uefi', 'oprom', 'all'].includes(v))
      throw usageError(`--microsoft-db ${JSON.stringify(v)}: use none, windows, uefi, oprom or all`);
    out.push(v as MicrosoftDbChoice);
  }
  if (out.includes('none') && out.length > 1)
    throw usageError('--microsoft-db none cannot be combined with other choices');
  return out;
}

/** Microsoft's KEK certificates for a choice: the 2011 CA, the 2023 CA, or both. */
export function microsoftKeks(choice: MicrosoftKekChoice): readonly MicrosoftCertificate[] {
  if (choice === 'none') return [];
  return microsoftCertificates({ role: 'KEK' }).filter((c) => choice === 'all' || String(c.generation) === choice);
}

/**
 * Microsoft's db CAs for the purposes chosen, both generations where there are two: windows = the
 * Windows Production PCA 2011 and the Windows UEFI CA 2023; uefi = the third-party UEFI CA 2011 and
 * UEFI CA 2023; oprom = the Option ROM UEFI CA 2023 (option ROMs were signed by the UEFI CA 2011).
 */
export function microsoftDbs(choices: readonly MicrosoftDbChoice[]): readonly MicrosoftCertificate[] {
  if (choices.includes('none')) return [];
  const purposes = choices.includes('all') ? ['windows', 'uefi', 'oprom'] : choices;
  return microsoftCertificates({ role: 'db' }).filter((c) => c.purpose !== undefined && purposes.includes(c.purpose));
}

/** Signature lists of Microsoft certificates, owned by Microsoft's GUID (so later updates de-duplicate). */
export function microsoftLists(certs: readonly MicrosoftCertificate[]): Uint8Array {
  return concatSignatureLists(
    certs.map((c) => buildSignatureList({ type: 'x509', certificates: [c.der], owner: MICROSOFT_OWNER })),
  );
}

/** An EFI_VARIABLE_AUTHENTICATION_2 with no signature around `payload` (accepted in setup and permissive modes). */
export function unsignedUpdate(timestamp: Uint8Array, payload: Uint8Array): Uint8Array {
  return buildAuthentication2(timestamp, new Uint8Array(0), payload);
}

export const SecureBootVariables = {
  PK: { name: utf16le('PK'), guid: Guids.GLOBAL_VARIABLE },
  KEK: { name: utf16le('KEK'), guid: Guids.GLOBAL_VARIABLE },
  db: { name: utf16le('db'), guid: Guids.IMAGE_SECURITY_DATABASE },
  dbx: { name: utf16le('dbx'), guid: Guids.IMAGE_SECURITY_DATABASE },
} as const;

export type SecureBootVariable = keyof typeof SecureBootVariables;

/** Writes a Secure Boot database through the session: replace, or append (de-duplicated by the store). */
export function writeDatabase(
  session: EditSession,
  variable: SecureBootVariable,
  data: { readonly auth: Uint8Array } | { readonly payload: Uint8Array; readonly timestamp: Uint8Array },
  append: boolean,
): { status: bigint; reason?: string } {
  const { name, guid } = SecureBootVariables[variable];
  const bytes = 'auth' in data ? data.auth : unsignedUpdate(data.timestamp, data.payload);
  return session.set(name, guid, Attrs.NV_BS_RT_AT | (append ? Attr.APPEND_WRITE : 0), bytes);
}

/** One entry of a signature database, for diffs: a certificate's CN, or the type and hash. */
function entryLabels(data: Uint8Array | undefined): string[] {
  if (data === undefined) return [];
  const parsed = parseSignatureLists(data);
  if (!parsed.ok) return [`(not signature lists: ${data.length} bytes)`];
  const labels: string[] = [];
  for (const list of parsed.lists) {
    const info = signatureTypeOf(list.type);
    for (const s of list.signatures) {
      if (info?.kind === 'x509') {
        try {
          const c = describeCertificate(s.data);
          labels.push(`${printable(c.commonName ?? c.subject)} [${guidToText(s.owner).slice(0, 8)}]`);
        } catch {
          labels.push('(unparseable certificate)');
        }
      } else {
        labels.push(`${info?.name ?? guidToText(list.type)} ${hex(s.data).slice(0, 16)}…`);
      }
    }
  }
  return labels;
}

/** What a change did to a signature database: entries added and removed (multiset difference). */
export function databaseDiff(change: Change): { added: string[]; removed: string[] } {
  const before = entryLabels(change.before?.data);
  const after = entryLabels(change.after?.data);
  const count = (list: string[]): Map<string, number> =>
    list.reduce((m, l) => m.set(l, (m.get(l) ?? 0) + 1), new Map<string, number>());
  const b = count(before);
  const a = count(after);
  const added: string[] = [];
  const removed: string[] = [];
  for (const [label, n] of a) for (let i = 0; i < n - (b.get(label) ?? 0); i++) added.push(label);
  for (const [label, n] of b) for (let i = 0; i < n - (a.get(label) ?? 0); i++) removed.push(label);
  return { added, removed };
}

/** A session's changes as data (--json): per variable, the action, sizes and database entries added and removed. */
export function changesJson(changes: readonly Change[]): unknown[] {
  return changes.map((c) => {
    const diff = isSignatureDatabase(c.name, c.guid) ? databaseDiff(c) : undefined;
    return {
      name: fromUtf16le(c.name),
      guid: guidToText(c.guid),
      action: c.before === undefined ? 'create' : c.after === undefined ? 'delete' : 'update',
      sizeBefore: c.before?.data.length ?? 0,
      sizeAfter: c.after?.data.length ?? 0,
      added: diff?.added ?? [],
      removed: diff?.removed ?? [],
    };
  });
}

/** Lines describing a session's changes, for dry runs and reports. */
export function describeChanges(changes: readonly Change[]): string[] {
  const lines: string[] = [];
  for (const c of changes) {
    const label = nameText({ name: c.name });
    const verb = c.before === undefined ? 'create' : c.after === undefined ? 'delete' : 'update';
    lines.push(`${verb} ${label}: ${c.before?.data.length ?? 0} → ${c.after?.data.length ?? 0} bytes`);
    if (!isSignatureDatabase(c.name, c.guid)) continue;
    const { added, removed } = databaseDiff(c);
    for (const [sign, entries] of [
      ['-', removed],
      ['+', added],
    ] as const) {
      // Certificates one by one; hashes (a dbx update adds hundreds) counted per type.
      const hashes = new Map<string, number>();
      for (const e of entries) {
        const hash = /^(CERT_\S+) [0-9a-f]+…$/.exec(e);
        if (hash !== null) hashes.set(hash[1]!, (hashes.get(hash[1]!) ?? 0) + 1);
        else lines.push(`  ${sign} ${e}`);
      }
      for (const [type, n] of hashes)
        lines.push(
          n <= 3
            ? entries
                .filter((e) => e.startsWith(`${type} `))
                .map((e) => `  ${sign} ${e}`)
                .join('\n')
            : `  ${sign} ${n} ${type} hashes`,
        );
    }
  }
  return lines;
}

/** Why changing these variables can trip BitLocker (or anything sealed to PCR 7). */
export const PCR7_WARNING =
  'changing PK, KEK, db or dbx changes what the firmware measures into TPM PCR 7: a guest whose BitLocker (or any secret sealed to PCR 7) depends on it will ask for its recovery key at the next boot. Suspend BitLocker in the guest first (manage-bde -protectors -disable C: -RebootCount 1) and have the recovery key at hand.';

export function isSuccess(status: bigint): boolean {
  return status === EfiStatus.SUCCESS;
}
