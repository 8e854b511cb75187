import { isNonVolatile, type StoreState } from '@vmsb/efi';
import { replaceFile } from '@vmsb/nvram';
import {
  decodeOvmfFd,
  encodeNvram,
  formatFromFileName,
  nvramLosses,
  type NvramFormat,
  type OvmfLayout,
} from '@vmsb/nvram/formats';
import { positionals } from '../args.js';
import { loadStore, nameText, type Command } from '../command.js';
import { CliError, ExitCode, messageOf, storeError, usageError } from '../errors.js';
import { readInput } from '../inputs.js';
import { fileExists, formatName, openStore, parseFormat, parseStoreSpec } from '../stores.js';

export const convert: Command = {
  name: 'convert',
  summary: 'convert a store between VARS (binary, base64), QEMU/virt-firmware JSON and OVMF .fd',
  help: `usage: varstore convert <in> <out> [--to vars|vars-base64|json|fd] [--layout 4m|2m] [--template <fd>]
                        [--allow-loss] [--force] [--backup-dir <dir>] [--socket <path>]

Reads any store and writes it in another format: timestamps, signer digests and non-ASCII names are
kept wherever the target can hold them. What the target cannot hold makes the conversion stop with
the list of what would be lost, unless --allow-loss:
  json   cannot hold the VARS blob's MOR key and PPI data
  fd     cannot hold those, nor the signer digests of private authenticated variables
  json and fd keep non-volatile variables only (a save file's volatile ones are left out)
<in> and <out> are files or vm:<uuid> (reading or replacing a VM's NVRAM in XAPI; the NVRAM is
backed up into --backup-dir first). --to defaults to the format <out>'s name suggests (.json, .fd,
.b64), else a binary VARS blob. An .fd is written into --template, else into <in> when it is an
.fd, else into a fresh OVMF image of --layout (default 4m). <out> is not replaced unless --force.`,
  options: {
    to: { kind: 'value' },
    layout: { kind: 'value' },
    template: { kind: 'value' },
    'allow-loss': { kind: 'flag' },
    force: { kind: 'flag' },
    'backup-dir': { kind: 'value' },
  },
  async run(ctx) {
    const { args, out } = ctx;
    const [inText, outText] = positionals(args, 'convert', ['in', 'out']);
    const outSpec = parseStoreSpec(outText!, args.value('socket'));
    const layoutText = args.value('layout');
    if (layoutText !== undefined && layoutText !== '4m' && layoutText !== '2m')
      throw usageError('convert: --layout is 4m or 2m');
    const layout = layoutText as OvmfLayout | undefined;
    let target: NvramFormat =
      parseFormat(args.value('to')) ??
      (outSpec.kind === 'xapi' ? 'vars-base64' : (formatFromFileName(outSpec.path) ?? 'vars'));
    if (outSpec.kind === 'xapi' && target !== 'vars' && target !== 'vars-base64')
      throw usageError('convert: XAPI holds a VARS blob; --to does not apply to vm: stores');
    if (outSpec.kind === 'xapi') target = 'vars-base64';
    if (outSpec.kind === 'file' && !args.flag('force') && (await fileExists(outSpec.path))) {
      throw usageError(`convert: ${outSpec.path} exists; add --force to replace it`);
    }

    const input = await loadStore(ctx, inText!);
    if (!input.exists) throw storeError(`${inText}: no such file`);
    if (input.state === undefined)
      throw new CliError(`${inText}: no variables yet (first boot): nothing to convert`, ExitCode.FAILED);
    let state: StoreState = input.state;
    const losses: string[] = [];
    if (target === 'json' || target === 'ovmf-fd') {
      const volatile = state.variables.filter((v) => !isNonVolatile(v.attributes));
      if (volatile.length > 0) {
        losses.push(
          `${volatile.length} volatile variable${volatile.length === 1 ? '' : 's'} (${volatile.slice(0, 5).map(nameText).join(', ')}${volatile.length > 5 ? ', …' : ''}): an NV store keeps none`,
        );
        state = { ...state, variables: state.variables.filter((v) => isNonVolatile(v.attributes)) };
      }
    }
    losses.push(...nvramLosses(state, target));
    if (losses.length > 0) {
      if (!args.flag('allow-loss')) {
        out.error(`convert: ${formatName(target)} cannot hold everything in ${inText}:`);
        for (const l of losses) out.note(`  - ${l}`);
        out.note('  nothing was written; --allow-loss converts anyway, leaving these out');
        return ExitCode.FAILED;
      }
      for (const l of losses) out.warn(`left out: ${l}`);
    }

    if (input.varsVersion === 1 && (target === 'vars' || target === 'vars-base64'))
      out.note(`${inText} is a VARS v1 blob: written as VARS v2 (which adds the MOR key and TCG2 PPI data, zeroed)`);

    if (outSpec.kind === 'xapi') {
      const dest = await openStore(outSpec);
      const backup = await dest.backup(ctx.io.now(), args.value('backup-dir'));
      if (backup !== undefined) out.note(`backup: ${backup}`);
      await dest.save(state);
    } else {
      let template: Uint8Array | undefined;
      if (target === 'ovmf-fd') {
        if (args.value('template') !== undefined)
          template = await readInput(args.value('template')!, 'template', 64 * 1024 * 1024);
        else if (input.format === 'ovmf-fd' && input.spec.kind === 'file' && layout === undefined)
          template = await readInput(input.spec.path, 'template', 64 * 1024 * 1024);
        if (template !== undefined) {
          const t = decodeOvmfFd(template);
          if (!t.ok) throw storeError(`--template: ${t.error}`);
        }
      } else if (args.value('template') !== undefined || layout !== undefined) {
        throw usageError('convert: --template and --layout apply to fd output');
      }
      let bytes: Uint8Array;
      try {
        bytes = encodeNvram(state, target, {
          ...(template !== undefined ? { template } : {}),
          ...(layout !== undefined ? { layout } : {}),
        });
      } catch (e) {
        throw new CliError(`convert: cannot write ${formatName(target)}: ${messageOf(e)}`, ExitCode.FAILED);
      }
      try {
        await replaceFile(outSpec.path, bytes);
      } catch (e) {
        throw storeError(messageOf(e));
      }
    }
    out.line(
      `${out.glyph('ok')} ${state.variables.length} variables: ${inText} (${formatName(input.format)}) → ${outText} (${formatName(target)})`,
    );
    return ExitCode.OK;
  },
};
