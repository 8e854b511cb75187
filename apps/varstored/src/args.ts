/**
 * The command line: exactly the C varstored's long options (as xenopsd passes them), plus
 * --transport, --platform and --log-level. Parsing is getopt_long-like (`--opt value`,
 * `--opt=value`, unambiguous prefixes) and never exits: it returns a usage error to print.
 */
import { isAbsolute } from 'node:path';
import type { LogLevel } from '@vmsb/protocol';

export type { LogLevel };
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

export type BackendName = 'xapidb' | 'file';

export type Transport = { readonly kind: 'xen' } | { readonly kind: 'unix'; readonly path: string };

export interface PlatformSettingsArgs {
  /** `--platform secureboot=`: what xenstore platform/secureboot would say. */
  readonly secureboot?: boolean;
  /** `--platform auth-enforce=`. */
  readonly authEnforce?: boolean;
}

export interface DaemonConfig {
  readonly domid: number;
  readonly resume: boolean;
  readonly nonPersistent: boolean;
  readonly depriv: boolean;
  /** 0 = unchanged, as the C daemon. */
  readonly uid: number;
  readonly gid: number;
  readonly chroot?: string;
  readonly pidfile?: string;
  readonly backend: BackendName;
  /** Backend-specific `--arg` values (uuid, socket, path). */
  readonly backendArgs: ReadonlyMap<string, string>;
  readonly savePath?: string;
  readonly resumePath?: string;
  readonly authDir: string;
  readonly transport: Transport;
  readonly platform: PlatformSettingsArgs;
  readonly logLevel: LogLevel;
}

export type ParsedArgs =
  | { readonly kind: 'run'; readonly config: DaemonConfig }
  | { readonly kind: 'help' }
  | { readonly kind: 'usage-error'; readonly message: string };

export const DEFAULT_AUTH_DIR = '/var/lib/varstored';
export const DEFAULT_XAPI_SOCKET = '/var/lib/xcp/xapi';

interface OptionSpec {
  readonly name: string;
  readonly argument?: string;
  readonly help: string;
}

const OPTIONS: readonly OptionSpec[] = [
  { name: 'domain', argument: '<domid>', help: 'the guest domain (required)' },
  { name: 'resume', help: 'restore the state from --arg resume:<file> instead of the backend; no first-boot setup' },
  { name: 'nonpersistent', help: 'load the stored NVRAM but never write it' },
  {
    name: 'depriv',
    help: 'sandbox: new mount/IPC/network/UTS namespaces, rlimits, no new privileges, a seccomp filter',
  },
  { name: 'uid', argument: '<uid>', help: 'user to switch to after start (0 = unchanged)' },
  { name: 'gid', argument: '<gid>', help: 'group to switch to after start (0 = unchanged)' },
  { name: 'chroot', argument: '<chroot>', help: 'directory to confine the daemon to after start (see below)' },
  { name: 'pidfile', argument: '<pidfile>', help: 'locked file holding "<pid>\\n", written once ready' },
  { name: 'backend', argument: '<backend>', help: 'xapidb (default) or file' },
  { name: 'arg', argument: '<name>:<val>', help: 'uuid:, socket: (xapidb); path: (file); save:, resume:, auth-dir:' },
  { name: 'transport', argument: 'xen|unix:<path>', help: 'xen (default) or the guest-simulation socket' },
  {
    name: 'platform',
    argument: '<key>=<value>',
    help: 'secureboot=true|false, auth-enforce=true|false (xenstore wins under Xen)',
  },
  { name: 'log-level', argument: 'error|warn|info|debug', help: 'default info' },
  { name: 'help', help: 'print this help' },
];

export function usageText(program = 'varstored'): string {
  const lines = [`Usage: ${program} <options>`, ''];
  for (const o of OPTIONS) {
    const left = `  --${o.name}${o.argument ? ` ${o.argument}` : ''}`;
    lines.push(`${left.padEnd(36)}${o.help}`);
  }
  lines.push(
    '',
    'The pidfile, the --transport unix: socket, --arg auth-dir: and the Xen handles are opened on the host',
    'before privileges are dropped. Under --chroot, --arg path:, socket:, save: and resume: are paths inside',
    "the chroot (as the C daemon's guard socket is). The pidfile and the file store (path:, through",
    '<path>.lock beside it) are locked for the life of the daemon; a symbolic link as path: is refused.',
  );
  return `${lines.join('\n')}\n`;
}

/** Options whose --arg keys each backend accepts; `required` must be present. */
const BACKEND_KEYS: Record<
  BackendName,
  { readonly accepted: readonly string[]; readonly required: readonly string[] }
> = {
  xapidb: { accepted: ['uuid', 'socket'], required: ['uuid'] },
  // xenopsd always passes uuid: and socket:; the file backend does not need them.
  file: { accepted: ['path', 'uuid', 'socket'], required: ['path'] },
};
const COMMON_KEYS = ['save', 'resume', 'auth-dir'];

class UsageError {
  constructor(readonly message: string) {}
}

/** strtol(s, &end, 0) with the whole string consumed and a non-negative result. */
function parseCInteger(text: string, what: string, max: number): number {
  const t = text.trim();
  let value: number;
  if (/^0x[0-9a-f]+$/i.test(t)) value = parseInt(t.slice(2), 16);
  else if (/^0[0-7]*$/.test(t)) value = parseInt(t, 8);
  else if (/^[1-9][0-9]*$/.test(t)) value = parseInt(t, 10);
  else throw new UsageError(`invalid ${what} '${text}'`);
  if (!Number.isSafeInteger(value) || value > max) throw new UsageError(`invalid ${what} '${text}' (at most ${max})`);
  return value;
}

function parseBoolean(key: string, value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new UsageError(`--platform ${key}=${value}: the value must be true or false`);
}

function nonEmpty(value: string, what: string): string {
  if (value === '') throw new UsageError(`${what} must not be empty`);
  return value;
}

export function parseArgs(argv: readonly string[]): ParsedArgs {
  try {
    return parse(argv);
  } catch (e) {
    if (e instanceof UsageError) return { kind: 'usage-error', message: e.message };
    throw e;
  }
}

function lookup(name: string): OptionSpec {
  const exact = OPTIONS.find((o) => o.name === name);
  if (exact) return exact;
  const candidates = OPTIONS.filter((o) => o.name.startsWith(name));
  if (candidates.length === 1) return candidates[0]!;
  if (candidates.length > 1) {
    throw new UsageError(`option '--${name}' is ambiguous (${candidates.map((c) => `--${c.name}`).join(', ')})`);
  }
  throw new UsageError(`unrecognized option '--${name}'`);
}

function parse(argv: readonly string[]): ParsedArgs {
  let domain: string | undefined;
  let resume = false;
  let nonPersistent = false;
  let depriv = false;
  let uid = 0;
  let gid = 0;
  let chroot: string | undefined;
  let pidfile: string | undefined;
  let backend: BackendName | undefined;
  const args = new Map<string, string>();
  let transport: Transport = { kind: 'xen' };
  const platform: { secureboot?: boolean; authEnforce?: boolean } = {};
  let logLevel: LogLevel = 'info';

  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '--') {
      if (i + 1 < argv.length) throw new UsageError(`unexpected argument '${argv[i + 1]}'`);
      break;
    }
    if (!token.startsWith('--') || token.length === 2) throw new UsageError(`unexpected argument '${token}'`);
    const eq = token.indexOf('=');
    const option = lookup(eq === -1 ? token.slice(2) : token.slice(2, eq));
    let value: string | undefined;
    if (option.argument !== undefined) {
      if (eq !== -1) value = token.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i]!;
      else throw new UsageError(`option '--${option.name}' requires an argument ${option.argument}`);
    } else if (eq !== -1) {
      throw new UsageError(`option '--${option.name}' doesn't allow an argument`);
    }
    const v = value ?? '';

    switch (option.name) {
      case 'help':
        return { kind: 'help' };
      case 'domain':
        domain = v;
        break;
      case 'resume':
        resume = true;
        break;
      case 'nonpersistent':
        nonPersistent = true;
        break;
      case 'depriv':
        depriv = true;
        break;
      case 'uid':
        uid = parseCInteger(v, 'uid', 0xffff_fffe);
        break;
      case 'gid':
        gid = parseCInteger(v, 'gid', 0xffff_fffe);
        break;
      case 'chroot':
        chroot = nonEmpty(v, '--chroot');
        break;
      case 'pidfile':
        pidfile = nonEmpty(v, '--pidfile');
        break;
      case 'backend':
        if (v !== 'xapidb' && v !== 'file') throw new UsageError(`invalid backend '${v}' (xapidb or file)`);
        backend = v;
        break;
      case 'arg': {
        const colon = v.indexOf(':');
        if (colon <= 0) throw new UsageError(`invalid argument '${v}' (expected <name>:<value>)`);
        const key = v.slice(0, colon);
        const val = v.slice(colon + 1);
        if (![...COMMON_KEYS, ...BACKEND_KEYS.xapidb.accepted, ...BACKEND_KEYS.file.accepted].includes(key)) {
          throw new UsageError(`invalid argument '${v}' (known: uuid:, socket:, path:, save:, resume:, auth-dir:)`);
        }
        args.set(key, nonEmpty(val, `--arg ${key}:`));
        break;
      }
      case 'transport':
        if (v === 'xen') transport = { kind: 'xen' };
        else if (v.startsWith('unix:') && v.length > 5) transport = { kind: 'unix', path: v.slice(5) };
        else throw new UsageError(`invalid transport '${v}' (xen or unix:<path>)`);
        break;
      case 'platform': {
        const at = v.indexOf('=');
        const key = at === -1 ? v : v.slice(0, at);
        if (at === -1) throw new UsageError(`invalid --platform '${v}' (expected <key>=<value>)`);
        const val = v.slice(at + 1);
        if (key === 'secureboot') platform.secureboot = parseBoolean(key, val);
        else if (key === 'auth-enforce') platform.authEnforce = parseBoolean(key, val);
        else throw new UsageError(`unknown --platform key '${key}' (secureboot, auth-enforce)`);
        break;
      }
      case 'log-level':
        if (!(LOG_LEVELS as readonly string[]).includes(v))
          throw new UsageError(`invalid log level '${v}' (error, warn, info, debug)`);
        logLevel = v as LogLevel;
        break;
      default:
        throw new UsageError(`unhandled option '--${option.name}'`);
    }
  }

  if (domain === undefined) throw new UsageError('--domain <domid> is required');
  // Domain ids at and above DOMID_FIRST_RESERVED (0x7ff0) are not guests.
  const domid = parseCInteger(domain, 'domain', 0x7fef);
  const chosen: BackendName = backend ?? 'xapidb';
  const keys = BACKEND_KEYS[chosen];
  for (const key of args.keys()) {
    if (!COMMON_KEYS.includes(key) && !keys.accepted.includes(key)) {
      throw new UsageError(
        `backend '${chosen}' does not take --arg ${key}: (it takes ${[...keys.accepted, ...COMMON_KEYS].map((k) => `${k}:`).join(', ')})`,
      );
    }
  }
  for (const key of keys.required) {
    if (!args.has(key))
      throw new UsageError(`backend '${chosen}' requires --arg ${key}:<${key === 'path' ? 'file' : key}>`);
  }
  const resumePath = args.get('resume');
  if (resumePath !== undefined && !resume) throw new UsageError('--arg resume: is only valid with --resume');
  if (resume && resumePath === undefined) throw new UsageError('--resume requires --arg resume:<file>');
  const authDir = args.get('auth-dir') ?? DEFAULT_AUTH_DIR;
  if (chroot !== undefined && !isAbsolute(chroot)) throw new UsageError(`--chroot ${chroot}: must be an absolute path`);

  const backendArgs = new Map([...args].filter(([k]) => !COMMON_KEYS.includes(k)));
  if (chosen === 'xapidb' && !backendArgs.has('socket')) backendArgs.set('socket', DEFAULT_XAPI_SOCKET);

  const config: DaemonConfig = {
    domid,
    resume,
    nonPersistent,
    depriv,
    uid,
    gid,
    backend: chosen,
    backendArgs,
    authDir,
    transport,
    platform,
    logLevel,
    ...(chroot !== undefined ? { chroot } : {}),
    ...(pidfile !== undefined ? { pidfile } : {}),
    ...(args.has('save') ? { savePath: args.get('save')! } : {}),
    ...(resumePath !== undefined ? { resumePath } : {}),
  };
  return { kind: 'run', config };
}
