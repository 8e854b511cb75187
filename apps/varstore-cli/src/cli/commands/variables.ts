import {
  Attr,
  formatAttributes,
  guidToText,
  hasTimeBasedAttr,
  isNonVolatile,
  parseSignatureLists,
  signatureTypeOf,
  type Variable,
} from '@vmsb/efi';
import { buildSignatureList, concatSignatureLists, describeCertificate } from '@vmsb/keys';
import { EfiStatus } from '@vmsb/protocol';
import { positionals } from '../args.js';
import {
  hex,
  loadStore,
  nameText,
  reportRefusal,
  requireContent,
  saveEdits,
  timestampText,
  variableJson,
  variableLine,
  type Command,
} from '../command.js';
import { decodeValue } from '../decode.js';
import { unsignedUpdate } from '../edits.js';
import { CliError, ExitCode, statusLine, usageError } from '../errors.js';
import { FileMode, parseHex, readCertificateFile, readInput, writeOutput } from '../inputs.js';
import {
  isSignatureDatabase,
  nowTimestamp,
  parseAttributes,
  parseGuid,
  parseTimestamp,
  resolveName,
} from '../names.js';
import { printable, type Output } from '../output.js';
import { EditSession, variableKey } from '../session.js';
import { formatName, parseFormat } from '../stores.js';

export const ls: Command = {
  name: 'ls',
  summary: 'list the variables of a store',
  help: `usage: varstore ls <store> [--json] [--raw] [--socket <path>]

Lists the variables a store holds (name, vendor GUID, attributes, size, timestamp, value), in order.
Values UEFI gives a layout to are decoded: Boot####/Driver#### load options (description and
device path in UEFI text form, e.g. PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0)), BootOrder,
BootNext, Timeout, ConIn/ConOut/ErrOut, Lang/PlatformLang, SecureBootEnable and other switches.
--raw shows every value as hex instead (the first 32 bytes; \`varstore get\` shows it all).
- reads the store from stdin.
<store> is a file (VARS blob, base64 VARS, QEMU/virt-firmware JSON or OVMF .fd, detected from its
content) or vm:<uuid> (the VM's NVRAM in XAPI, through --socket, default /var/lib/xcp/xapi).
The variables the store computes at each boot (SetupMode, SecureBoot, ...) are not stored and not listed.`,
  options: { json: { kind: 'flag' }, raw: { kind: 'flag' } },
  async run(ctx) {
    const [storeText] = positionals(ctx.args, 'ls', ['store']);
    const raw = ctx.args.flag('raw');
    const store = await loadStore(ctx, storeText!);
    if (!store.exists) throw new CliError(`${store.spec.text}: no such file`, ExitCode.STORE);
    const variables = store.state === undefined ? [] : EditSession.open(store.state).original.variables;
    if (ctx.args.flag('json')) {
      ctx.out.json({
        store: store.spec.text,
        format: store.format,
        firstBoot: store.state === undefined,
        variables: variables.map((v) =>
          raw ? { ...variableJson(v), data: hex(v.data) } : { ...variableJson(v), value: decodeValue(v)?.json ?? null },
        ),
      });
      return ExitCode.OK;
    }
    if (store.state === undefined) {
      ctx.out.line(`${store.spec.text}: no variables yet (first boot)`);
      return ExitCode.OK;
    }
    ctx.out.table(
      ['NAME', 'GUID', 'ATTRIBUTES', 'SIZE', 'TIMESTAMP', 'VALUE'],
      variables.map((v) => [
        nameText(v),
        guidToText(v.guid),
        formatAttributes(v.attributes),
        String(v.data.length),
        timestampText(v.timestamp) ?? '-',
        raw ? `${hex(v.data.subarray(0, 32))}${v.data.length > 32 ? '…' : ''}` : (decodeValue(v)?.text ?? ''),
      ]),
      ['left', 'left', 'left', 'right', 'left', 'left'],
    );
    const bytes = variables.reduce((n, v) => n + v.data.length, 0);
    ctx.out.line(`${variables.length} variables, ${bytes} bytes of data (${formatName(store.format)})`);
    return ExitCode.OK;
  },
};

/** The entries of a signature database as rows and JSON. */
function signatureEntries(data: Uint8Array): { json: unknown[]; rows: string[][] } | undefined {
  const parsed = parseSignatureLists(data);
  if (!parsed.ok || parsed.lists.length === 0) return undefined;
  const json: unknown[] = [];
  const rows: string[][] = [];
  for (const list of parsed.lists) {
    const info = signatureTypeOf(list.type);
    const type = info?.name ?? guidToText(list.type);
    for (const s of list.signatures) {
      const owner = guidToText(s.owner);
      if (info?.kind === 'x509') {
        try {
          const c = describeCertificate(s.data);
          json.push({
            type,
            owner,
            subject: c.subject,
            issuer: c.issuer,
            notAfter: c.notAfter.toISOString(),
            sha256: c.sha256,
          });
          rows.push([type, owner, printable(c.commonName ?? c.subject), c.notAfter.toISOString().slice(0, 10)]);
        } catch {
          json.push({ type, owner, data: hex(s.data), problem: 'not a parseable certificate' });
          rows.push([type, owner, '(unparseable certificate)', '']);
        }
      } else {
        json.push({ type, owner, data: hex(s.data) });
        rows.push([type, owner, hex(s.data), '']);
      }
    }
  }
  return { json, rows };
}

function hexdump(data: Uint8Array, limit: number): string[] {
  const lines: string[] = [];
  for (let at = 0; at < Math.min(data.length, limit); at += 16) {
    const row = data.subarray(at, Math.min(at + 16, data.length));
    const bytes = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const text = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${at.toString(16).padStart(8, '0')}  ${bytes.padEnd(47)}  ${text}`);
  }
  if (data.length > limit) lines.push(`… ${data.length - limit} more bytes (use --hex or --out)`);
  return lines;
}

function describeVariable(out: Output, v: Variable): void {
  const decoded = decodeValue(v);
  out.fields([
    ['Name', nameText(v)],
    ['GUID', guidToText(v.guid)],
    ['Attributes', `${formatAttributes(v.attributes)} (0x${v.attributes.toString(16).padStart(8, '0')})`],
    ['Size', `${v.data.length} bytes`],
    ['Timestamp', timestampText(v.timestamp) ?? '-'],
    ...(v.signerDigest.every((b) => b === 0) ? [] : ([['Signer digest', hex(v.signerDigest)]] as [string, string][])),
    ...(decoded === undefined ? [] : ([['Value', decoded.text]] as [string, string][])),
  ]);
  out.line();
  const entries = isSignatureDatabase(v.name, v.guid) ? signatureEntries(v.data) : undefined;
  if (entries !== undefined) out.table(['TYPE', 'OWNER', 'ENTRY', 'EXPIRES'], entries.rows);
  else out.lines(hexdump(v.data, 4096));
}

export const get: Command = {
  name: 'get',
  summary: 'show or extract one variable',
  help: `usage: varstore get <store> <name> [--guid <guid>] [--json | --hex | --out <file>] [--socket <path>]

Shows a variable: on a terminal its attributes, timestamp and value (signature lists entry by entry,
anything else as a hex dump); on a pipe its raw value, as varstore-get does.
  --guid <guid>   vendor GUID (known names such as PK, db, BootOrder, MokList need none;
                  aliases: global, image-security, shim)
  --json          metadata and the value as hex (and the entries of PK/KEK/db/dbx)
  --hex           the value as one line of hex
  --out <file>    write the raw value to <file>
Exit status 1 when the variable does not exist.`,
  options: { guid: { kind: 'value' }, json: { kind: 'flag' }, hex: { kind: 'flag' }, out: { kind: 'value' } },
  async run(ctx) {
    const [storeText, nameArg] = positionals(ctx.args, 'get', ['store', 'name']);
    const modes = ['json', 'hex', 'out'].filter((m) =>
      m === 'out' ? ctx.args.value(m) !== undefined : ctx.args.flag(m),
    );
    if (modes.length > 1) throw usageError(`get: --${modes.join(' and --')} exclude each other`);
    const store = await loadStore(ctx, storeText!);
    const state = requireContent(store);
    const session = EditSession.open(state);
    const resolved = resolveName(nameArg!, ctx.args.value('guid'), state.variables, { mustExist: true });
    const key = variableKey(resolved.name, resolved.guid);
    const v = session.original.variables.find((x) => variableKey(x.name, x.guid) === key);
    if (v === undefined) {
      ctx.out.error(`${resolved.text} (${guidToText(resolved.guid)}): ${statusLine(EfiStatus.NOT_FOUND)}`);
      if (session.get(resolved.name, resolved.guid) !== undefined) {
        ctx.out.note('  note: the store computes this variable at each boot; it is not stored (see `varstore status`)');
      } else {
        ctx.out.note(
          '  fix: list the variables with `varstore ls <store>`; give --guid if the name lives under another GUID',
        );
      }
      return ExitCode.FAILED;
    }
    const outPath = ctx.args.value('out');
    if (ctx.args.flag('json')) {
      const entries = isSignatureDatabase(v.name, v.guid) ? signatureEntries(v.data) : undefined;
      ctx.out.json({
        ...variableJson(v),
        data: hex(v.data),
        value: decodeValue(v)?.json ?? null,
        ...(entries !== undefined ? { entries: entries.json } : {}),
      });
    } else if (ctx.args.flag('hex')) {
      ctx.out.line(hex(v.data));
    } else if (outPath !== undefined) {
      await writeOutput(outPath, v.data, { mode: FileMode.PRIVATE, stdout: ctx.io.stdout });
      ctx.out.note(
        `wrote ${v.data.length} bytes of ${variableLine(v)} to ${outPath === '-' ? 'standard output' : outPath}`,
      );
    } else if (ctx.io.stdout.isTTY === true) {
      describeVariable(ctx.out, v);
      ctx.out.note(
        '(a description: raw bytes are not written to a terminal; pipe the output, or use --out <file> or --out -)',
      );
    } else {
      ctx.out.bytes(v.data);
    }
    return ExitCode.OK;
  },
};

const WRITE_OPTIONS = {
  'no-backup': { kind: 'flag' },
  'backup-dir': { kind: 'value' },
  format: { kind: 'value' },
} as const;

export const set: Command = {
  name: 'set',
  summary: 'create, replace or append to a variable (permissive, as the admin tools)',
  help: `usage: varstore set <store> <name> [--guid <guid>] [--attributes <attr>] [--append]
                    (--data-file <file> | --hex <hex> | --string <text> | --auth <file.auth>
                     | --esl <file.esl> | --cert <cert>... [--owner <guid>]) [--timestamp <t>]

Writes a variable through the same store code the daemon runs, in permissive mode (auth-enforce=false),
as varstore-set does: Secure Boot databases (PK, KEK, db, dbx) are written without checking
signatures; private authenticated variables still need a valid signature. The store is backed up
first (<file>.bak-<time>, or --backup-dir for vm: stores) unless --no-backup.
  --attributes    NV|BS|RT|AT names or a number (default: the variable's, or the usual ones for
                  its name, or NV|BS|RT); --append adds APPEND_WRITE
  --data-file     the value as is (for a time-based authenticated variable: a whole .auth)
  --hex, --string the value as hex, or as UTF-8 text without terminator
  --auth          a signed update (EFI_VARIABLE_AUTHENTICATION_2 + payload), applied as is
  --esl, --cert   signature lists, or certificates made into lists owned by --owner (default the
                  zero GUID), written unsigned (time-based variables: timestamp --timestamp, default now)
  --format        format of a store file that does not exist yet (vars, vars-base64, json, fd)`,
  options: {
    guid: { kind: 'value' },
    attributes: { kind: 'value' },
    append: { kind: 'flag' },
    'data-file': { kind: 'value' },
    hex: { kind: 'value' },
    string: { kind: 'value' },
    auth: { kind: 'value' },
    esl: { kind: 'value' },
    cert: { kind: 'values' },
    owner: { kind: 'value' },
    timestamp: { kind: 'value' },
    json: { kind: 'flag' },
    ...WRITE_OPTIONS,
  },
  async run(ctx) {
    const { args } = ctx;
    const [storeText, nameArg] = positionals(args, 'set', ['store', 'name']);
    const sources = ['data-file', 'hex', 'string', 'auth', 'esl', 'cert'].filter((s) =>
      s === 'cert' ? args.values(s).length > 0 : args.value(s) !== undefined,
    );
    if (sources.length !== 1)
      throw usageError(
        `set: give exactly one of --data-file, --hex, --string, --auth, --esl, --cert${sources.length > 1 ? ` (got --${sources.join(', --')})` : ''}`,
      );
    const source = sources[0]!;
    if (source !== 'esl' && source !== 'cert' && args.value('timestamp') !== undefined)
      throw usageError('set: --timestamp applies to --esl and --cert');
    if (source !== 'cert' && args.value('owner') !== undefined) throw usageError('set: --owner applies to --cert');
    const store = await loadStore(ctx, storeText!, {
      ...(args.value('format') !== undefined ? { format: parseFormat(args.value('format'))! } : {}),
    });
    const session = EditSession.open(store.state);
    const resolved = resolveName(nameArg!, args.value('guid'), session.original.variables);
    const existing = session.get(resolved.name, resolved.guid);
    let attributes =
      args.value('attributes') !== undefined
        ? parseAttributes(args.value('attributes')!)
        : (existing?.attributes ?? resolved.defaultAttributes);
    if (args.flag('append')) attributes |= Attr.APPEND_WRITE;
    if (!isNonVolatile(attributes)) {
      throw usageError(
        `set: attributes ${formatAttributes(attributes)} lack NV: a volatile variable lives only while the VM runs, a store keeps only non-volatile ones`,
      );
    }
    const timeBased = hasTimeBasedAttr(attributes);
    let data: Uint8Array;
    switch (source) {
      case 'data-file':
        data = await readInput(args.value('data-file')!, 'data file');
        break;
      case 'hex': {
        data = args.value('hex')!.trim() === '' ? new Uint8Array(0) : parseHex(args.value('hex')!, undefined, '--hex');
        break;
      }
      case 'string':
        data = new Uint8Array(Buffer.from(args.value('string')!, 'utf8'));
        break;
      case 'auth':
        data = await readInput(args.value('auth')!, '.auth file');
        if (!timeBased)
          throw usageError(
            `set: --auth needs TIME_BASED_AUTHENTICATED_WRITE_ACCESS in the attributes (${formatAttributes(attributes)})`,
          );
        break;
      default: {
        const payload =
          source === 'esl'
            ? await readInput(args.value('esl')!, 'signature list')
            : concatSignatureLists(
                await Promise.all(
                  args.values('cert').map(async (path) =>
                    buildSignatureList({
                      type: 'x509',
                      certificates: await readCertificateFile(path),
                      owner: parseGuid(args.value('owner') ?? 'zero', '--owner'),
                    }),
                  ),
                ),
              );
        const t = args.value('timestamp');
        data = timeBased
          ? unsignedUpdate(t === undefined ? nowTimestamp(ctx.io.now()) : parseTimestamp(t, ctx.io.now()), payload)
          : payload;
      }
    }
    const result = session.set(resolved.name, resolved.guid, attributes, data);
    const what = `${resolved.text} (${guidToText(resolved.guid)})`;
    if (result.status !== EfiStatus.SUCCESS) return reportRefusal(ctx.out, `set ${what}`, result.status, result.reason);
    const saved = await saveEdits(ctx, store, session, { backup: !args.flag('no-backup') });
    const now = session.get(resolved.name, resolved.guid);
    if (args.flag('json')) {
      ctx.out.json({
        store: store.spec.text,
        name: resolved.text,
        guid: guidToText(resolved.guid),
        action: !saved.saved ? 'unchanged' : now === undefined ? 'deleted' : args.flag('append') ? 'appended' : 'set',
        variable: now === undefined ? null : variableJson(now),
        backup: saved.backup ?? null,
      });
      return ExitCode.OK;
    }
    if (!saved.saved) ctx.out.line(`${ctx.out.glyph('info')} ${what}: unchanged`);
    else if (now === undefined) ctx.out.line(`${ctx.out.glyph('ok')} deleted ${what}`);
    else ctx.out.line(`${ctx.out.glyph('ok')} ${args.flag('append') ? 'appended to' : 'set'} ${variableLine(now)}`);
    return ExitCode.OK;
  },
};

export const rm: Command = {
  name: 'rm',
  summary: 'delete a variable (permissive, as the admin tools)',
  help: `usage: varstore rm <store> <name> [--guid <guid>] [--no-backup] [--backup-dir <dir>]

Deletes a variable through the daemon's store code in permissive mode, as varstore-rm does. PK, KEK,
db and dbx are deleted with an empty unsigned update; a private authenticated variable can only be
deleted by its signer (sign an empty payload with \`varstore sign\`, then \`varstore set --auth\`).
The store is backed up first unless --no-backup. Exit status 1 when there is no such variable.`,
  options: { guid: { kind: 'value' }, json: { kind: 'flag' }, ...WRITE_OPTIONS },
  async run(ctx) {
    const [storeText, nameArg] = positionals(ctx.args, 'rm', ['store', 'name']);
    const store = await loadStore(ctx, storeText!);
    const state = requireContent(store);
    const session = EditSession.open(state);
    const resolved = resolveName(nameArg!, ctx.args.value('guid'), state.variables, { mustExist: true });
    const what = `${resolved.text} (${guidToText(resolved.guid)})`;
    const existing = session.get(resolved.name, resolved.guid);
    if (existing === undefined || !isNonVolatile(existing.attributes)) {
      ctx.out.error(`rm ${what}: ${statusLine(EfiStatus.NOT_FOUND)}`);
      return ExitCode.FAILED;
    }
    const data = hasTimeBasedAttr(existing.attributes)
      ? unsignedUpdate(new Uint8Array(16), new Uint8Array(0))
      : new Uint8Array(0);
    const result = session.set(resolved.name, resolved.guid, existing.attributes, data);
    if (result.status !== EfiStatus.SUCCESS) {
      const code = reportRefusal(ctx.out, `rm ${what}`, result.status, result.reason);
      if (hasTimeBasedAttr(existing.attributes) && !isSignatureDatabase(resolved.name, resolved.guid)) {
        ctx.out.note('  note: a private authenticated variable is deleted by an empty update signed by its own signer');
      }
      return code;
    }
    const saved = await saveEdits(ctx, store, session, { backup: !ctx.args.flag('no-backup') });
    if (ctx.args.flag('json')) {
      ctx.out.json({
        store: store.spec.text,
        name: resolved.text,
        guid: guidToText(resolved.guid),
        action: 'deleted',
        variable: null,
        backup: saved.backup ?? null,
      });
      return ExitCode.OK;
    }
    ctx.out.line(`${ctx.out.glyph('ok')} deleted ${what}`);
    return ExitCode.OK;
  },
};
