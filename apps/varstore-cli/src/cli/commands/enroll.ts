import { checkSignatureLists, parseSignatureLists, x509Certificates } from '@vmsb/efi';
import {
  bundledDbxUpdate,
  buildSignatureList,
  concatSignatureLists,
  microsoftCertificates,
  splitAuthenticatedVariable,
} from '@vmsb/keys';
import { analyzeStore } from '../analysis.js';
import { positionals } from '../args.js';
import { loadStore, reportRefusal, saveEdits, type Command } from '../command.js';
import {
  changesJson,
  describeChanges,
  microsoftDbs,
  microsoftKeks,
  microsoftLists,
  parseDbChoices,
  parseKekChoice,
  PCR7_WARNING,
  SecureBootVariables,
  writeDatabase,
  type SecureBootVariable,
} from '../edits.js';
import { CliError, ExitCode, messageOf, usageError } from '../errors.js';
import { readSecureBootInput, type SecureBootInput } from '../inputs.js';
import { nowTimestamp, parseGuid, parseTimestamp } from '../names.js';
import { EditSession } from '../session.js';
import { parseFormat } from '../stores.js';

/** The new value of one database: a signed update to apply as is, or lists to write unsigned. */
type Plan =
  | { readonly kind: 'auth'; readonly bytes: Uint8Array; readonly source: string }
  | { readonly kind: 'lists'; readonly payload: Uint8Array };

async function listsOf(input: SecureBootInput, path: string, owner: Uint8Array): Promise<Uint8Array> {
  switch (input.kind) {
    case 'esl':
      return input.bytes;
    case 'certificates':
      return buildSignatureList({ type: 'x509', certificates: input.certificates, owner });
    case 'auth':
      throw usageError(
        `${path} is a signed update (.auth): it is the whole new value and cannot be combined with other sources for the same variable`,
      );
  }
}

/**
 * Combines the files given for one variable with the Microsoft certificates chosen: a single .auth
 * is applied as it is; anything else becomes the concatenation of signature lists.
 */
async function planFor(
  paths: readonly string[],
  microsoft: Uint8Array | undefined,
  owner: Uint8Array,
): Promise<Plan | undefined> {
  const inputs = await Promise.all(paths.map(async (p) => ({ path: p, input: await readSecureBootInput(p) })));
  const auth = inputs.filter((i) => i.input.kind === 'auth');
  if (auth.length > 0) {
    if (inputs.length > 1 || microsoft !== undefined) {
      throw usageError(
        `${auth[0]!.path} is a signed update (.auth): it is the whole new value and cannot be combined with other sources for the same variable`,
      );
    }
    return { kind: 'auth', bytes: (auth[0]!.input as { bytes: Uint8Array }).bytes, source: auth[0]!.path };
  }
  const parts = await Promise.all(inputs.map((i) => listsOf(i.input, i.path, owner)));
  if (microsoft !== undefined && microsoft.length > 0) parts.push(microsoft);
  const payload = concatSignatureLists(parts);
  return payload.length === 0 ? undefined : { kind: 'lists', payload };
}

/** Whether a db plan's signature lists hold at least one of Microsoft's db certificates. */
function holdsMicrosoftDbCa(plan: Plan): boolean {
  let payload: Uint8Array;
  if (plan.kind === 'auth') {
    try {
      payload = splitAuthenticatedVariable(plan.bytes).payload;
    } catch {
      return false;
    }
  } else {
    payload = plan.payload;
  }
  const parsed = parseSignatureLists(payload);
  if (!parsed.ok) return false;
  const ders = new Set(x509Certificates(parsed.lists).map((c) => Buffer.from(c.der).toString('hex')));
  return microsoftCertificates({ role: 'db' }).some((m) => ders.has(Buffer.from(m.der).toString('hex')));
}

export const enroll: Command = {
  name: 'enroll',
  summary: "enroll PK, KEK, db (yours and/or Microsoft's) and dbx in place, keeping every other variable",
  help: `usage: varstore enroll <store> [--pk <file>] [--kek <file>]... [--db <file>]...
                       [--microsoft-kek none|2011|2023|all] [--microsoft-db none|windows|uefi|oprom|all]...
                       [--dbx bundled|none|<file>] [--owner <guid>] [--timestamp <t>]
                       [--dry-run] [--no-backup] [--backup-dir <dir>] [--format <fmt>]

Replaces the Secure Boot databases of a store in place; every other variable (boot entries, ...) is
kept. Files may hold certificates (PEM, several, or DER), signature lists (.esl) or a signed update
(.auth, applied as it is). Certificates become lists owned by --owner (default the zero GUID);
Microsoft's are owned by Microsoft's GUID 77fa9abd-0359-4d32-bd60-28f4e78f784b.
  --microsoft-kek   add Microsoft's KEK CA 2011, KEK 2K CA 2023, or both (all)
  --microsoft-db    add Microsoft's db CAs: windows (Windows Production PCA 2011 + Windows UEFI CA
                    2023), uefi (UEFI CA 2011 + UEFI CA 2023), oprom (Option ROM UEFI CA 2023), all;
                    repeat or separate with commas. Required when --db would leave db without
                    any Microsoft CA: none drops them knowingly (Windows, shim and option ROMs
                    will no longer run)
  --dbx bundled     append Microsoft's signed dbx update shipped with varstore; <file>: append an
                    .auth or .esl; none (the default): leave dbx as it is. dbx is only ever appended.
A variable is written only when something is given for it. Writes go through the daemon's store
code in permissive mode, in the order dbx, db, KEK, PK. The store is backed up first
(<file>.bak-<time>; --backup-dir for vm: stores) unless --no-backup; --dry-run shows the changes only.
A missing store file is created (format from --format or the file name, else a VARS blob).`,
  options: {
    pk: { kind: 'value' },
    kek: { kind: 'values' },
    db: { kind: 'values' },
    'microsoft-kek': { kind: 'value' },
    'microsoft-db': { kind: 'values' },
    dbx: { kind: 'value' },
    owner: { kind: 'value' },
    timestamp: { kind: 'value' },
    'dry-run': { kind: 'flag' },
    'no-backup': { kind: 'flag' },
    'backup-dir': { kind: 'value' },
    format: { kind: 'value' },
    json: { kind: 'flag' },
  },
  async run(ctx) {
    const { args, out } = ctx;
    const [storeText] = positionals(args, 'enroll', ['store']);
    const owner = parseGuid(args.value('owner') ?? 'zero', '--owner');
    const kekChoice = parseKekChoice(args.value('microsoft-kek'));
    const dbChoices = parseDbChoices(args.values('microsoft-db'));
    const dbxArg = args.value('dbx');
    const now = ctx.io.now();
    const timestamp =
      args.value('timestamp') === undefined ? nowTimestamp(now) : parseTimestamp(args.value('timestamp')!, now);
    const format = parseFormat(args.value('format'));

    const plans = new Map<SecureBootVariable, Plan>();
    const pk = args.value('pk') === undefined ? undefined : await planFor([args.value('pk')!], undefined, owner);
    if (pk !== undefined) {
      if (pk.kind === 'lists') {
        const checked = checkSignatureLists(pk.payload, { maxSignatures: 1 });
        if (!checked.ok)
          throw new CliError(`--pk: PK must hold exactly one X.509 certificate (${checked.reason})`, ExitCode.USAGE);
      }
      plans.set('PK', pk);
    }
    const kek = await planFor(
      args.values('kek'),
      kekChoice === undefined ? undefined : microsoftLists(microsoftKeks(kekChoice)),
      owner,
    );
    if (kek !== undefined) plans.set('KEK', kek);
    const microsoftDb = dbChoices === undefined ? [] : microsoftDbs(dbChoices);
    const db = await planFor(
      args.values('db'),
      microsoftDb.length === 0 ? undefined : microsoftLists(microsoftDb),
      owner,
    );
    // Replacing db with lists that hold none of Microsoft's CAs, without saying so, would silently
    // drop them (Windows boot manager, shim through the third-party UEFI CA, option ROMs of
    // passed-through GPUs and NICs).
    if (db !== undefined && dbChoices === undefined && !holdsMicrosoftDbCa(db)) {
      throw usageError(
        "enroll: --db replaces db, and the new db holds none of Microsoft's CAs: Windows Production PCA 2011 / Windows UEFI CA 2023 (Windows boot manager), UEFI CA 2011 / 2023 (shim and other third-party loaders), Option ROM UEFI CA 2023 (GPU and NIC option ROMs)",
        'keep them with --microsoft-db all (or windows, uefi, oprom), or drop them knowingly with --microsoft-db none',
      );
    }
    if (db !== undefined) plans.set('db', db);

    let dbx: Plan | undefined;
    if (dbxArg === 'bundled') {
      dbx = { kind: 'auth', bytes: bundledDbxUpdate().bytes, source: 'the bundled Microsoft dbx update' };
    } else if (dbxArg !== undefined && dbxArg !== 'none') {
      const input = await readSecureBootInput(dbxArg);
      if (input.kind === 'certificates')
        throw usageError('--dbx takes a signed update (.auth) or signature lists (.esl), not certificates');
      dbx =
        input.kind === 'auth'
          ? { kind: 'auth', bytes: input.bytes, source: dbxArg }
          : { kind: 'lists', payload: input.bytes };
    }
    if (plans.size === 0 && dbx === undefined)
      throw usageError('enroll: nothing to enroll: give --pk, --kek, --db, --microsoft-kek, --microsoft-db or --dbx');

    const store = await loadStore(ctx, storeText!, format === undefined ? {} : { format });
    const session = EditSession.open(store.state);
    const hadPk = analyzeStore(store.state, { store: storeText!, format: null, now }).mode === 'user';

    const apply = (variable: SecureBootVariable, plan: Plan, append: boolean): void => {
      let result;
      if (plan.kind === 'auth') {
        // A signed update carries its own payload; check it is one before handing it over.
        try {
          const parts = splitAuthenticatedVariable(plan.bytes);
          if (parts.payload.length > 0 && !parseSignatureLists(parts.payload).ok)
            throw new TypeError('its payload is not signature lists');
        } catch (e) {
          throw new CliError(`${variable} from ${plan.source}: ${messageOf(e)}`, ExitCode.USAGE);
        }
        result = writeDatabase(session, variable, { auth: plan.bytes }, append);
      } else {
        // The same value again is no change: keep the stored timestamp rather than bump it.
        const existing = session.get(SecureBootVariables[variable].name, SecureBootVariables[variable].guid);
        if (!append && existing !== undefined && Buffer.compare(existing.data, plan.payload) === 0) return;
        result = writeDatabase(
          session,
          variable,
          { payload: plan.payload, timestamp: append ? new Uint8Array(16) : timestamp },
          append,
        );
      }
      if (result.status !== 0n) {
        reportRefusal(out, `enroll ${variable}`, result.status, result.reason);
        throw new CliError(`nothing was written to ${store.spec.text}`, ExitCode.FAILED);
      }
    };
    // The order varstored applies its auth files at first boot: PK last, so the others go in while
    // the store is still in setup mode.
    if (dbx !== undefined) apply('dbx', dbx, true);
    for (const variable of ['db', 'KEK', 'PK'] as const) {
      const plan = plans.get(variable);
      if (plan !== undefined) apply(variable, plan, false);
    }

    const changes = session.changes();
    const after = analyzeStore(session.result(), { store: store.spec.text, format: store.format, now });
    if (args.flag('json')) {
      out.json({
        store: store.spec.text,
        dryRun: args.flag('dry-run'),
        changes: changesJson(changes),
        readiness: after.readiness,
      });
    } else {
      out.lines(changes.length === 0 ? ['no change: the store already holds these values'] : describeChanges(changes));
    }
    if (changes.length > 0 && hadPk && changes.some((c) => c.before !== undefined)) out.warn(PCR7_WARNING);
    if (args.flag('dry-run')) {
      out.note(`dry run: ${store.spec.text} not changed`);
      return ExitCode.OK;
    }
    const saved = await saveEdits(ctx, store, session, { backup: !args.flag('no-backup') });
    if (!args.flag('json') && saved.saved)
      out.line(`${out.glyph('ok')} ${store.spec.text}: enrolled; readiness ${after.readiness}`);
    return ExitCode.OK;
  },
};
