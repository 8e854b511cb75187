import { parseCommandArgs } from './args.js';
import type { Command } from './command.js';
import { certsCheck, certsUpdate } from './commands/certs.js';
import { convert } from './commands/convert.js';
import { enroll } from './commands/enroll.js';
import { esl, keysCreate, sign, verify } from './commands/keys.js';
import { status } from './commands/status.js';
import { get, ls, rm, set } from './commands/variables.js';
import { CliError, ExitCode, messageOf } from './errors.js';
import { poolCertsClear, poolCertsExtract, poolCertsInstall, poolCertsStatus } from './pool/certs.js';
import { restore } from './pool/restore.js';
import { Output, type CliIo } from './output.js';

export const VERSION = '0.1.0';

export const COMMANDS: readonly Command[] = [
  ls,
  get,
  set,
  rm,
  status,
  esl,
  sign,
  verify,
  keysCreate,
  enroll,
  certsCheck,
  certsUpdate,
  convert,
  restore,
  poolCertsStatus,
  poolCertsInstall,
  poolCertsExtract,
  poolCertsClear,
];

const EXIT_CODES = `Exit status: 0 done (check passed, update accepted); 1 refused or failed (an EFI error, a rejected
signature, no such variable); 2 wrong usage; 3 a store or file cannot be read or written; 4 a store
needs the Microsoft 2023 certificate update (certs check, certs update).`;

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `usage: varstore <command> [options]

Manage the UEFI variables and Secure Boot keys of Xen VMs: files holding a VARS blob (binary or
base64, as varstored and XAPI keep them), QEMU/virt-firmware JSON or an OVMF .fd image, and
vm:<uuid> for a VM's NVRAM in XAPI (--socket, default /var/lib/xcp/xapi).

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Options for every command: --help, --ascii (no Unicode glyphs; or VARSTORE_ASCII=1), --no-color
(or NO_COLOR=1), --socket <path>. Read commands take --json.
${EXIT_CODES}
Run \`varstore <command> --help\` for a command's options.`;
}

/** The command named by the first one, two or three words, and the rest of the arguments. */
function findCommand(argv: readonly string[]): { command: Command; rest: readonly string[] } | undefined {
  const three = argv.length >= 3 ? `${argv[0]} ${argv[1]} ${argv[2]}` : undefined;
  const byThree = COMMANDS.find((c) => c.name === three);
  if (byThree !== undefined) return { command: byThree, rest: argv.slice(3) };
  const two = argv.length >= 2 ? `${argv[0]} ${argv[1]}` : undefined;
  const byTwo = COMMANDS.find((c) => c.name === two);
  if (byTwo !== undefined) return { command: byTwo, rest: argv.slice(2) };
  const byOne = COMMANDS.find((c) => c.name === argv[0]);
  return byOne === undefined ? undefined : { command: byOne, rest: argv.slice(1) };
}

/** Runs one `varstore` invocation; resolves to the exit status. Never rejects. */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const style = { ascii: argv.includes('--ascii'), noColor: argv.includes('--no-color') };
  const out = new Output(io, style);
  try {
    if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      if (argv[0] === 'help' && argv.length > 1) return run([...argv.slice(1), '--help'], io);
      out.line(mainHelp());
      return argv.length === 0 ? ExitCode.USAGE : ExitCode.OK;
    }
    if (argv[0] === '--version' || argv[0] === '-V') {
      out.line(`varstore ${VERSION}`);
      return ExitCode.OK;
    }
    const found = findCommand(argv);
    if (found === undefined) {
      const group = COMMANDS.filter((c) => c.name.startsWith(`${argv[0]} `));
      if (group.length > 0) {
        out.error(`${argv[0]}: give a subcommand: ${group.map((c) => c.name).join(', ')}`);
      } else {
        out.error(`unknown command ${JSON.stringify(argv[0])}`);
      }
      out.note('see `varstore --help`');
      return ExitCode.USAGE;
    }
    const { command, rest } = found;
    if (rest.includes('--help') || rest.includes('-h')) {
      out.line(command.help);
      out.line();
      out.line(EXIT_CODES);
      return ExitCode.OK;
    }
    const args = parseCommandArgs(rest, command.options, command.name);
    return await command.run({ io, out, args, command: command.name });
  } catch (e) {
    if (e instanceof CliError) {
      out.error(e.message);
      if (e.hint !== undefined) out.note(`  ${e.hint}`);
      return e.exitCode;
    }
    out.error(`internal error: ${messageOf(e)}`);
    if (e instanceof Error && e.stack !== undefined && io.env.VARSTORE_DEBUG === '1') out.note(e.stack);
    return ExitCode.FAILED;
  }
}
