import { Attr, Attrs, Guids, parseSignatureLists, utf16le, x509Certificates, type StoreState } from '@vmsb/efi';
import type { NvramFormat } from '@vmsb/nvram/formats';
import { createAuthenticatedVariable, loadPrivateKey, microsoftCertificates, describeCertificate } from '@vmsb/keys';
import { analyzeStore, microsoftName, type StatusReport } from '../analysis.js';
import { loadStore, reportRefusal, saveEdits, type Command, type CommandContext } from '../command.js';
import { changesJson, describeChanges, microsoftLists, PCR7_WARNING, unsignedUpdate, writeDatabase } from '../edits.js';
import { CliError, ExitCode, messageOf, usageError } from '../errors.js';
import { readCertificateFile, readInput } from '../inputs.js';
import { printable } from '../output.js';
import { EditSession } from '../session.js';
import { eachStore } from './status.js';
import { checkPool, updatePool } from '../pool/vm-all.js';
import { isPoolSelection, POOL_HELP } from '../pool/selector.js';

export const certsCheck: Command = {
  name: 'certs check',
  summary: 'does a store still need the Microsoft 2023 certificates? (update_required / update_ok)',
  help: `usage: varstore certs check <store>...|vm:all [--json] [--socket <path>] [--jobs <n>]

Prints update_required or update_ok (unknown for a VM without NVRAM yet) for each store, as
XenServer's certificate check does: an update is required when the store trusts a Microsoft 2011
CA (KEK CA 2011, Windows Production PCA 2011, UEFI CA 2011) without its 2023 successor (KEK 2K CA
2023, Windows UEFI CA 2023, UEFI CA 2023 and Option ROM UEFI CA 2023).
With one store the word alone is printed; with several, "<store>: <word>" per line.
vm:all checks every UEFI VM of the pool (${POOL_HELP}).
Exit status 0 when no store needs the update, 4 when one does, 1 when a store has no NVRAM yet
(unknown: the VM never booted), 3 when a store could not be read.`,
  options: { json: { kind: 'flag' }, jobs: { kind: 'value' } },
  async run(ctx) {
    const stores = ctx.args.positionals;
    if (stores.length === 0) throw usageError('certs check: missing <store>', 'see `varstore certs check --help`');
    if (isPoolSelection(stores)) return checkPool(ctx);
    const results = await eachStore(ctx, stores, 'checking', async (s) => {
      const store = await loadStore(ctx, s);
      if (!store.exists) throw new CliError(`${s}: no such file`, ExitCode.STORE);
      return analyzeStore(store.state, { store: s, format: store.format, now: ctx.io.now() });
    });
    let code: number = ExitCode.OK;
    const docs: unknown[] = [];
    for (const r of results) {
      if (!r.ok) {
        ctx.out.error(r.error.message);
        docs.push({ store: r.store, error: r.error.message });
        code = r.error.exitCode;
        continue;
      }
      const v = r.value;
      docs.push({ store: v.store, certificates: v.certificates, missing: v.missing2023 });
      if (v.certificates === 'update_required' && code !== ExitCode.STORE) code = ExitCode.UPDATE_REQUIRED;
      if (v.certificates === 'unknown' && code === ExitCode.OK) code = ExitCode.FAILED;
      if (!ctx.args.flag('json')) ctx.out.line(stores.length === 1 ? v.certificates : `${v.store}: ${v.certificates}`);
    }
    if (ctx.args.flag('json')) ctx.out.json(stores.length === 1 ? docs[0] : docs);
    return code;
  },
};

export interface PkSigner {
  readonly key: ReturnType<typeof loadPrivateKey>;
  /** The certificate to sign with; undefined: the PK certificate enrolled in each store. */
  readonly certificate: Uint8Array | undefined;
}

/** The certificate enrolled as PK, when the store has exactly one. */
function enrolledPk(session: EditSession): Uint8Array | undefined {
  const pk = session.get(utf16le('PK'), Guids.GLOBAL_VARIABLE);
  if (pk === undefined) return undefined;
  const parsed = parseSignatureLists(pk.data);
  if (!parsed.ok) return undefined;
  const certs = x509Certificates(parsed.lists);
  return certs.length === 1 ? certs[0]!.der : undefined;
}

export interface UpdateOutcome {
  readonly store: string;
  readonly before: StatusReport['certificates'];
  readonly after: StatusReport['certificates'];
  readonly added: string[];
  readonly skipped: { id: string; reason: string }[];
  readonly changes: string[];
  /** The same changes as data (--json). */
  readonly changeData?: unknown[];
  readonly backup?: string;
}

async function updateStore(
  ctx: CommandContext,
  storeText: string,
  signer: PkSigner | undefined,
): Promise<UpdateOutcome> {
  const { args } = ctx;
  const store = await loadStore(ctx, storeText);
  if (!store.exists) throw new CliError(`${storeText}: no such file`, ExitCode.STORE);
  const plan = planCertsUpdate(ctx, storeText, store.state, store.format, signer);
  const { session, ...outcome } = plan;
  if (session === undefined || args.flag('dry-run') || session.changes().length === 0) return outcome;
  const saved = await saveEdits(ctx, store, session, { backup: !args.flag('no-backup') });
  return saved.backup !== undefined ? { ...outcome, backup: saved.backup } : outcome;
}

export interface CertsUpdatePlan extends UpdateOutcome {
  /** The edits, to be saved by the caller; undefined when the store needs no update. */
  readonly session?: EditSession;
}

/**
 * The 2023 update of one store's content, in memory: what is added, what is skipped and why, and
 * the edit session holding the result. Throws CliError when the store refuses an append.
 */
export function planCertsUpdate(
  ctx: CommandContext,
  storeText: string,
  state: StoreState | undefined,
  format: NvramFormat | null,
  signer: PkSigner | undefined,
): CertsUpdatePlan {
  const { args, out } = ctx;
  const now = ctx.io.now();
  const report = analyzeStore(state, { store: storeText, format, now });
  if (report.certificates !== 'update_required') {
    return {
      store: storeText,
      before: report.certificates,
      after: report.certificates,
      added: [],
      skipped: [],
      changes: [],
    };
  }
  const session = EditSession.open(state);
  const byId = new Map(microsoftCertificates().map((c) => [c.id, c]));
  const added: string[] = [];
  const skipped: { id: string; reason: string }[] = [];

  const dbIds = report.missing2023.filter((id) => id.startsWith('db-'));
  if (dbIds.length > 0) {
    // An append with a zero timestamp: the store keeps the later (existing) one and de-duplicates.
    const result = writeDatabase(
      session,
      'db',
      { payload: microsoftLists(dbIds.map((id) => byId.get(id)!)), timestamp: new Uint8Array(16) },
      true,
    );
    if (result.status !== 0n) {
      reportRefusal(out, `${storeText}: append to db`, result.status, result.reason);
      throw new CliError(`${storeText}: not updated`, ExitCode.FAILED);
    }
    added.push(...dbIds);
  }

  if (report.missing2023.includes('kek-2023')) {
    const payload = microsoftLists([byId.get('kek-2023')!]);
    const pkCert = enrolledPk(session);
    const append = (data: Uint8Array): void => {
      const result = session.set(utf16le('KEK'), Guids.GLOBAL_VARIABLE, Attrs.NV_BS_RT_AT | Attr.APPEND_WRITE, data);
      if (result.status !== 0n) {
        reportRefusal(out, `${storeText}: append to KEK`, result.status, result.reason);
        throw new CliError(`${storeText}: not updated`, ExitCode.FAILED);
      }
      added.push('kek-2023');
    };
    if (session.store.setupMode || args.flag('unsigned-kek')) {
      // Without a PK (setup mode) firmware takes an unsigned KEK update too.
      append(unsignedUpdate(new Uint8Array(16), payload));
    } else if (signer !== undefined) {
      const certificate = signer.certificate ?? pkCert;
      if (certificate === undefined)
        throw new CliError(
          `${storeText}: no single PK certificate is enrolled to sign the KEK update with; give --pk-cert`,
          ExitCode.FAILED,
        );
      let auth: Uint8Array;
      try {
        auth = createAuthenticatedVariable({
          name: 'KEK',
          append: true,
          timestamp: now,
          payload,
          key: signer.key,
          certificate,
        });
      } catch (e) {
        const subject = pkCert === undefined ? '' : ` (the enrolled PK is "${describeCertificate(pkCert).subject}")`;
        throw new CliError(`${storeText}: cannot sign the KEK update: ${messageOf(e)}${subject}`, ExitCode.FAILED);
      }
      // The PK's signature must hold as the daemon checks it in user mode, not only permissively.
      const check = EditSession.open(session.result(), 'enforcing').set(
        utf16le('KEK'),
        Guids.GLOBAL_VARIABLE,
        Attrs.NV_BS_RT_AT | Attr.APPEND_WRITE,
        auth,
      );
      if (check.status !== 0n) {
        reportRefusal(out, `${storeText}: the signed KEK update`, check.status, check.reason);
        throw new CliError(`${storeText}: not updated (the key given is not the one the PK trusts)`, ExitCode.FAILED);
      }
      append(auth);
    } else {
      const who = pkCert === undefined ? 'the PK' : `the PK ("${printable(describeCertificate(pkCert).subject)}")`;
      skipped.push({
        id: 'kek-2023',
        reason: `KEK updates are signed by the PK: give ${who}'s private key with --pk-key (or --unsigned-kek to write it without a signature, as only the platform owner should)`,
      });
    }
  }

  const changes = describeChanges(session.changes());
  const changeData = changesJson(session.changes());
  const after = analyzeStore(session.result(), { store: storeText, format, now }).certificates;
  return { store: storeText, before: report.certificates, after, added, skipped, changes, changeData, session };
}

/** The PK's key (and certificate) given with --pk-key / --pk-cert, if any. */
async function loadPkSigner(ctx: CommandContext): Promise<PkSigner | undefined> {
  const { args } = ctx;
  if (args.value('pk-key') === undefined) return undefined;
  const keyBytes = await readInput(args.value('pk-key')!, 'private key');
  let key;
  try {
    const password = args.value('pk-key-password');
    key = loadPrivateKey(keyBytes, password === undefined ? {} : { passphrase: password });
  } catch (e) {
    throw new CliError(`--pk-key ${args.value('pk-key')}: ${messageOf(e)}`, ExitCode.STORE);
  }
  const cert = args.value('pk-cert') === undefined ? undefined : (await readCertificateFile(args.value('pk-cert')!))[0];
  return { key, certificate: cert };
}

export const certsUpdate: Command = {
  name: 'certs update',
  summary: 'append the Microsoft 2023 certificates a store lacks (idempotent, backup first)',
  help: `usage: varstore certs update <store>... [--dry-run] [--pk-key <key> [--pk-cert <cert>] [--pk-key-password <p>]]
                             [--unsigned-kek] [--no-backup] [--backup-dir <dir>] [--json] [--socket <path>] [--jobs <n>]

For each store that needs it (see \`varstore certs check\`), appends the 2023 successors of the
Microsoft 2011 CAs it trusts, keeping the 2011 entries: Windows UEFI CA 2023 next to the Windows
Production PCA 2011, UEFI CA 2023 and Option ROM UEFI CA 2023 next to the UEFI CA 2011 (db), and
Microsoft Corporation KEK 2K CA 2023 next to the KEK CA 2011 (KEK). Running it again changes nothing.
The KEK update must be signed by the PK: give the PK's private key (--pk-key; --pk-cert when the
certificate to sign with is not the enrolled PK); without it the KEK is left as it is and the
command says so (--unsigned-kek writes it unsigned, as the platform owner may). db entries are
appended in permissive mode, as the admin tools write. Each store is backed up first.
Changing KEK or db changes TPM PCR 7: suspend BitLocker in Windows guests before the next boot.
vm:all updates every halted UEFI VM of the pool that needs it and reports running, paused and
suspended ones as skipped (${POOL_HELP}); each VM's NVRAM is saved to
<uuid>.vars in --backup-dir (default: a new varstore-backup-<time> directory here) before it is
written. A VM's NVRAM is written only while it is halted (checked again right before the write).
Exit status 0 when every store is up to date afterwards, 4 when one still needs the update (for
instance the KEK, without the PK's key), 1 or 3 on errors.`,
  options: {
    'dry-run': { kind: 'flag' },
    'pk-key': { kind: 'value' },
    'pk-cert': { kind: 'value' },
    'pk-key-password': { kind: 'value' },
    'unsigned-kek': { kind: 'flag' },
    'no-backup': { kind: 'flag' },
    'backup-dir': { kind: 'value' },
    json: { kind: 'flag' },
    jobs: { kind: 'value' },
  },
  async run(ctx) {
    const { args, out } = ctx;
    const stores = args.positionals;
    if (stores.length === 0) throw usageError('certs update: missing <store>', 'see `varstore certs update --help`');
    if (args.value('pk-key') !== undefined && args.flag('unsigned-kek'))
      throw usageError('certs update: --pk-key and --unsigned-kek exclude each other');
    if (args.value('pk-cert') !== undefined && args.value('pk-key') === undefined)
      throw usageError('certs update: --pk-cert goes with --pk-key');
    const signer = await loadPkSigner(ctx);
    if (isPoolSelection(stores)) return updatePool(ctx, signer);
    const results = await eachStore(ctx, stores, 'updating', (s) => updateStore(ctx, s, signer));
    let code: number = ExitCode.OK;
    let changed = false;
    const docs: unknown[] = [];
    for (const r of results) {
      if (!r.ok) {
        out.error(r.error.message);
        docs.push({ store: r.store, error: r.error.message });
        code = r.error.exitCode;
        continue;
      }
      const v = r.value;
      const { changes: _lines, changeData, ...rest } = v;
      docs.push({ ...rest, changes: changeData ?? [], dryRun: args.flag('dry-run') });
      if (v.changes.length > 0) changed = true;
      if (v.after === 'update_required' && code === ExitCode.OK) code = ExitCode.UPDATE_REQUIRED;
      if (args.flag('json')) continue;
      if (v.before !== 'update_required') {
        out.line(
          `${out.glyph('ok')} ${v.store}: ${v.before === 'unknown' ? 'no NVRAM yet (first boot): nothing to update' : 'update_ok, nothing to do'}`,
        );
        continue;
      }
      const verb = args.flag('dry-run') ? 'would add' : 'added';
      out.line(
        `${out.glyph(v.after === 'update_ok' ? 'ok' : 'warn')} ${v.store}: ${v.added.length > 0 ? `${verb} ${v.added.map(microsoftName).join(', ')}` : 'nothing added'}`,
      );
      for (const line of v.changes) out.line(`    ${line}`);
      for (const s of v.skipped) out.line(`  ${out.glyph('bad')} ${microsoftName(s.id)} not added: ${s.reason}`);
    }
    if (args.flag('json')) out.json(stores.length === 1 ? docs[0] : docs);
    if (changed) out.warn(PCR7_WARNING);
    if (args.flag('dry-run') && changed) out.note('dry run: nothing was written');
    return code;
  },
};
