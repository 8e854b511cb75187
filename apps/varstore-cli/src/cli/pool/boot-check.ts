/** `boot-check vm:all`: the image verdicts for every UEFI VM of the pool, with the pool runner. */
import type { CommandContext } from '../command.js';
import { checkImage } from '../commands/boot-check.js';
import { ExitCode, messageOf } from '../errors.js';
import type { Tone } from '../output.js';
import { failedResult, parseJobs, printSummary, runOverVms } from './runner.js';
import { nvramState, withPool } from './vm-all.js';

const TONE = (result: string): Tone => (result === 'allowed' ? 'ok' : result === 'first_boot' ? 'warn' : 'bad');

export async function bootCheckPool(
  ctx: CommandContext,
  images: readonly { path: string; bytes: Uint8Array }[],
): Promise<number> {
  const jobs = parseJobs(ctx.args.value('jobs'));
  return withPool(ctx, async (_session, vms, poolSize) => {
    const results = await runOverVms(ctx, vms, {
      jobs,
      tone: TONE,
      work: async (vm) => {
        let state;
        try {
          state = nvramState(vm.nvram)?.state;
        } catch (e) {
          return failedResult(vm, messageOf(e));
        }
        const base = { vm: vm.uuid, name: vm.nameLabel, power_state: vm.powerState };
        if (state === undefined)
          return {
            ...base,
            fields: { images: [] },
            result: 'first_boot',
            reason:
              "no NVRAM yet: its first boot provisions the pool's default keys (see `varstore pool certs status`)",
          };
        const checks = images.map((i) => checkImage(state, `vm:${vm.uuid}`, i.path, i.bytes));
        const refused = checks.filter((c) => !c.allowed);
        return {
          ...base,
          fields: { images: checks },
          result: refused.length === 0 ? 'allowed' : 'refused',
          reason: refused.length === 0 ? null : refused.map((r) => `${r.image}: ${r.reason}`).join('; '),
        };
      },
    });
    printSummary(
      ctx,
      results,
      { selected: vms.length, pool: poolSize },
      ['allowed', 'refused', 'first_boot', 'failed'],
      TONE,
    );
    return results.every((r) => r.result === 'allowed') ? ExitCode.OK : ExitCode.FAILED;
  });
}
