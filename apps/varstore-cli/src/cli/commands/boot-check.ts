import { Guids, guidEquals, utf16le, type StoreState, type Variable } from '@vmsb/efi';
import { MICROSOFT_OWNER, buildSignatureList, microsoftCertificates, type MicrosoftCertificate } from '@vmsb/keys';
import { verifyImage, type DatabaseMatch, type ImageVerdict, type SignatureCheck } from '@vmsb/pe';
import { loadStore, type Command } from '../command.js';
import { CliError, ExitCode, usageError } from '../errors.js';
import { readInput } from '../inputs.js';
import { bootCheckPool } from '../pool/boot-check.js';
import { isPoolSelection, POOL_HELP } from '../pool/selector.js';
import { printable, type Output } from '../output.js';

/** PE/COFF images can be large (unified kernel images); they are read whole. */
const MAX_IMAGE_SIZE = 512 * 1024 * 1024;

function find(state: StoreState, name: string, guid: Uint8Array): Variable | undefined {
  const bytes = utf16le(name);
  return state.variables.find((v) => guidEquals(v.guid, guid) && Buffer.compare(v.name, bytes) === 0);
}

export interface BootCheckResult {
  readonly image: string;
  readonly store: string;
  readonly allowed: boolean;
  readonly sha256: string | null;
  readonly reason: string;
  readonly signed: boolean;
  /** The signature (1-based, in the image's certificate table) that decided, or null. */
  readonly decidedBy: number | null;
  readonly match: DatabaseMatch | null;
  /** What would make a refused image boot; null when allowed. */
  readonly remedy: string | null;
  readonly signatures: readonly (Omit<SignatureCheck, 'index'> & { readonly number: number })[];
}

/** Microsoft db certificates that are not in db and would let the image run. */
function microsoftRemedies(
  bytes: Uint8Array,
  db: Uint8Array | undefined,
  dbx: Uint8Array | undefined,
): MicrosoftCertificate[] {
  const present = db === undefined ? undefined : Buffer.from(db);
  const out: MicrosoftCertificate[] = [];
  for (const cert of microsoftCertificates({ role: 'db' })) {
    if (present !== undefined && present.indexOf(Buffer.from(cert.der)) >= 0) continue;
    const list = buildSignatureList({ type: 'x509', certificates: [cert.der], owner: MICROSOFT_OWNER });
    if (verifyImage(bytes, { db: list, dbx }).allowed) out.push(cert);
  }
  return out;
}

function remedyFor(
  verdict: ImageVerdict,
  bytes: Uint8Array,
  dbs: { db: Uint8Array | undefined; dbx: Uint8Array | undefined },
  store: string,
  image: string,
): string {
  if (verdict.sha256 === null) return 'none: firmware cannot verify this file as a PE/COFF image';
  if (verdict.match?.database === 'dbx') {
    return 'none from db: dbx revokes it and dbx wins over db; boot a build signed after the revocation (dbx entries are never removed by updates)';
  }
  if (verdict.signed && verdict.reason.startsWith('the certificate table is corrupt'))
    return 'none: re-sign the image so that its certificate table is well formed';
  const ms = microsoftRemedies(bytes, dbs.db, dbs.dbx);
  if (ms.length > 0) {
    const purposes = [...new Set(ms.map((c) => c.purpose).filter((p) => p !== undefined))];
    return `enroll ${ms.map((c) => c.name).join(' or ')} in db (\`varstore enroll ${store} --microsoft-db ${purposes.join(',')}\` replaces db: name your own db certificates with --db too)`;
  }
  const signer = verdict.signatures.find((s) => s.signer !== null)?.signer ?? undefined;
  const hash = `add its hash to db: \`varstore esl --pe ${image} --owner <guid> --out image.esl && varstore set ${store} db --append --esl image.esl\``;
  return signer === undefined
    ? hash
    : `enroll the certificate of "${signer.issuer}" (which issued its signer) in db, or ${hash}`;
}

function describeMatch(m: DatabaseMatch): string {
  if (m.certificate !== undefined) return `${m.database} ${m.type} "${m.certificate.subject}" (owner ${m.owner})`;
  if (m.revokedCertificate !== undefined)
    return `${m.database} ${m.type} ${m.hash} = TBS of "${m.revokedCertificate.subject}" (owner ${m.owner})`;
  return `${m.database} ${m.type} ${m.hash ?? ''} (owner ${m.owner})`;
}

function commonName(subject: string): string {
  return /(?:^|, )CN=([^,]*)/.exec(subject)?.[1] ?? subject;
}

function printResult(out: Output, r: BootCheckResult): void {
  out.line(
    `${out.glyph(r.allowed ? 'ok' : 'bad')} ${printable(r.image)}: ${r.allowed ? 'allowed' : 'refused'}: ${r.reason}`,
  );
  const rows: [string, string][] = [];
  if (r.sha256 !== null) rows.push(['    sha256', r.sha256]);
  if (r.match !== null) rows.push(['    matched', describeMatch(r.match)]);
  for (const s of r.signatures) {
    const who = s.signer === null ? '' : `${commonName(s.signer.subject)} (issuer ${commonName(s.signer.issuer)}): `;
    rows.push([`    signature ${s.number}`, `${s.outcome}: ${printable(who)}${s.detail}`]);
  }
  if (r.remedy !== null) rows.push(['    to boot it', r.remedy]);
  out.fields(rows);
}

/** The verdict on one image for one store's content (a store with NVRAM). */
export function checkImage(state: StoreState, storeText: string, image: string, bytes: Uint8Array): BootCheckResult {
  const pk = find(state, 'PK', Guids.GLOBAL_VARIABLE);
  const sbEnable = find(state, 'SecureBootEnable', Guids.SECURE_BOOT_ENABLE_DISABLE);
  const dbs = {
    db: find(state, 'db', Guids.IMAGE_SECURITY_DATABASE)?.data,
    dbx: find(state, 'dbx', Guids.IMAGE_SECURITY_DATABASE)?.data,
    dbt: find(state, 'dbt', Guids.IMAGE_SECURITY_DATABASE)?.data,
  };
  const verdict = verifyImage(bytes, dbs);
  let allowed = verdict.allowed;
  let reason = verdict.reason;
  if (pk === undefined) {
    allowed = true;
    reason = `setup mode (no PK): the firmware checks no signatures (in user mode: ${verdict.allowed ? 'allowed' : 'refused'}, ${verdict.reason})`;
  } else if (sbEnable !== undefined && sbEnable.data[0] === 0) {
    allowed = true;
    reason = `SecureBootEnable is 0: OVMF does not enforce (with it on: ${verdict.allowed ? 'allowed' : 'refused'}, ${verdict.reason})`;
  }
  return {
    image,
    store: storeText,
    allowed,
    sha256: verdict.sha256,
    reason,
    signed: verdict.signed,
    decidedBy: verdict.decidedBy === null ? null : verdict.decidedBy + 1,
    match: verdict.match,
    remedy: allowed ? null : remedyFor(verdict, bytes, dbs, storeText, image),
    signatures: verdict.signatures.map(({ index, ...s }) => ({ number: index + 1, ...s })),
  };
}

/** Reads the images named on the command line (at most one may be `-`). */
async function readImages(images: readonly string[]): Promise<{ path: string; bytes: Uint8Array }[]> {
  const out: { path: string; bytes: Uint8Array }[] = [];
  for (const path of images) out.push({ path, bytes: await readInput(path, 'image', MAX_IMAGE_SIZE) });
  return out;
}

export const bootCheck: Command = {
  name: 'boot-check',
  summary: "would this VM's firmware run these EFI images under Secure Boot? (edk2's rules)",
  help: `usage: varstore boot-check <store>|vm:all <image.efi>... [--json] [--socket <path>] [--jobs <n>]

For each PE/COFF image (boot loader, shim, kernel, driver, option ROM; - reads one from stdin):
would the VM's firmware, in user mode with Secure Boot on, let it run? The rules are edk2's
(DxeImageVerificationLib), applied to the store's db and dbx:
  - the Authenticode hash (SHA-256; PE checksum, certificate-table entry and table excluded)
    in dbx, or any certificate of a signature revoked in dbx: refused;
  - a signature whose chain reaches a db certificate, or the hash in db: allowed;
  - anything else, and an unsigned image whose hash is not in db: refused.
Every signature of an image is checked (Debian's shim carries one by Microsoft UEFI CA 2011 and
one by UEFI CA 2023). Printed: the verdict, the signature that decided, the db or dbx entry that
matched, and for a refusal what would make it boot. In setup mode (no PK) nothing is checked.
The platform must also turn Secure Boot on (Xen: platform:secureboot=true); that is not in the NVRAM.
  --json   an array, one object per image: image, store, allowed, sha256, reason, signed,
           decidedBy, match, remedy, signatures
vm:all checks every UEFI VM of the pool (${POOL_HELP}); result per VM: allowed, refused,
first_boot (no NVRAM yet: its keys come at its first boot) or failed; --json: one line per VM
with "images", the array above.
Exit status 0 when every image would run (on every VM), 1 when one would not (or a VM has no
NVRAM yet, or could not be read), 3 when a file cannot be read or XAPI cannot be reached.`,
  options: { json: { kind: 'flag' }, jobs: { kind: 'value' } },
  async run(ctx) {
    const [storeText, ...images] = ctx.args.positionals;
    if (storeText === undefined || images.length === 0)
      throw usageError('boot-check: give a store and at least one image', 'see `varstore boot-check --help`');
    if (isPoolSelection([storeText])) return bootCheckPool(ctx, await readImages(images));
    const store = await loadStore(ctx, storeText);
    if (!store.exists) throw new CliError(`${storeText}: no such file`, ExitCode.STORE);
    const state = store.state;
    if (state === undefined)
      throw new CliError(
        `${storeText}: no NVRAM yet (first boot): the keys are provisioned when the VM first starts`,
        ExitCode.FAILED,
        'check again after the first boot, or against a store that holds the keys it will get',
      );
    const results: BootCheckResult[] = [];
    for (const image of images) {
      const bytes = await readInput(image, 'image', MAX_IMAGE_SIZE);
      results.push(checkImage(state, storeText, image, bytes));
    }
    if (ctx.args.flag('json')) ctx.out.json(results);
    else for (const r of results) printResult(ctx.out, r);
    return results.every((r) => r.allowed) ? ExitCode.OK : ExitCode.FAILED;
  },
};
