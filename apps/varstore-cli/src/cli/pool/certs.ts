/**
 * The pool's default Secure Boot keys: what a VM gets at its first boot. XAPI keeps them in
 * Pool.custom_uefi_certificates (base64 of a tar of PK.auth, KEK.auth, db.auth, dbx.auth), writes
 * them to every host's /var/lib/varstored, and varstored applies them when a VM has no NVRAM yet;
 * when the field is empty the hosts' own defaults (Pool.uefi_certificates) apply.
 *
 * `install` refuses a set that a first boot would reject, by running the daemon's own first-boot
 * provisioning on it (@vmsb/nvram's provisionFirstBoot, as varstored runs it, into a fresh VariableStore with @vmsb/auth), and a
 * set whose signatures do not chain PK → KEK → db/dbx, by applying it to an enforcing store in user
 * mode: PK first, then KEK (must be signed by the PK), then db and dbx (by the PK or a KEK).
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createAuthenticator, parseAuthentication2, WIN_CERT_REVISION } from '@vmsb/auth';
import {
  Attr,
  Attrs,
  checkSignatureLists,
  efiTimeProblem,
  formatEfiTime,
  parseEfiTime,
  signatureTypeOf,
  utf16le,
  VariableStore,
  type StoreState,
} from '@vmsb/efi';
import { EfiStatus, Limits, statusName } from '@vmsb/protocol';
import {
  ArchiveError,
  decodeUefiCertificates,
  DEFAULT_XAPI_SOCKET,
  encodeUefiCertificates,
  PoolClient,
  type ArchiveMember,
  type PoolSession,
  XapiError,
} from '@vmsb/xapi';
import { AUTH_FILES, type AuthFile, type ProvisionLog, provisionFirstBoot } from '@vmsb/nvram';
import { analyzeStore, certificateReport, microsoftName, type CertificateReport } from '../analysis.js';
import { positionals } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { CliError, ExitCode, messageOf, usageError } from '../errors.js';
import { readInput } from '../inputs.js';
import { printable } from '../output.js';
import { fileExists } from '../stores.js';
import { unreachable, unreachableError, xapiProblem } from './vm-write.js';

type AuthName = (typeof AUTH_FILES)[number]['name'];

/** PK, KEK, db or dbx from a file name such as `KEK.auth` (any directory, case-insensitive). */
function authNameOf(path: string): AuthName | undefined {
  const stem = basename(path).replace(/\.auth$/i, '');
  return AUTH_FILES.find((f) => f.name.toLowerCase() === stem.toLowerCase())?.name;
}

export interface AuthFileReport {
  readonly name: AuthName;
  readonly size: number;
  /** secureboot-certs `report` prints the MD5; both are given. */
  readonly md5: string;
  readonly sha256: string;
  /** The descriptor's timestamp, `YYYY-MM-DDTHH:MM:SS`, or null when it cannot be read. */
  readonly timestamp: string | null;
  readonly signed: boolean;
  readonly certificates: readonly CertificateReport[];
  readonly hashes: number;
  /** Why a first boot or the signature chain would refuse it (empty: none). */
  readonly problems: readonly string[];
}

/** What one .auth file is, and what is wrong with it on its own. */
function inspectAuthFile(name: AuthName, data: Uint8Array, now: Date): AuthFileReport {
  const problems: string[] = [];
  const hash = (algorithm: string) => createHash(algorithm).update(data).digest('hex');
  const report = {
    name,
    size: data.length,
    md5: hash('md5'),
    sha256: hash('sha256'),
    timestamp: null as string | null,
    signed: false,
    certificates: [] as CertificateReport[],
    hashes: 0,
    problems,
  };
  if (data.length > Limits.DATA_MAX) {
    problems.push(`${data.length} bytes is more than a variable can hold (${Limits.DATA_MAX})`);
    return report;
  }
  const parsed = parseAuthentication2(data);
  if (!parsed.ok) {
    problems.push(`not an EFI_VARIABLE_AUTHENTICATION_2 update: ${parsed.reason}`);
    return report;
  }
  const d = parsed.descriptor;
  report.timestamp = formatEfiTime(d.time);
  report.signed = d.certData.length > 0;
  if (d.revision !== WIN_CERT_REVISION)
    problems.push(`WIN_CERTIFICATE wRevision is 0x${d.revision.toString(16)}, not 0x0200`);
  const allZero = d.timestamp.every((b) => b === 0);
  const timeProblem = allZero ? undefined : efiTimeProblem(parseEfiTime(d.timestamp)!);
  if (timeProblem !== undefined) problems.push(`the timestamp is not a date: ${timeProblem}`);
  const lists = checkSignatureLists(d.payload);
  if (!lists.ok) {
    problems.push(`the payload is not a list of signature lists: ${lists.reason}`);
    return report;
  }
  for (const list of lists.lists) {
    for (const s of list.signatures) {
      if (signatureTypeOf(list.type)?.kind === 'x509') {
        const c = certificateReport(s.data, s.owner, now);
        if (c.problem !== null) problems.push(c.problem);
        else report.certificates.push(c);
      } else {
        report.hashes++;
      }
    }
  }
  if (name === 'PK' && (report.certificates.length !== 1 || report.hashes !== 0))
    problems.push('PK must hold exactly one X.509 certificate');
  return report;
}

function collectingLogger(lines: string[]): ProvisionLog {
  const push = (message: string) => lines.push(message);
  return {
    error: push,
    warn: push,
    info: () => undefined,
  };
}

function storeForFirstBoot(): VariableStore {
  return VariableStore.create({
    platform: { secureBoot: true, authEnforce: true },
    authenticator: createAuthenticator(),
  });
}

/**
 * A VM's first boot with these files, as the daemon runs it. Resolves to the NVRAM it would
 * start with, or the reason the daemon would fail to start.
 */
export async function simulateFirstBoot(
  files: ReadonlyMap<AuthName, Uint8Array>,
): Promise<{ ok: true; state: StoreState; applied: string[]; log: string[] } | { ok: false; reason: string }> {
  const store = storeForFirstBoot();
  const log: string[] = [];
  const authFiles: AuthFile[] = AUTH_FILES.map((spec) => {
    const data = files.get(spec.name);
    const path = `${spec.name}.auth`;
    return data === undefined
      ? { ...spec, path, problem: { kind: 'missing', message: `Auth file '${path}' is missing!` } }
      : { ...spec, path, data };
  });
  try {
    const applied = await provisionFirstBoot(store, authFiles, undefined, collectingLogger(log));
    return { ok: true, state: store.state(), applied, log };
  } catch (e) {
    return { ok: false, reason: messageOf(e) };
  }
}

/** The signature chain PK → KEK → db/dbx, checked by an enforcing store in user mode. */
function chainProblems(files: ReadonlyMap<AuthName, Uint8Array>): string[] {
  const store = storeForFirstBoot();
  const problems: string[] = [];
  const order: { name: AuthName; signer: string }[] = [
    { name: 'PK', signer: '' },
    { name: 'KEK', signer: 'the PK' },
    { name: 'db', signer: 'the PK or a KEK certificate' },
    { name: 'dbx', signer: 'the PK or a KEK certificate' },
  ];
  for (const { name, signer } of order) {
    const data = files.get(name);
    if (data === undefined) continue;
    const spec = AUTH_FILES.find((f) => f.name === name)!;
    const outcome = store.setVariable(
      utf16le(name),
      spec.guid,
      Attrs.NV_BS_RT_AT | (spec.append ? Attr.APPEND_WRITE : 0),
      data,
    );
    if (outcome.status === EfiStatus.SUCCESS) {
      outcome.pending?.commit();
      continue;
    }
    problems.push(
      `${name}.auth is not signed by ${signer || 'a key the store accepts'} of this set (${statusName(outcome.status)}${outcome.reason !== undefined ? `: ${outcome.reason}` : ''})`,
    );
    if (name === 'PK' || name === 'KEK') break;
  }
  return problems;
}

export interface PoolCertificatesReport {
  /** custom: Pool.custom_uefi_certificates; default: the hosts' (Pool.uefi_certificates); none. */
  readonly source: 'custom' | 'default' | 'none';
  readonly files: readonly AuthFileReport[];
  /** Members XAPI extracts but varstored does not read. */
  readonly otherFiles: readonly string[];
  /** What a new VM starts with (XAPI's readiness words), or null when its first boot would fail. */
  readonly readiness: string | null;
  readonly certificates: string | null;
  readonly missing: readonly string[];
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
}

/** Everything about a set of auth files: each one, the first boot, the chain, the 2023 CAs. */
async function reportSet(
  source: PoolCertificatesReport['source'],
  members: readonly ArchiveMember[],
  now: Date,
): Promise<PoolCertificatesReport> {
  const files = new Map<AuthName, Uint8Array>();
  const otherFiles: string[] = [];
  for (const m of members) {
    const name = /\.auth$/.test(m.name) ? authNameOf(m.name) : undefined;
    // varstored opens exactly `<name>.auth`.
    if (name === undefined || m.name !== `${name}.auth`) otherFiles.push(m.name);
    else files.set(name, m.data);
  }
  const reports = AUTH_FILES.filter((f) => files.has(f.name)).map((f) =>
    inspectAuthFile(f.name, files.get(f.name)!, now),
  );
  const problems = reports.flatMap((r) => r.problems.map((p) => `${r.name}.auth: ${p}`));
  const warnings: string[] = [];
  for (const required of ['PK', 'KEK', 'db'] as const)
    if (!files.has(required) && source !== 'none')
      problems.push(`${required}.auth is missing: new VMs would boot in setup mode (no Secure Boot)`);
  if (!files.has('dbx') && source !== 'none') warnings.push('no dbx.auth: new VMs start with nothing revoked');
  for (const other of otherFiles)
    warnings.push(`${other}: not a file varstored reads (PK.auth, KEK.auth, db.auth, dbx.auth)`);
  let readiness: string | null = null;
  let certificates: string | null = null;
  let missing: readonly string[] = [];
  if (files.size > 0) {
    const boot = await simulateFirstBoot(files);
    if (!boot.ok) {
      problems.push(`a first boot would fail: ${boot.reason}`);
    } else {
      const analysis = analyzeStore(boot.state, { store: 'pool', format: null, now });
      readiness = analysis.readiness;
      certificates = analysis.certificates;
      missing = analysis.missing2023;
      if (analysis.certificates === 'update_required')
        warnings.push(`new VMs would need the 2023 update: ${missing.map(microsoftName).join(', ')} missing`);
    }
    problems.push(...chainProblems(files));
  } else {
    readiness = 'setup_mode';
  }
  for (const r of reports)
    for (const c of r.certificates)
      if (c.expired)
        warnings.push(`${r.name}.auth: "${c.commonName ?? c.subject}" expired on ${c.notAfter.slice(0, 10)}`);
  return { source, files: reports, otherFiles, readiness, certificates, missing, problems, warnings };
}

async function withPoolSession<T>(
  ctx: CommandContext,
  body: (session: PoolSession, pool: string) => Promise<T>,
): Promise<T> {
  const socket = ctx.args.value('socket') ?? DEFAULT_XAPI_SOCKET;
  try {
    return await new PoolClient({ socket }).withSession(async (session) => body(session, await session.pool()));
  } catch (e) {
    if (e instanceof CliError) throw e;
    if (unreachable(e)) throw unreachableError(socket, e);
    throw new CliError(`XAPI refused: ${xapiProblem(e)}`, ExitCode.FAILED);
  }
}

/** The active set: custom when set, else the hosts' defaults. */
async function activeSet(
  session: PoolSession,
  pool: string,
): Promise<{ source: PoolCertificatesReport['source']; members: ArchiveMember[] }> {
  const custom = await session.customUefiCertificates(pool);
  const source = custom !== '' ? 'custom' : 'default';
  const value = custom !== '' ? custom : await session.uefiCertificates(pool);
  try {
    const members = decodeUefiCertificates(value);
    return { source: members.length === 0 && source === 'default' ? 'none' : source, members };
  } catch (e) {
    const field = source === 'custom' ? 'Pool.custom_uefi_certificates' : 'Pool.uefi_certificates';
    throw new CliError(
      `${field} is not a base64 tar of .auth files: ${e instanceof ArchiveError ? e.message : messageOf(e)}`,
      ExitCode.FAILED,
      source === 'custom'
        ? 'replace it with `varstore pool certs install`, or clear it with `varstore pool certs clear`'
        : undefined,
    );
  }
}

function printReport(ctx: CommandContext, r: PoolCertificatesReport): void {
  const { out } = ctx;
  const sourceText = {
    custom: 'custom keys (Pool.custom_uefi_certificates)',
    default: "the hosts' default keys (Pool.uefi_certificates)",
    none: 'no keys: new VMs boot in setup mode',
  }[r.source];
  out.line(out.paint(`New VMs get ${sourceText}`, 'bold'));
  const rows: [string, string][] = [];
  if (r.readiness !== null)
    rows.push([
      '  Readiness',
      `${out.glyph(r.readiness === 'ready' ? 'ok' : r.readiness === 'ready_no_dbx' ? 'warn' : 'bad')} ${r.readiness}`,
    ]);
  if (r.certificates !== null)
    rows.push([
      '  2023 CAs',
      r.certificates === 'update_required'
        ? `${out.glyph('bad')} update_required: ${r.missing.map(microsoftName).join(', ')} missing`
        : `${out.glyph('ok')} ${r.certificates}`,
    ]);
  if (rows.length > 0) out.fields(rows);
  if (r.files.length > 0) {
    out.line();
    out.table(
      ['  FILE', 'SIZE', 'TIMESTAMP', 'SIGNED', 'MD5'],
      r.files.map((f) => [`  ${f.name}.auth`, String(f.size), f.timestamp ?? '-', f.signed ? 'yes' : 'no', f.md5]),
      ['left', 'right'],
    );
    const certs = r.files.flatMap((f) => f.certificates.map((c) => ({ f, c })));
    if (certs.length > 0) {
      out.line();
      out.table(
        ['  CERTIFICATE', 'IN', 'MICROSOFT', 'EXPIRES'],
        certs.map(({ f, c }) => [
          `  ${out.glyph(c.generation === '2011' || c.expired ? 'warn' : 'ok')} ${printable(c.commonName ?? c.subject)}`,
          f.name,
          c.generation,
          c.expired ? out.tone(`${c.notAfter.slice(0, 10)} (expired)`, 'warn') : c.notAfter.slice(0, 10),
        ]),
      );
    }
  }
  if (r.problems.length + r.warnings.length > 0) out.line();
  for (const p of r.problems) out.line(`  ${out.glyph('bad')} ${p}`);
  for (const w of r.warnings) out.line(`  ${out.glyph('warn')} ${w}`);
}

const POOL_NOTE = `Pool.custom_uefi_certificates is honoured only on hosts whose xapi.conf sets
allow-custom-uefi-certs=true; XAPI writes it to every host's /var/lib/varstored, and varstored
applies those files at a VM's first boot only (VMs that have NVRAM keep their keys).`;

export const poolCertsStatus: Command = {
  name: 'pool certs status',
  summary: 'the keys new VMs of the pool get: source, readiness, 2023 CAs, expiries',
  help: `usage: varstore pool certs status [--json] [--socket <path>]

What a new VM of the pool gets at its first boot: the custom keys (Pool.custom_uefi_certificates)
or, when none are set, the hosts' defaults (Pool.uefi_certificates); each .auth file (size,
timestamp, MD5 as secureboot-certs reports it, certificates and their expiry); the readiness a VM
starts with and whether the Microsoft 2023 CAs are in, from the daemon's own first-boot code.
${POOL_NOTE}`,
  options: { json: { kind: 'flag' } },
  async run(ctx) {
    positionals(ctx.args, ctx.command, []);
    const report = await withPoolSession(ctx, async (session, pool) => {
      const { source, members } = await activeSet(session, pool);
      return reportSet(source, members, ctx.io.now());
    });
    if (ctx.args.flag('json')) ctx.out.json(report);
    else printReport(ctx, report);
    return ExitCode.OK;
  },
};

export const poolCertsInstall: Command = {
  name: 'pool certs install',
  summary: "set the pool's keys for new VMs from PK.auth KEK.auth db.auth [dbx.auth], validated",
  help: `usage: varstore pool certs install <PK.auth> <KEK.auth> <db.auth> [<dbx.auth>] [--dry-run]
                               [--skip-chain-check] [--json] [--socket <path>]

Sets Pool.custom_uefi_certificates, as XCP-ng's secureboot-certs install does, after checking
each file: an EFI_VARIABLE_AUTHENTICATION_2 update (WIN_CERT_TYPE_EFI_GUID, wRevision 0x0200,
PKCS#7), a valid timestamp, well-formed signature lists, a PK of exactly one certificate; that a
first boot applies them all (varstored's own provisioning code); and that the signatures chain
PK → KEK → db/dbx (--skip-chain-check: accept a KEK not signed by the PK, as a first boot does,
though the guest could then never take a KEK update signed by its PK). Files are named by what
they hold: PK.auth, KEK.auth, db.auth, dbx.auth (any directory). --dry-run checks only.
${POOL_NOTE}`,
  options: { json: { kind: 'flag' }, 'dry-run': { kind: 'flag' }, 'skip-chain-check': { kind: 'flag' } },
  async run(ctx) {
    const { args, out } = ctx;
    const paths = args.positionals;
    if (paths.length === 0)
      throw usageError(
        'pool certs install: give PK.auth, KEK.auth, db.auth and optionally dbx.auth',
        'see `varstore pool certs install --help`',
      );
    const members: ArchiveMember[] = [];
    for (const path of paths) {
      const name = authNameOf(path);
      if (name === undefined)
        throw usageError(`${path}: name the file after the variable it sets: PK.auth, KEK.auth, db.auth or dbx.auth`);
      if (members.some((m) => m.name === `${name}.auth`)) throw usageError(`${name}.auth is given twice`);
      members.push({ name: `${name}.auth`, data: await readInput(path, `${name}.auth`, Limits.DATA_MAX + 1) });
    }
    // In the order varstored applies them.
    members.sort(
      (a, b) =>
        AUTH_FILES.findIndex((f) => `${f.name}.auth` === a.name) -
        AUTH_FILES.findIndex((f) => `${f.name}.auth` === b.name),
    );
    const report = await reportSet('custom', members, ctx.io.now());
    const refusals = args.flag('skip-chain-check')
      ? report.problems.filter((p) => !/ is not signed by /.test(p))
      : report.problems;
    if (refusals.length > 0) {
      if (args.flag('json')) out.json({ ...report, installed: false });
      for (const p of refusals) out.error(p);
      throw new CliError(
        'pool certs install: refused, nothing installed',
        ExitCode.FAILED,
        'fix the files (`varstore verify <file.auth> --var <name> --anchor <cert>` explains a signature)',
      );
    }
    const value = encodeUefiCertificates(members, Math.floor(ctx.io.now().getTime() / 1000));
    if (!args.flag('dry-run')) {
      await withPoolSession(ctx, async (session, pool) => {
        try {
          await session.setCustomUefiCertificates(pool, value);
        } catch (e) {
          if (e instanceof XapiError && e.errorDescription[0] === 'OPERATION_NOT_ALLOWED')
            throw new CliError(
              `XAPI refused: ${xapiProblem(e)}`,
              ExitCode.FAILED,
              'set allow-custom-uefi-certs=true in /etc/xapi.conf on every host of the pool and restart the toolstack',
            );
          throw e;
        }
      });
    }
    if (args.flag('json')) {
      out.json({ ...report, installed: !args.flag('dry-run') });
    } else {
      printReport(ctx, report);
      out.line();
      out.line(
        args.flag('dry-run')
          ? `${out.glyph('ok')} the files would be accepted (dry run: nothing installed)`
          : `${out.glyph('ok')} installed: new VMs of the pool get these keys at their first boot; existing VMs keep theirs`,
      );
    }
    return ExitCode.OK;
  },
};

export const poolCertsExtract: Command = {
  name: 'pool certs extract',
  summary: "write the pool's keys for new VMs (PK.auth ... dbx.auth) into a directory",
  help: `usage: varstore pool certs extract <dir> [--force] [--socket <path>]

Writes the .auth files new VMs get (the custom set, else the hosts' defaults) into <dir>, which is
created if needed. Existing files are not replaced unless --force is given.`,
  options: { force: { kind: 'flag' } },
  async run(ctx) {
    const [dir] = positionals(ctx.args, ctx.command, ['dir']);
    const { source, members } = await withPoolSession(ctx, (session, pool) => activeSet(session, pool));
    if (members.length === 0)
      throw new CliError('the pool has no keys for new VMs: nothing to extract', ExitCode.FAILED);
    try {
      await mkdir(dir!, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw new CliError(`${dir}: ${messageOf(e)}`, ExitCode.STORE);
    }
    for (const m of members) {
      const path = join(dir!, m.name);
      if (!ctx.args.flag('force') && (await fileExists(path)))
        throw new CliError(`${path} exists; nothing replaced (--force replaces)`, ExitCode.STORE);
    }
    for (const m of members) {
      const path = join(dir!, m.name);
      try {
        await writeFile(path, m.data, { mode: 0o644 });
      } catch (e) {
        throw new CliError(`${path}: ${messageOf(e)}`, ExitCode.STORE);
      }
      ctx.out.line(path);
    }
    ctx.out.note(
      `from ${source === 'custom' ? 'Pool.custom_uefi_certificates' : "Pool.uefi_certificates (the hosts' defaults)"}`,
    );
    return ExitCode.OK;
  },
};

export const poolCertsClear: Command = {
  name: 'pool certs clear',
  summary: "drop the pool's custom keys: new VMs get the hosts' defaults again",
  help: `usage: varstore pool certs clear [--socket <path>]

Empties Pool.custom_uefi_certificates, as secureboot-certs clear does: new VMs get the hosts'
default keys (Pool.uefi_certificates) at their first boot. Existing VMs keep their keys.`,
  options: {},
  async run(ctx) {
    positionals(ctx.args, ctx.command, []);
    const had = await withPoolSession(ctx, async (session, pool) => {
      const before = await session.customUefiCertificates(pool);
      if (before !== '') await session.setCustomUefiCertificates(pool, '');
      return before !== '';
    });
    ctx.out.line(
      had
        ? `${ctx.out.glyph('ok')} cleared: new VMs get the hosts' default keys`
        : `${ctx.out.glyph('ok')} no custom keys were set: new VMs already get the hosts' default keys`,
    );
    return ExitCode.OK;
  },
};
