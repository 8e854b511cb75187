import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type DaemonConfig, DEFAULT_AUTH_DIR, DEFAULT_XAPI_SOCKET, parseArgs, usageText } from './args.js';

function run(...argv: string[]): DaemonConfig {
  const parsed = parseArgs(argv);
  if (parsed.kind !== 'run') throw new Error(`expected a configuration, got ${JSON.stringify(parsed)}`);
  return parsed.config;
}

function usageError(...argv: string[]): string {
  const parsed = parseArgs(argv);
  if (parsed.kind !== 'usage-error') throw new Error(`expected a usage error, got ${parsed.kind}`);
  return parsed.message;
}

describe('the C daemon command line, as xenopsd passes it', () => {
  it('accepts the full xenopsd invocation', () => {
    const c = run(
      '--domain',
      '7',
      '--chroot',
      '/var/run/xen/varstored-root-7',
      '--depriv',
      '--uid',
      '65542',
      '--gid',
      '65542',
      '--backend',
      'xapidb',
      '--arg',
      'socket:/xapi-depriv-socket',
      '--pidfile',
      '/var/run/xen/varstored-7.pid',
      '--arg',
      'uuid:0f7a3e0c-4b9e-4f5e-9c51-6d0d6f4f3f11',
      '--nonpersistent',
      '--resume',
      '--arg',
      'resume:/efi-vars-resume.dat',
      '--arg',
      'save:/efi-vars-save.dat',
    );
    expect(c).toMatchObject({
      domid: 7,
      chroot: '/var/run/xen/varstored-root-7',
      depriv: true,
      uid: 65542,
      gid: 65542,
      backend: 'xapidb',
      pidfile: '/var/run/xen/varstored-7.pid',
      nonPersistent: true,
      resume: true,
      resumePath: '/efi-vars-resume.dat',
      savePath: '/efi-vars-save.dat',
      authDir: DEFAULT_AUTH_DIR,
      transport: { kind: 'xen' },
      logLevel: 'info',
    });
    expect(Object.fromEntries(c.backendArgs)).toEqual({
      socket: '/xapi-depriv-socket',
      uuid: '0f7a3e0c-4b9e-4f5e-9c51-6d0d6f4f3f11',
    });
  });

  it('defaults as the C daemon: xapidb with its socket, no pidfile, uid/gid unchanged, persistent', () => {
    const c = run('--domain', '1', '--arg', 'uuid:u');
    expect(c).toMatchObject({ backend: 'xapidb', uid: 0, gid: 0, depriv: false, resume: false, nonPersistent: false });
    expect(c.pidfile).toBeUndefined();
    expect(c.chroot).toBeUndefined();
    expect(c.savePath).toBeUndefined();
    expect(c.backendArgs.get('socket')).toBe(DEFAULT_XAPI_SOCKET);
  });

  it('parses numbers as strtol(…, 0) does: decimal, 0x hex and 0 octal', () => {
    expect(run('--domain', '0x10', '--arg', 'uuid:u').domid).toBe(16);
    expect(run('--domain', '010', '--arg', 'uuid:u').domid).toBe(8);
    expect(run('--domain', '0', '--arg', 'uuid:u').domid).toBe(0);
    expect(run('--domain', '1', '--uid', '0x3e8', '--gid', '1000', '--arg', 'uuid:u')).toMatchObject({
      uid: 1000,
      gid: 1000,
    });
  });

  it('takes --opt=value and unambiguous prefixes, as getopt_long', () => {
    const c = run('--domain=3', '--back=file', '--arg=path:/x', '--nonp', '--log=debug');
    expect(c).toMatchObject({ domid: 3, backend: 'file', nonPersistent: true, logLevel: 'debug' });
    expect(usageError('--domain', '1', '--d')).toMatch(/ambiguous.*--domain, --depriv/);
  });

  it('accepts the additions: unix transport, file backend, platform, auth dir, log level', () => {
    const c = run(
      '--domain',
      '1',
      '--transport',
      'unix:/tmp/vm1.sock',
      '--backend',
      'file',
      '--arg',
      'path:/tmp/vm1.vars',
      '--platform',
      'secureboot=true',
      '--platform',
      'auth-enforce=false',
      '--arg',
      'auth-dir:/tmp/keys',
      '--log-level',
      'warn',
    );
    expect(c).toMatchObject({
      transport: { kind: 'unix', path: '/tmp/vm1.sock' },
      backend: 'file',
      platform: { secureboot: true, authEnforce: false },
      authDir: '/tmp/keys',
      logLevel: 'warn',
    });
    expect(Object.fromEntries(c.backendArgs)).toEqual({ path: '/tmp/vm1.vars' });
  });

  it('lets the file backend ignore the uuid:/socket: that xenopsd always passes', () => {
    const c = run('--domain', '1', '--backend', 'file', '--arg', 'path:/p', '--arg', 'uuid:u', '--arg', 'socket:/s');
    expect(c.backendArgs.get('path')).toBe('/p');
  });

  it('prints help on --help', () => {
    expect(parseArgs(['--help']).kind).toBe('help');
    for (const option of [
      '--domain',
      '--resume',
      '--nonpersistent',
      '--depriv',
      '--uid',
      '--gid',
      '--chroot',
      '--pidfile',
      '--backend',
      '--arg',
      '--transport',
      '--platform',
      '--log-level',
    ]) {
      expect(usageText()).toContain(option);
    }
  });
});

describe('usage errors (one line; the daemon exits 2)', () => {
  it.each([
    [['--arg', 'uuid:u'], /--domain <domid> is required/],
    [['--domain'], /'--domain' requires an argument/],
    [['--domain', 'x1', '--arg', 'uuid:u'], /invalid domain 'x1'/],
    [['--domain', '1x', '--arg', 'uuid:u'], /invalid domain '1x'/],
    [['--domain', '-1', '--arg', 'uuid:u'], /invalid domain '-1'/],
    [['--domain', '0x7ff0', '--arg', 'uuid:u'], /invalid domain '0x7ff0' \(at most 32751\)/],
    [['--domain', '1', '--uid', 'root', '--arg', 'uuid:u'], /invalid uid 'root'/],
    [['--domain', '1', '--gid', '4294967296', '--arg', 'uuid:u'], /invalid gid/],
    [['--domain', '1', '--bogus'], /unrecognized option '--bogus'/],
    [['--domain', '1', 'extra', '--arg', 'uuid:u'], /unexpected argument 'extra'/],
    [['-d', '1'], /unexpected argument '-d'/],
    [['--domain', '1', '--resume=yes', '--arg', 'uuid:u'], /'--resume' doesn't allow an argument/],
    [['--domain', '1'], /backend 'xapidb' requires --arg uuid:/],
    [['--domain', '1', '--backend', 'file'], /backend 'file' requires --arg path:<file>/],
    [['--domain', '1', '--backend', 'sqlite'], /invalid backend 'sqlite'/],
    [['--domain', '1', '--arg', 'uuid:u', '--arg', 'path:/p'], /backend 'xapidb' does not take --arg path:/],
    [['--domain', '1', '--arg', 'colour:blue'], /invalid argument 'colour:blue'/],
    [['--domain', '1', '--arg', 'nocolon'], /invalid argument 'nocolon'/],
    [['--domain', '1', '--arg', 'uuid:'], /--arg uuid: must not be empty/],
    [['--domain', '1', '--arg', 'uuid:u', '--resume'], /--resume requires --arg resume:<file>/],
    [['--domain', '1', '--arg', 'uuid:u', '--arg', 'resume:/r'], /--arg resume: is only valid with --resume/],
    [['--domain', '1', '--arg', 'uuid:u', '--transport', 'tcp:1'], /invalid transport 'tcp:1'/],
    [['--domain', '1', '--arg', 'uuid:u', '--transport', 'unix:'], /invalid transport 'unix:'/],
    [['--domain', '1', '--arg', 'uuid:u', '--platform', 'secureboot'], /expected <key>=<value>/],
    [['--domain', '1', '--arg', 'uuid:u', '--platform', 'secureboot=yes'], /must be true or false/],
    [['--domain', '1', '--arg', 'uuid:u', '--platform', 'colour=blue'], /unknown --platform key 'colour'/],
    [['--domain', '1', '--arg', 'uuid:u', '--log-level', 'loud'], /invalid log level 'loud'/],
    [
      ['--domain', '1', '--arg', 'uuid:u', '--chroot', 'relative/dir'],
      /--chroot relative\/dir: must be an absolute path/,
    ],
  ])('%j', (argv, message) => {
    const text = usageError(...argv);
    expect(text).toMatch(message);
    expect(text).not.toContain('\n');
  });

  it('never throws, whatever the arguments', () => {
    const token = fc.oneof(
      fc.constantFrom(
        '--domain',
        '--resume',
        '--arg',
        '--backend',
        '--platform',
        '--transport',
        '--uid',
        '--pidfile',
        '--help',
        '--',
        '-x',
        '--do',
      ),
      fc.string({ maxLength: 12 }),
    );
    fc.assert(
      fc.property(fc.array(token, { maxLength: 10 }), (argv) => {
        const parsed = parseArgs(argv);
        expect(['run', 'help', 'usage-error']).toContain(parsed.kind);
      }),
      { numRuns: 500 },
    );
  });
});
