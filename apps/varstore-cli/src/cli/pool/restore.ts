/**
 * `varstore restore <file> vm:<uuid>`: puts a saved NVRAM back into a halted VM, with the checks
 * of every write (the VM is halted, asked again right before the write) and a backup of what it
 * replaces. A VARS blob (binary or base64, what the backups hold) goes back byte for byte.
 */
import { encodeVarsBlob, decodeVarsBlob } from '@vmsb/nvram';
import { decodeNvram, detectFormat } from '@vmsb/nvram/formats';
import { DEFAULT_XAPI_SOCKET, EFI_VARIABLES_KEY, PoolClient, XapiError, decodeBase64Strict } from '@vmsb/xapi';
import { positionals } from '../args.js';
import type { Command } from '../command.js';
import { CliError, ExitCode, storeError, usageError } from '../errors.js';
import { readInput } from '../inputs.js';
import { formatName, parseStoreSpec } from '../stores.js';
import { OvmfFd } from '@vmsb/nvram/formats';
import { BackupDirectory, unreachable, unreachableError, writeIfHalted, xapiProblem } from './vm-write.js';

/** The VARS blob to write for a file: its own bytes when it is one, else its variables re-encoded. */
function blobOf(path: string, bytes: Uint8Array): { blob: Uint8Array; exact: boolean; format: string } {
  const format = detectFormat(bytes);
  if (format === undefined)
    throw storeError(`${path}: not a variable store (a VARS blob, binary or base64, QEMU JSON or an OVMF .fd image)`);
  if (format === 'vars' || format === 'vars-base64') {
    const blob =
      format === 'vars' ? bytes : decodeBase64Strict(Buffer.from(bytes).toString('latin1').trim().replace(/\s+/g, ''));
    if (blob === undefined) throw storeError(`${path}: not valid base64`);
    // What varstored would refuse to load is refused here.
    const decoded = decodeVarsBlob(blob);
    if (!decoded.ok) throw storeError(`${path}: corrupt VARS blob: ${decoded.error}`);
    return { blob, exact: true, format: formatName(format) };
  }
  const decoded = decodeNvram(bytes, format);
  if (!decoded.ok) throw storeError(`${path}: corrupt ${formatName(format)}: ${decoded.error}`);
  return { blob: encodeVarsBlob(decoded.state, { nonVolatileOnly: true }), exact: false, format: formatName(format) };
}

export const restore: Command = {
  name: 'restore',
  summary: 'put a saved NVRAM (a backup) back into a halted VM',
  help: `usage: varstore restore <file> vm:<uuid> [--backup-dir <dir>] [--no-backup] [--socket <path>]

Writes <file> as the VM's NVRAM (VM.NVRAM["EFI-variables"]): a VARS blob, binary or base64 (what
\`certs update vm:all\` and the other writing commands save before they write), goes back byte for
byte; a QEMU JSON or OVMF .fd store is converted. The VM must be halted: XAPI is asked again right
before the write, and a running, paused or suspended VM is refused (exit 3). The NVRAM it replaces
is saved first as <uuid>.vars in --backup-dir (default: a new varstore-backup-<time> directory here).`,
  options: { 'backup-dir': { kind: 'value' }, 'no-backup': { kind: 'flag' } },
  async run(ctx) {
    const { args, out } = ctx;
    const [file, target] = positionals(args, ctx.command, ['file', 'vm:<uuid>']);
    const spec = parseStoreSpec(target!, args.value('socket'));
    if (spec.kind !== 'xapi')
      throw usageError(
        `restore: ${JSON.stringify(target)} is not vm:<uuid>`,
        'to restore into a file, use `varstore convert <backup> <file> --force`',
      );
    const { blob, exact, format } = blobOf(file!, await readInput(file!, 'NVRAM file', OvmfFd.MAX_SIZE));
    const encoded = Buffer.from(blob).toString('base64');
    const socket = spec.socket ?? DEFAULT_XAPI_SOCKET;
    const backups = args.flag('no-backup') ? undefined : new BackupDirectory(args.value('backup-dir'), ctx.io.now());
    let backup: string | undefined;
    const outcome = await new PoolClient({ socket })
      .withSession(async (session) => {
        const ref = await session.vmByUuid(spec.uuid);
        const vm = await session.vmRecord(ref);
        if (vm.isControlDomain) throw storeError(`vm:${spec.uuid} is a control domain: it has no UEFI NVRAM`);
        const current = vm.nvram.get(EFI_VARIABLES_KEY);
        if (current === encoded) return 'same' as const;
        if (vm.powerState === 'Halted' && backups !== undefined && current !== undefined) {
          const bytes = decodeBase64Strict(current);
          // Saved as it is, even if XAPI holds something that is not base64: nothing is lost.
          backup = await backups.save(spec.uuid, bytes ?? new Uint8Array(Buffer.from(current, 'utf8')));
        }
        return writeIfHalted(session, ref, encoded);
      })
      .catch((e: unknown) => {
        if (e instanceof CliError) throw e;
        if (e instanceof XapiError && e.errorDescription[0] === 'UUID_INVALID')
          throw storeError(`vm:${spec.uuid}: no such VM in the pool`);
        if (unreachable(e)) throw unreachableError(socket, e);
        throw new CliError(`vm:${spec.uuid}: ${xapiProblem(e)}`, ExitCode.FAILED);
      });
    if (outcome === 'same') {
      out.line(`${out.glyph('ok')} vm:${spec.uuid} already holds this NVRAM: nothing written`);
      return ExitCode.OK;
    }
    if (!outcome.written) {
      if (outcome.kind === 'not-halted')
        throw new CliError(
          `vm:${spec.uuid} is not halted, nothing written: ${outcome.reason}`,
          ExitCode.STORE,
          "a VM's NVRAM is written only while it is halted: a running VM's varstored would overwrite it",
        );
      throw new CliError(`vm:${spec.uuid}: ${outcome.reason}`, ExitCode.FAILED);
    }
    out.line(
      `${out.glyph('ok')} restored vm:${spec.uuid} from ${file} (${format}${exact ? ', byte for byte' : ', converted to a VARS blob'})`,
    );
    if (backup !== undefined) out.note(`backup of the NVRAM it replaced: ${backup}`);
    return ExitCode.OK;
  },
};
