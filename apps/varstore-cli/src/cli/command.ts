import { formatAttributes, formatEfiTime, fromUtf16le, guidToText, parseEfiTime, type Variable } from '@vmsb/efi';
import type { OptionSpecs, ParsedArgs } from './args.js';
import { CliError, ExitCode, explainStatus, statusLine, storeError } from './errors.js';
import { printable, type CliIo, type Output } from './output.js';
import { openStore, parseStoreSpec, type OpenedStore, type OpenOptions } from './stores.js';
import type { EditSession } from './session.js';
import { hex } from '@vmsb/protocol';

export interface CommandContext {
  readonly io: CliIo;
  readonly out: Output;
  readonly args: ParsedArgs;
  /** "ls", "certs check", ... for messages. */
  readonly command: string;
}

export interface Command {
  /** As typed: "ls", "keys create". */
  readonly name: string;
  /** One line for `varstore --help`. */
  readonly summary: string;
  /** The full `--help` text (usage line first). */
  readonly help: string;
  readonly options: OptionSpecs;
  run(ctx: CommandContext): Promise<number>;
}

/** Opens the store named on the command line (with --socket for vm: stores). */
export async function loadStore(ctx: CommandContext, text: string, options: OpenOptions = {}): Promise<OpenedStore> {
  const store = await openStore(parseStoreSpec(text, ctx.args.value('socket')), options);
  for (const w of store.warnings) ctx.out.warn(`${store.spec.text}: ${w}`);
  return store;
}

/** A store that must already hold something (read commands). */
export function requireContent(store: OpenedStore): NonNullable<OpenedStore['state']> {
  if (!store.exists) throw storeError(`${store.spec.text}: no such file`);
  if (store.state === undefined)
    throw new CliError(`${store.spec.text}: no variables yet (first boot: nothing stored)`, ExitCode.FAILED);
  return store.state;
}

/** The variable name for people: printable, without quotes. */
export function nameText(v: Pick<Variable, 'name'>): string {
  return printable(fromUtf16le(v.name));
}

/** `YYYY-MM-DDTHH:MM:SS`, or null for an all-zero timestamp. */
export function timestampText(bytes: Uint8Array): string | null {
  if (bytes.every((b) => b === 0)) return null;
  const t = parseEfiTime(bytes);
  return t === undefined ? null : formatEfiTime(t);
}

export { hex };

/** A descriptor timestamp for JSON: ISO-8601 UTC with `Z`, or null for an all-zero one. */
function isoTimestamp(bytes: Uint8Array): string | null {
  const t = timestampText(bytes);
  return t === null ? null : `${t}Z`;
}

/** The JSON form of a variable's metadata (ls, get). */
export function variableJson(v: Variable): Record<string, unknown> {
  return {
    name: fromUtf16le(v.name),
    guid: guidToText(v.guid),
    attributes: v.attributes >>> 0,
    attributesText: formatAttributes(v.attributes),
    size: v.data.length,
    timestamp: isoTimestamp(v.timestamp),
    signerDigest: v.signerDigest.every((b) => b === 0) ? null : hex(v.signerDigest),
  };
}

/**
 * Reports a write the store refused: the EFI status in words, the store's reason and the likely
 * fix; returns the exit code.
 */
export function reportRefusal(out: Output, what: string, status: bigint, reason: string | undefined): number {
  const e = explainStatus(status);
  out.error(`${what}: ${statusLine(status)}`);
  if (reason !== undefined) out.note(`  reason: ${reason}`);
  if (e.fix !== undefined) out.note(`  fix: ${e.fix}`);
  return ExitCode.FAILED;
}

/**
 * Saves an edit session's result: backs the store up first (unless --no-backup), writes it, and
 * tells where the backup is. Nothing is written when nothing changed.
 */
export async function saveEdits(
  ctx: CommandContext,
  store: OpenedStore,
  session: EditSession,
  options: { backup: boolean },
): Promise<{ saved: boolean; backup?: string }> {
  if (session.changes().length === 0) return { saved: false };
  let backup: string | undefined;
  if (options.backup) backup = await store.backup(ctx.io.now(), ctx.args.value('backup-dir'));
  await store.save(session.result());
  if (backup !== undefined) ctx.out.note(`backup: ${backup}`);
  return backup === undefined ? { saved: true } : { saved: true, backup };
}

/** The description line of a variable: name, GUID, attributes, size. */
export function variableLine(v: Variable): string {
  return `${nameText(v)} (${guidToText(v.guid)}): ${v.data.length} bytes, ${formatAttributes(v.attributes)}`;
}
