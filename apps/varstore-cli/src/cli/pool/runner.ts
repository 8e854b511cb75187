/**
 * Runs one command over many VMs: at most `jobs` at a time, one line per VM as it completes
 * (NDJSON with --json, nothing else on stdout), a progress bar on a terminal, and a summary at the
 * end. A VM that fails never stops the others.
 */
import type { VmRecord } from '@vmsb/xapi';
import type { CommandContext } from '../command.js';
import { messageOf, usageError } from '../errors.js';
import { printable, type Tone } from '../output.js';
import { ProgressBar } from './progress.js';

/** What one VM came to. */
export interface VmResult {
  readonly vm: string;
  readonly name: string;
  readonly power_state: string;
  /** The command's own fields (between power_state and result in the JSON line). */
  readonly fields: Readonly<Record<string, unknown>>;
  /** One word: the verdict. */
  readonly result: string;
  /** Why, for people; null when the result says it all. */
  readonly reason: string | null;
}

const DEFAULT_JOBS = 8;
const MAX_JOBS = 64;

export function parseJobs(text: string | undefined): number {
  if (text === undefined) return DEFAULT_JOBS;
  if (!/^[0-9]{1,3}$/.test(text) || Number(text) < 1 || Number(text) > MAX_JOBS)
    throw usageError(`--jobs ${JSON.stringify(text)}: give a number of VMs to work on at once, 1 to ${MAX_JOBS}`);
  return Number(text);
}

/** The JSON line of a result: vm, name, power_state, the command's fields, result, reason. */
export function resultJson(r: VmResult): string {
  return JSON.stringify({
    vm: r.vm,
    name: r.name,
    power_state: r.power_state,
    ...r.fields,
    result: r.result,
    reason: r.reason,
  });
}

export function failedResult(vm: VmRecord, reason: string, fields: Readonly<Record<string, unknown>> = {}): VmResult {
  return { vm: vm.uuid, name: vm.nameLabel, power_state: vm.powerState, fields, result: 'failed', reason };
}

export interface RunOptions {
  readonly jobs: number;
  /** The glyph for a result word. */
  readonly tone: (result: string) => Tone;
  readonly work: (vm: VmRecord) => Promise<VmResult>;
}

/** Runs `work` on every VM; resolves to the results in completion order. */
export async function runOverVms(
  ctx: CommandContext,
  vms: readonly VmRecord[],
  options: RunOptions,
): Promise<VmResult[]> {
  const { out } = ctx;
  const json = ctx.args.flag('json');
  const bar = new ProgressBar(ctx.io, vms.length, { ascii: !out.unicode });
  const results: VmResult[] = [];
  const width = { result: 15 };

  const emit = (r: VmResult): void => {
    results.push(r);
    bar.clear();
    if (json) {
      out.line(resultJson(r));
    } else {
      // "running: shut it down ..." already names the power state.
      const power = r.reason?.startsWith(`${r.power_state.toLowerCase()}:`) ? '' : `  ${r.power_state.toLowerCase()}`;
      const reason = r.reason === null ? '' : `${power === '' ? '  ' : ': '}${printable(r.reason)}`;
      out.line(
        `${out.glyph(options.tone(r.result))} ${r.result.padEnd(width.result)} ${printable(r.name)}  vm:${r.vm}${power}${reason}`,
      );
    }
    bar.tick();
  };

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < vms.length) {
      const vm = vms[next++]!;
      let r: VmResult;
      try {
        r = await options.work(vm);
      } catch (e) {
        r = failedResult(vm, messageOf(e));
      }
      emit(r);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.jobs, Math.max(1, vms.length)) }, worker));
  } finally {
    bar.finish();
  }
  return results;
}

/**
 * The table at the end (people only): how many VMs per result, then the skipped and failed ones
 * by name with their reason.
 */
export function printSummary(
  ctx: CommandContext,
  results: readonly VmResult[],
  counts: { readonly selected: number; readonly pool: number },
  order: readonly string[],
  tone: (result: string) => Tone,
): void {
  const { out } = ctx;
  if (ctx.args.flag('json')) return;
  const byResult = new Map<string, number>();
  for (const r of results) byResult.set(r.result, (byResult.get(r.result) ?? 0) + 1);
  out.line();
  out.line(
    out.paint(
      `${counts.selected} UEFI VM${counts.selected === 1 ? '' : 's'} of ${counts.pool} in the pool (templates, snapshots, control domains and BIOS guests left out)`,
      'bold',
    ),
  );
  const words = [...order, ...[...byResult.keys()].filter((w) => !order.includes(w)).sort()];
  out.table(
    ['  RESULT', 'VMS'],
    words.filter((w) => byResult.has(w)).map((w) => [`  ${out.glyph(tone(w))} ${w}`, String(byResult.get(w))]),
    ['left', 'right'],
  );
  for (const word of ['skipped', 'failed']) {
    const listed = results.filter((r) => r.result === word).sort((a, b) => a.name.localeCompare(b.name));
    if (listed.length === 0) continue;
    out.line();
    out.line(out.paint(`${word[0]!.toUpperCase()}${word.slice(1)}:`, 'bold'));
    out.table(
      undefined,
      listed.map((r) => [`  ${printable(r.name)}`, `vm:${r.vm}`, printable(r.reason ?? '')]),
    );
  }
}
