/**
 * varstore-ls, varstore-get and the tools' shared command line, as users and XAPI run them: the
 * BUILT bin/varstore-* executables, spawned, talking XML-RPC over a real Unix socket to the
 * xapi-guard double (@vmsb/xapi/testing, standing in for xapi-guard and XAPI). Output is
 * compared with the C tools' formats: `<guid> <name>` lines (and XAPI's reading of them), raw data,
 * attribute lines, usage lines, getopt messages, EFI status strings, exit codes.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  ALL_BYTES,
  C_BUILTIN_LINES,
  LINE,
  VM,
  guard,
  keys,
  otherVariables,
  secureBootVariables,
  setCalls,
  sock,
  startVm,
  tool,
  useCompatHarness,
} from './testing/harness.js';
import { GLOBAL, IMAGE_SECURITY, VENDOR, runTool, toolPath, xapiReadiness, type ToolName } from './testing/support.js';

useCompatHarness();

describe('varstore-ls', () => {
  it('lists a VM with PK, KEK, db and dbx as `<guid> <name>` lines that XAPI reads as ready', async () => {
    await startVm([...secureBootVariables(), ...otherVariables()]);
    const r = await tool('ls', VM);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out.endsWith('\n')).toBe(true);
    const lines = r.out.slice(0, -1).split('\n');
    for (const line of lines) expect(line).toMatch(LINE);
    expect(new Set(lines).size).toBe(lines.length);
    expect(lines).toEqual(
      expect.arrayContaining([
        ...C_BUILTIN_LINES,
        `${GLOBAL} PK`,
        `${GLOBAL} KEK`,
        `${IMAGE_SECURITY} db`,
        `${IMAGE_SECURITY} dbx`,
        `${GLOBAL} Boot0000`,
        `${GLOBAL} BootOrder`,
        // Only the printable ASCII low byte of each UTF-16 unit: é (0xE9) is dropped, Ł (U+0141) prints as A.
        `${VENDOR} Tst`,
        `${VENDOR} AX`,
        `${VENDOR} Blob`,
      ]),
    );
    expect(xapiReadiness(r.out)).toBe('ready');
    // Listing writes nothing back.
    expect(setCalls()).toBe(0);
    expect(guard.callsOf('VM.get_NVRAM')).toHaveLength(1);
  });

  it('lists a VM without PK/KEK/db/dbx: XAPI reads setup_mode; without dbx: ready_no_dbx', async () => {
    await startVm(otherVariables());
    const r = await tool('ls', VM);
    expect(r.code).toBe(0);
    expect(r.out).not.toMatch(/ (PK|KEK|db|dbx)$/m);
    expect(r.out.split('\n')).toEqual(expect.arrayContaining([...C_BUILTIN_LINES, `${GLOBAL} Boot0000`]));
    expect(xapiReadiness(r.out)).toBe('setup_mode');
    await guard.close();

    await startVm([...secureBootVariables().slice(0, 3), ...otherVariables()]);
    const noDbx = await tool('ls', VM);
    expect(noDbx.code).toBe(0);
    expect(xapiReadiness(noDbx.out)).toBe('ready_no_dbx');
  });

  it('lists a VM that never booted (no EFI-variables): only the variables the store creates', async () => {
    await startVm();
    const r = await tool('ls', VM);
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines).toEqual(expect.arrayContaining(C_BUILTIN_LINES));
    for (const line of lines) expect(line).toMatch(LINE);
    expect(lines.every((l) => !/ (PK|KEK|db|dbx|Boot0000)$/.test(l))).toBe(true);
    expect(setCalls()).toBe(0);
  });

  it('fails with exit 1 when XAPI refuses or the NVRAM is corrupt, printing nothing on stdout', async () => {
    await startVm(otherVariables());
    guard.inject({ kind: 'failure', errorDescription: ['HANDLE_INVALID', 'VM'] }, { method: 'VM.get_NVRAM' });
    const refused = await tool('ls', VM);
    expect(refused.code).toBe(1);
    expect(refused.out).toBe('');
    expect(refused.err).toContain('HANDLE_INVALID');

    guard.nvram.set('EFI-variables', Buffer.from('VARS but not a blob').toString('base64'));
    const corrupt = await tool('ls', VM);
    expect(corrupt.code).toBe(1);
    expect(corrupt.out).toBe('');
    expect(corrupt.err).toMatch(/corrupt/);
  });

  it('reaches XAPI at its default socket when -s is not given', async () => {
    await startVm();
    // No -s: /var/lib/xcp/xapi, which does not exist here.
    const r = await runTool('ls', [VM]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('/var/lib/xcp/xapi');
    expect(guard.calls).toHaveLength(0);
  });
});

describe('varstore-get', () => {
  beforeEach(() => startVm([...secureBootVariables(), ...otherVariables()]));

  it('writes the data exactly as stored', async () => {
    const r = await tool('get', VM, VENDOR, 'Blob');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(new Uint8Array(r.stdout)).toEqual(ALL_BYTES);
    const pk = await tool('get', VM, GLOBAL, 'PK');
    expect(new Uint8Array(pk.stdout)).toEqual(keys.esl.PK);
  });

  it('-a prints the attributes as the C tool does', async () => {
    const pk = await tool('get', '-a', VM, GLOBAL, 'PK');
    expect(pk.code).toBe(0);
    expect(pk.out).toBe(
      'Attributes = 0x00000027 (39)\nEFI_VARIABLE_NON_VOLATILE\nEFI_VARIABLE_BOOTSERVICE_ACCESS\nEFI_VARIABLE_RUNTIME_ACCESS\nEFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS\n',
    );
    const blob = await tool('get', VM, VENDOR, 'Blob', '-a');
    expect(blob.out).toBe('Attributes = 0x00000003 (3)\nEFI_VARIABLE_NON_VOLATILE\nEFI_VARIABLE_BOOTSERVICE_ACCESS\n');
  });

  it('sees the builtins as the C tools do: user mode with PK, SecureBoot off', async () => {
    const setupMode = await tool('get', VM, GLOBAL, 'SetupMode');
    expect([...setupMode.stdout]).toEqual([0]);
    const secureBoot = await tool('get', VM, GLOBAL, 'SecureBoot');
    expect([...secureBoot.stdout]).toEqual([0]);
    const attrs = await tool('get', '-a', VM, GLOBAL, 'SecureBoot');
    expect(attrs.out).toBe(
      'Attributes = 0x00000006 (6)\nEFI_VARIABLE_BOOTSERVICE_ACCESS\nEFI_VARIABLE_RUNTIME_ACCESS\n',
    );
  });

  it('prints EFI errors and C messages on stderr with exit 1', async () => {
    const missing = await tool('get', VM, VENDOR, 'Nope');
    expect(missing).toMatchObject({ code: 1, out: '', err: 'Not Found\n' });
    // Names are matched byte-exact: the GUID matters.
    const otherGuid = await tool('get', VM, GLOBAL, 'Blob');
    expect(otherGuid).toMatchObject({ code: 1, err: 'Not Found\n' });
    const badGuid = await tool('get', VM, '12345678-1234-1234-1234-123456789ab', 'Blob');
    expect(badGuid).toMatchObject({ code: 1, out: '', err: 'do_get: Failed to parse GUID\n' });
    const braces = await tool('get', VM, `{${VENDOR}}`, 'Blob');
    expect(braces.err).toBe('do_get: Failed to parse GUID\n');
  });

  it('accepts upper-case GUIDs', async () => {
    const r = await tool('get', VM, VENDOR.toUpperCase(), 'Blob');
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(256);
  });
});

describe('command lines', () => {
  const SYNOPSIS: Record<ToolName, string> = {
    ls: '[-h] [depriv options] <vm-uuid>',
    get: '[-h] [depriv options] [-a] <vm-uuid> <guid> <name>',
    set: '[-h] [depriv options] <vm-uuid> <guid> <name> <attributes> <data-file>',
    rm: '[-c] [-h] [depriv options] <vm-uuid> [<guid> <name>]',
    'sb-state': '[-h] [depriv options] <vm-uuid> setup|user',
  };

  it.each(Object.keys(SYNOPSIS) as ToolName[])(
    'varstore-%s: -h prints the usage on stdout (exit 0); a bad option exits 1',
    async (name) => {
      const [help, bad] = await Promise.all([runTool(name, ['-h']), runTool(name, ['-x', VM])]);
      expect(help.code).toBe(0);
      expect(help.err).toBe('');
      expect(help.out.split('\n')[0]).toBe(`usage: ${toolPath(name)} ${SYNOPSIS[name]}`);
      expect(help.out).toMatch(/\[-s\] <path>/);
      expect(bad.code).toBe(1);
      expect(bad.err).toBe(`${toolPath(name)}: invalid option -- 'x'\n`);
      expect(bad.out).toBe(help.out);
    },
  );

  it('reports a missing option argument and bad ids as the C tools do', async () => {
    const [noArg, uid, gid] = await Promise.all([
      runTool('get', [VM, '-s']),
      runTool('rm', ['-u', 'abc', VM]),
      runTool('set', ['-g', '12x', VM]),
    ]);
    expect(noArg).toMatchObject({ code: 1, err: `${toolPath('get')}: option requires an argument -- 's'\n` });
    expect(noArg.out.split('\n')[0]).toBe(`usage: ${toolPath('get')} ${SYNOPSIS.get}`);
    expect(uid).toMatchObject({ code: 1, out: '', err: "invalid uid 'abc'\n" });
    expect(gid).toMatchObject({ code: 1, out: '', err: "invalid gid '12x'\n" });
  });

  it('reads options in order: -h after a bad option still fails', async () => {
    expect((await runTool('ls', ['-x', '-h'])).code).toBe(1);
    expect((await runTool('ls', ['-h', '-x'])).code).toBe(0);
  });

  it('treats everything after -- as operands', async () => {
    await startVm();
    const r = await runTool('ls', ['-s', sock, '--', '-h']);
    // "-h" is the VM uuid here: the double answers for any uuid.
    expect(r.code).toBe(0);
    expect(r.out).toContain(`${GLOBAL} SetupMode\n`);
  });
});
