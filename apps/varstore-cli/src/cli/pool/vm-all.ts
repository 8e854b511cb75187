/**
 * `vm:all`: every UEFI VM of the pool, for status, certs check and certs update. The VMs and
 * their NVRAM come from one VM.get_all_records call over XAPI's socket; checks need nothing more.
 * Updates write only halted VMs, each after a fresh read of its NVRAM and a backup, with the power
 * state asked for again right before the write.
 */
import type { StoreState } from '@vmsb/efi';
import { decodeVarsBlob, encodeVarsBlob } from '@vmsb/nvram';
import {
  decodeBase64Strict,
  DEFAULT_XAPI_SOCKET,
  EFI_VARIABLES_KEY,
  isUefiGuest,
  PoolClient,
  type PoolSession,
  type VmRecord,
} from '@vmsb/xapi';
import { analyzeStore, microsoftName, type StatusReport } from '../analysis.js';
import type { CommandContext } from '../command.js';
import { planCertsUpdate, type PkSigner } from '../commands/certs.js';
import { PCR7_WARNING } from '../edits.js';
import { CliError, ExitCode, messageOf } from '../errors.js';
import type { Tone } from '../output.js';
import { failedResult, parseJobs, printSummary, runOverVms, type VmResult } from './runner.js';
import {
  BackupDirectory,
  notHaltedReason,
  unreachable,
  unreachableError,
  writeIfHalted,
  xapiProblem,
} from './vm-write.js';

/** A VM's NVRAM from its record: undefined when it has none yet (never booted). */
export function nvramState(nvram: ReadonlyMap<string, string>): { blob: Uint8Array; state: StoreState } | undefined {
  const encoded = nvram.get(EFI_VARIABLES_KEY);
  if (encoded === undefined) return undefined;
  const blob = decodeBase64Strict(encoded);
  if (blob === undefined) throw new Error(`NVRAM["${EFI_VARIABLES_KEY}"] is not base64 (${encoded.length} characters)`);
  const decoded = decodeVarsBlob(blob);
  if (!decoded.ok) throw new Error(`NVRAM["${EFI_VARIABLES_KEY}"] is corrupt: ${decoded.error}`);
  return { blob, state: decoded.state };
}

/**
 * Logs in, reads every VM, runs `body` on the UEFI guests within the session, logs out. XAPI that
 * cannot be reached or cannot list the VMs is exit 3.
 */
async function withPool<T>(
  ctx: CommandContext,
  body: (session: PoolSession, vms: readonly VmRecord[], poolSize: number) => Promise<T>,
): Promise<T> {
  const socket = ctx.args.value('socket') ?? DEFAULT_XAPI_SOCKET;
  const client = new PoolClient({ socket });
  let listed = false;
  try {
    return await client.withSession(async (session) => {
      const all = await session.vmRecords();
      listed = true;
      return body(
        session,
        all.filter(isUefiGuest).sort((a, b) => a.nameLabel.localeCompare(b.nameLabel) || a.uuid.localeCompare(b.uuid)),
        all.length,
      );
    });
  } catch (e) {
    if (listed) throw e;
    if (e instanceof CliError) throw e;
    throw unreachableError(socket, e);
  }
}

const CHECK_TONE = (result: string): Tone =>
  result === 'update_ok' || result === 'updated' || result === 'ready' ? 'ok' : result === 'failed' ? 'bad' : 'warn';

const FIRST_BOOT = "no NVRAM yet: its first boot provisions the pool's default keys (see `varstore pool certs status`)";

function missingText(missing: readonly string[]): string {
  return `missing ${missing.map(microsoftName).join(', ')}`;
}

function base(vm: VmRecord): Pick<VmResult, 'vm' | 'name' | 'power_state'> {
  return { vm: vm.uuid, name: vm.nameLabel, power_state: vm.powerState };
}

function analysis(ctx: CommandContext, vm: VmRecord, state: StoreState | undefined): StatusReport {
  return analyzeStore(state, { store: `vm:${vm.uuid}`, format: 'vars-base64', now: ctx.io.now() });
}

/** 1 when a VM failed; else 4 when `needsUpdate` holds for one; else 0. */
function exitCode(results: readonly VmResult[], needsUpdate: (r: VmResult) => boolean): number {
  if (results.some((r) => r.result === 'failed')) return ExitCode.FAILED;
  if (results.some(needsUpdate)) return ExitCode.UPDATE_REQUIRED;
  return ExitCode.OK;
}

export async function statusPool(ctx: CommandContext): Promise<number> {
  const jobs = parseJobs(ctx.args.value('jobs'));
  return withPool(ctx, async (_session, vms, poolSize) => {
    const results = await runOverVms(ctx, vms, {
      jobs,
      tone: (r) =>
        r === 'ready' ? 'ok' : r === 'failed' || r === 'setup_mode' || r === 'certs_incomplete' ? 'bad' : 'warn',
      work: async (vm) => {
        let report: StatusReport;
        try {
          report = analysis(ctx, vm, nvramState(vm.nvram)?.state);
        } catch (e) {
          return failedResult(vm, messageOf(e));
        }
        const reason =
          report.certificates === 'update_required'
            ? `2023 certificates ${missingText(report.missing2023)}`
            : report.certificates === 'unknown'
              ? FIRST_BOOT
              : null;
        return { ...base(vm), fields: { ...report }, result: report.readiness, reason };
      },
    });
    printSummary(
      ctx,
      results,
      { selected: vms.length, pool: poolSize },
      ['ready', 'ready_no_dbx', 'first_boot', 'setup_mode', 'certs_incomplete', 'failed'],
      CHECK_TONE,
    );
    return results.some((r) => r.result === 'failed') ? ExitCode.FAILED : ExitCode.OK;
  });
}

export async function checkPool(ctx: CommandContext): Promise<number> {
  const jobs = parseJobs(ctx.args.value('jobs'));
  return withPool(ctx, async (_session, vms, poolSize) => {
    const results = await runOverVms(ctx, vms, {
      jobs,
      tone: CHECK_TONE,
      work: async (vm) => {
        let report: StatusReport;
        try {
          report = analysis(ctx, vm, nvramState(vm.nvram)?.state);
        } catch (e) {
          return failedResult(vm, messageOf(e));
        }
        const fields = { store: `vm:${vm.uuid}`, certificates: report.certificates, missing: report.missing2023 };
        if (report.certificates === 'update_required')
          return { ...base(vm), fields, result: 'update_required', reason: missingText(report.missing2023) };
        return {
          ...base(vm),
          fields,
          result: 'update_ok',
          reason: report.certificates === 'unknown' ? FIRST_BOOT : null,
        };
      },
    });
    printSummary(
      ctx,
      results,
      { selected: vms.length, pool: poolSize },
      ['update_ok', 'update_required', 'failed'],
      CHECK_TONE,
    );
    return exitCode(results, (r) => r.result === 'update_required');
  });
}

/** One VM's update: fresh NVRAM, plan, backup, power check, write. */
async function updateVm(
  ctx: CommandContext,
  session: PoolSession,
  vm: VmRecord,
  signer: PkSigner | undefined,
  backups: BackupDirectory | undefined,
): Promise<VmResult> {
  const { args } = ctx;
  const store = `vm:${vm.uuid}`;
  const fields = (extra: Record<string, unknown>) => ({ store, dryRun: args.flag('dry-run'), ...extra });
  const unchanged = (certificates: string, reason: string | null): VmResult => ({
    ...base(vm),
    fields: fields({ before: certificates, after: certificates, added: [], skipped: [], changes: [] }),
    result: certificates === 'update_required' ? 'skipped' : 'update_ok',
    reason,
  });

  // From the record: what needs doing, and whether it can be done now.
  let recorded;
  try {
    recorded = nvramState(vm.nvram);
  } catch (e) {
    return failedResult(vm, messageOf(e), fields({}));
  }
  const first = analysis(ctx, vm, recorded?.state);
  if (first.certificates !== 'update_required')
    return unchanged(first.certificates, first.certificates === 'unknown' ? FIRST_BOOT : null);
  if (vm.powerState !== 'Halted') return unchanged('update_required', notHaltedReason(vm.powerState));

  // The NVRAM as it is now (it may have changed since the list was read): the base of the write and of the backup.
  let current;
  try {
    current = nvramState(await session.nvram(vm.ref));
  } catch (e) {
    if (unreachable(e)) return failedResult(vm, `cannot read its NVRAM: ${xapiProblem(e)}`, fields({}));
    return failedResult(vm, messageOf(e), fields({}));
  }
  let plan;
  try {
    plan = planCertsUpdate(ctx, store, current?.state, 'vars-base64', signer);
  } catch (e) {
    return failedResult(vm, messageOf(e), fields({}));
  }
  const { session: edits, ...outcome } = plan;
  const doc = fields({ ...outcome });
  const notAdded = outcome.skipped.map((s) => `${microsoftName(s.id)} not added: ${s.reason}`).join('; ');
  if (edits === undefined || edits.changes().length === 0) {
    const result = outcome.after === 'update_required' ? 'skipped' : 'update_ok';
    return { ...base(vm), fields: doc, result, reason: notAdded === '' ? null : notAdded };
  }
  const adds = `${outcome.added.map(microsoftName).join(', ')}`;
  if (args.flag('dry-run'))
    return {
      ...base(vm),
      fields: doc,
      result: 'skipped',
      reason: `dry run: would add ${adds}${notAdded === '' ? '' : `; ${notAdded}`}`,
    };

  let backup: string | undefined;
  if (backups !== undefined && current !== undefined) {
    try {
      backup = await backups.save(vm.uuid, current.blob);
    } catch (e) {
      return failedResult(vm, `not written: ${messageOf(e)}`, doc);
    }
  }
  const encoded = Buffer.from(encodeVarsBlob(edits.result(), { nonVolatileOnly: true })).toString('base64');
  const written = await writeIfHalted(session, vm.ref, encoded);
  const withBackup = { ...doc, ...(backup !== undefined ? { backup } : {}) };
  if (!written.written) {
    if (written.kind === 'not-halted')
      return {
        ...base(vm),
        power_state: written.powerState,
        fields: withBackup,
        result: 'skipped',
        reason: written.reason,
      };
    return { ...base(vm), fields: withBackup, result: 'failed', reason: written.reason };
  }
  return {
    ...base(vm),
    fields: withBackup,
    result: 'updated',
    reason: `added ${adds}${notAdded === '' ? '' : `; ${notAdded}`}`,
  };
}

export async function updatePool(ctx: CommandContext, signer: PkSigner | undefined): Promise<number> {
  const { args, out } = ctx;
  const jobs = parseJobs(args.value('jobs'));
  const backups = args.flag('no-backup') ? undefined : new BackupDirectory(args.value('backup-dir'), ctx.io.now());
  return withPool(ctx, async (session, vms, poolSize) => {
    const results = await runOverVms(ctx, vms, {
      jobs,
      tone: CHECK_TONE,
      work: (vm) => updateVm(ctx, session, vm, signer, backups),
    });
    printSummary(
      ctx,
      results,
      { selected: vms.length, pool: poolSize },
      ['updated', 'update_ok', 'skipped', 'failed'],
      CHECK_TONE,
    );
    if (results.some((r) => r.result === 'updated')) {
      out.warn(PCR7_WARNING);
      const dir = backups === undefined ? undefined : await backups.path();
      if (dir !== undefined) out.note(`backups: ${dir} (restore one with \`varstore restore <file> vm:<uuid>\`)`);
    }
    // Still needing the update: skipped VMs, and updated ones whose KEK could not be added.
    return exitCode(results, (r) => r.result === 'skipped' || r.fields.after === 'update_required');
  });
}
