import {
  analyzeStore,
  microsoftName,
  type CertificateReport,
  type DatabaseReport,
  type Readiness,
  type StatusReport,
} from '../analysis.js';
import { loadStore, type Command, type CommandContext } from '../command.js';
import { CliError, ExitCode, usageError } from '../errors.js';
import { printable, Progress, type Output, type Tone } from '../output.js';
import { formatName } from '../stores.js';
import { statusPool } from '../pool/vm-all.js';
import { isPoolSelection, POOL_HELP } from '../pool/selector.js';

const READINESS_TONE: Record<Readiness, Tone> = {
  ready: 'ok',
  ready_no_dbx: 'warn',
  first_boot: 'info',
  setup_mode: 'bad',
  certs_incomplete: 'bad',
};

const READINESS_TEXT: Record<Readiness, string> = {
  ready: 'PK, KEK, db and dbx are enrolled',
  ready_no_dbx: 'PK, KEK and db are enrolled, dbx is not',
  first_boot: 'no NVRAM yet: the keys are provisioned at first boot',
  setup_mode: 'no PK: Secure Boot cannot be enforced',
  certs_incomplete: 'PK is enrolled but KEK or db is missing',
};

export type StoreResult<T> =
  | { readonly store: string; readonly ok: true; readonly value: T }
  | { readonly store: string; readonly ok: false; readonly error: CliError };

/** Runs `work` on each store in turn, with progress on a terminal; failures are collected, not thrown. */
export async function eachStore<T>(
  ctx: CommandContext,
  stores: readonly string[],
  verb: string,
  work: (store: string) => Promise<T>,
): Promise<StoreResult<T>[]> {
  const progress = new Progress(ctx.io, stores.length);
  const results: StoreResult<T>[] = [];
  try {
    for (const [i, store] of stores.entries()) {
      progress.step(i, `${verb} ${store}`);
      try {
        results.push({ store, ok: true, value: await work(store) });
      } catch (e) {
        if (!(e instanceof CliError) || e.exitCode === ExitCode.USAGE) throw e;
        results.push({ store, ok: false, error: e });
      }
    }
  } finally {
    progress.done();
  }
  return results;
}

export async function statusOf(ctx: CommandContext, storeText: string): Promise<StatusReport> {
  const store = await loadStore(ctx, storeText);
  if (!store.exists) throw new CliError(`${store.spec.text}: no such file`, ExitCode.STORE);
  return analyzeStore(store.state, { store: store.spec.text, format: store.format, now: ctx.io.now() });
}

function date(iso: string): string {
  return iso.slice(0, 10);
}

function certRow(out: Output, where: string, c: CertificateReport): string[] {
  const tone: Tone = c.generation === '2011' ? 'warn' : c.expired ? 'warn' : 'ok';
  return [
    `${out.glyph(tone)} ${printable(c.commonName ?? c.subject)}`,
    where,
    c.generation,
    c.expired ? out.tone(`${date(c.notAfter)} (expired)`, 'warn') : date(c.notAfter),
    c.owner,
  ];
}

function databaseLine(r: DatabaseReport): string {
  if (!r.present) return 'absent';
  const parts: string[] = [];
  if (r.certificates.length > 0)
    parts.push(`${r.certificates.length} certificate${r.certificates.length === 1 ? '' : 's'}`);
  for (const h of r.hashes) parts.push(`${h.count} ${h.type.replace(/^CERT_/, '')} hash${h.count === 1 ? '' : 'es'}`);
  if (parts.length === 0) parts.push(`${r.entries} entries`);
  return `${parts.join(', ')}, ${r.size} bytes`;
}

export function printStatus(out: Output, r: StatusReport): void {
  out.line(`${out.paint(printable(r.store), 'bold')}${r.format === null ? '' : `  (${formatName(r.format)})`}`);
  const rows: [string, string][] = [
    ['Readiness', `${out.glyph(READINESS_TONE[r.readiness])} ${r.readiness}: ${READINESS_TEXT[r.readiness]}`],
  ];
  if (r.mode !== null) rows.push(['Mode', r.mode === 'user' ? 'user (PK enrolled)' : 'setup (no PK)']);
  rows.push(['Secure Boot', `${out.glyph(r.secureBoot.enforceable ? 'ok' : 'bad')} ${r.secureBoot.detail}`]);
  if (r.pk !== null) {
    rows.push([
      'PK',
      r.pk.problem !== null
        ? `${out.glyph('bad')} ${r.pk.problem}`
        : `${printable(r.pk.commonName ?? r.pk.subject)} (owner ${r.pk.owner}, expires ${date(r.pk.notAfter)})`,
    ]);
  } else if (r.mode !== null) {
    rows.push(['PK', 'absent']);
  }
  if (r.mode !== null) {
    rows.push(['KEK', databaseLine(r.kek)], ['db', databaseLine(r.db)]);
    const dbx = databaseLine(r.dbx);
    rows.push([
      'dbx',
      r.dbx.present
        ? `${dbx}, ${r.dbx.headroom} bytes below the variable limit${r.dbx.placeholderOnly ? ' (placeholder only)' : ''}`
        : dbx,
    ]);
    const cert =
      r.certificates === 'update_required'
        ? `${out.glyph('bad')} update_required: add ${r.missing2023.map(microsoftName).join(', ')}`
        : `${out.glyph('ok')} update_ok${r.microsoft.kek2011 || r.microsoft.windows2011 || r.microsoft.uefi2011 || r.microsoft.kek2023 ? '' : ' (no Microsoft 2011 CA trusted)'}`;
    rows.push(['2023 CAs', cert]);
  }
  out.fields(rows.map(([k, v]) => [`  ${k}`, v]));
  const certs = [
    ...(r.pk !== null && r.pk.problem === null ? [certRow(out, 'PK', r.pk)] : []),
    ...r.kek.certificates.map((c) => certRow(out, 'KEK', c)),
    ...r.db.certificates.map((c) => certRow(out, 'db', c)),
    ...r.dbx.certificates.map((c) => certRow(out, 'dbx', c)),
  ];
  if (certs.length > 0) {
    out.line();
    out.table(
      ['  CERTIFICATE', 'IN', 'MICROSOFT', 'EXPIRES', 'OWNER'],
      certs.map((row) => [`  ${row[0]}`, ...row.slice(1)]),
    );
  }
  if (r.warnings.length > 0) {
    out.line();
    for (const w of r.warnings) out.line(`  ${out.glyph('warn')} ${w}`);
  }
}

export const status: Command = {
  name: 'status',
  summary: 'Secure Boot readiness, keys, Microsoft CA generations and expiry, dbx',
  help: `usage: varstore status <store>...|vm:all [--json] [--socket <path>] [--jobs <n>]

For each store: setup or user mode, whether Secure Boot can be enforced, the PK (owner, subject,
expiry), the KEK and db certificates with their Microsoft generation (2011, 2023 or other) and
expiry, dbx entries and size, whether the 2011→2023 Microsoft CA update is still to be applied, and
a readiness verdict in XAPI's words: first_boot, ready, ready_no_dbx, setup_mode, certs_incomplete.
  --json   one object per store (an array when several stores are given); schema in the README
vm:all reads every UEFI VM of the pool (${POOL_HELP}).
Exit status 0 when every store was read, 3 when one could not be (vm:all: 1 when a VM's NVRAM could not be read).`,
  options: { json: { kind: 'flag' }, jobs: { kind: 'value' } },
  async run(ctx) {
    const stores = ctx.args.positionals;
    if (stores.length === 0) throw usageError('status: missing <store>', 'see `varstore status --help`');
    if (isPoolSelection(stores)) return statusPool(ctx);
    const results = await eachStore(ctx, stores, 'reading', (s) => statusOf(ctx, s));
    if (ctx.args.flag('json')) {
      const docs = results.map((r) => (r.ok ? r.value : { store: r.store, error: r.error.message }));
      ctx.out.json(stores.length === 1 ? docs[0] : docs);
    } else {
      results.forEach((r, i) => {
        if (i > 0) ctx.out.line();
        if (r.ok) printStatus(ctx.out, r.value);
      });
    }
    let code: number = ExitCode.OK;
    for (const r of results) {
      if (!r.ok) {
        ctx.out.error(r.error.message);
        code = r.error.exitCode;
      }
    }
    return code;
  },
};
