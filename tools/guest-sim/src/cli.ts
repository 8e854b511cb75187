/**
 * guest-sim: plays OVMF against `varstored --transport unix:<path>`.
 *   guest-sim --socket <path> boot [--json]     a full OVMF boot, then an OS at runtime
 *   guest-sim --socket <path> list [--runtime]  every variable name (GetNextVariableName)
 *   guest-sim --socket <path> get <name> [<guid>]   a variable's attributes and data (hex)
 *   guest-sim --socket <path> query             QueryVariableInfo(NV|BS|RT)
 */
import { guidFromText, guidToText, statusName } from '@vmsb/protocol';
import { runOvmfBoot, summarizeTrace } from './boot.js';
import { GuestConnection } from './connection.js';
import { Attributes, Firmware, VendorGuids } from './firmware.js';
import { formatBootReport } from './report.js';

const USAGE = 'usage: guest-sim --socket <path> boot [--json] | list [--runtime] | get <name> [<guid>] | query\n';

async function run(argv: string[]): Promise<number> {
  const args = [...argv];
  const at = args.indexOf('--socket');
  if (at === -1 || at + 1 >= args.length) {
    process.stderr.write(USAGE);
    return 2;
  }
  const socket = args.splice(at, 2)[1]!;
  const [command, ...rest] = args;
  if (command === undefined || !['boot', 'list', 'get', 'query'].includes(command)) {
    process.stderr.write(USAGE);
    return 2;
  }
  const connection = await GuestConnection.connect(socket);
  try {
    const fw = new Firmware(connection);
    switch (command) {
      case 'boot': {
        const report = await runOvmfBoot(fw);
        if (rest.includes('--json')) {
          process.stdout.write(
            `${JSON.stringify({ ...report, trace: undefined, calls: summarizeTrace(report.trace) }, null, 2)}\n`,
          );
        } else {
          process.stdout.write(formatBootReport(report));
        }
        return 0;
      }
      case 'list':
        fw.atRuntime = rest.includes('--runtime');
        for (const v of await fw.enumerate()) process.stdout.write(`${guidToText(v.guid)} ${v.name}\n`);
        return 0;
      case 'get': {
        const [name, guidText] = rest;
        const guid = guidText === undefined ? VendorGuids.GLOBAL : guidFromText(guidText);
        if (name === undefined || guid === undefined) {
          process.stderr.write(USAGE);
          return 2;
        }
        const value = await fw.readVariable({ name, guid });
        if (value === undefined) {
          process.stderr.write(`${name}: not found\n`);
          return 1;
        }
        process.stdout.write(
          `attributes 0x${value.attributes.toString(16)}\n${Buffer.from(value.data).toString('hex')}\n`,
        );
        return 0;
      }
      default: {
        const info = await fw.queryVariableInfo(Attributes.NV_BS_RT);
        process.stdout.write(
          `${statusName(info.status)} maximum ${info.maximumStorageSize} remaining ${info.remainingStorageSize} largest ${info.maximumVariableSize}\n`,
        );
        return 0;
      }
    }
  } finally {
    await connection.close();
  }
}

run(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (e: unknown) => {
    process.stderr.write(`guest-sim: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
