/**
 * varstore-set and varstore-rm, spawned as built, against the xapi-guard double (standing in for
 * xapi-guard and XAPI): what is written back to the VM's NVRAM and when, EFI status strings and
 * the C tools' messages on stderr, exit codes, and the remove-on-clone lists.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  ALL_BYTES,
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
  work,
} from './testing/harness.js';
import {
  GLOBAL,
  VENDOR,
  authTimestamp,
  findVariable,
  runTool,
  storedVariables,
  toolPath,
  xapiReadiness,
} from './testing/support.js';

useCompatHarness();

describe('varstore-set', () => {
  beforeEach(() => startVm([...otherVariables()]));

  function dataFile(name: string, content: Uint8Array | string): string {
    const path = join(work, `${name}-${Math.random().toString(36).slice(2)}`);
    writeFileSync(path, content);
    return path;
  }

  it('creates, appends to and deletes a variable, writing XAPI once per change', async () => {
    const create = await tool('set', VM, VENDOR, 'NewVar', '7', dataFile('a', 'hello'));
    expect(create).toMatchObject({ code: 0, out: '', err: '' });
    expect(setCalls()).toBe(1);
    let v = findVariable(storedVariables(guard), 'NewVar', VENDOR);
    expect(v?.attributes).toBe(7);
    expect(Buffer.from(v!.data).toString()).toBe('hello');
    // The rest of the NVRAM is kept.
    expect(new Uint8Array(findVariable(storedVariables(guard), 'Blob', VENDOR)!.data)).toEqual(ALL_BYTES);

    const append = await tool('set', VM, VENDOR, 'NewVar', '0x47', dataFile('b', ' world'));
    expect(append.code).toBe(0);
    v = findVariable(storedVariables(guard), 'NewVar', VENDOR);
    expect(Buffer.from(v!.data).toString()).toBe('hello world');
    expect(setCalls()).toBe(2);

    // The same value again changes nothing: nothing is written.
    const same = await tool('set', VM, VENDOR, 'NewVar', '7', dataFile('c', 'hello world'));
    expect(same.code).toBe(0);
    expect(setCalls()).toBe(2);

    const del = await tool('set', VM, VENDOR, 'NewVar', '7', dataFile('d', ''));
    expect(del.code).toBe(0);
    expect(findVariable(storedVariables(guard), 'NewVar', VENDOR)).toBeUndefined();
    expect(setCalls()).toBe(3);

    // Attributes without boot-service or runtime access delete too ("00": octal, as strtoul reads it).
    const del2 = await tool('set', VM, GLOBAL, 'BootOrder', '00', dataFile('e', 'x'));
    expect(del2).toMatchObject({ code: 0, err: '' });
    expect(findVariable(storedVariables(guard), 'BootOrder', GLOBAL)).toBeUndefined();
    expect(setCalls()).toBe(4);
  });

  it('widens the name byte by byte, as the C tools do', async () => {
    const r = await tool('set', VM, VENDOR, 'Ré', '7', dataFile('n', 'x'));
    expect(r.code).toBe(0);
    const stored = storedVariables(guard).find((v) => v.name.length === 6 && v.name[0] === 0x52);
    // "Ré" arrives as the UTF-8 bytes 52 C3 A9 and becomes three UTF-16 units.
    expect([...stored!.name]).toEqual([0x52, 0, 0xc3, 0, 0xa9, 0]);
  });

  it('refuses files larger than a variable with "Invalid file size" on stdout', async () => {
    const big = await tool('set', VM, VENDOR, 'Big', '7', dataFile('big', new Uint8Array(57345)));
    expect(big).toMatchObject({ code: 1, out: 'Invalid file size\n', err: '' });
    const max = await tool('set', VM, VENDOR, 'Big', '7', dataFile('max', new Uint8Array(57344).fill(7)));
    expect(max.code).toBe(0);
    expect(findVariable(storedVariables(guard), 'Big', VENDOR)!.data.length).toBe(57344);
  });

  it('reads data from a pipe to its end', async () => {
    const fifo = join(work, `fifo-${Math.random().toString(36).slice(2)}`);
    execFileSync('mkfifo', [fifo]);
    const [r] = await Promise.all([
      runTool('set', ['-s', sock, VM, VENDOR, 'Piped', '7', fifo]),
      writeFile(fifo, 'from a pipe'),
    ]);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(Buffer.from(findVariable(storedVariables(guard), 'Piped', VENDOR)!.data).toString()).toBe('from a pipe');
  });

  it('reports bad arguments and refused writes as the C tool does', async () => {
    const file = dataFile('f', 'x');
    const missing = join(work, 'no-such-file');
    const runs = await Promise.all([
      tool('set', VM, 'not-a-guid', 'X', '7', file),
      // A word is not a number (C would read it as 0 and delete the variable).
      tool('set', VM, VENDOR, 'Blob', 'append', file),
      tool('set', VM, VENDOR, 'Blob', '0x1ffffffff', file),
      tool('set', VM, VENDOR, 'X', '7', missing),
      tool('set', VM, GLOBAL, 'SecureBoot', '6', file),
      // Attributes of an existing variable cannot change.
      tool('set', VM, VENDOR, 'Blob', '7', file),
      tool('set', VM, GLOBAL, 'PK', '0x27', dataFile('g', new Uint8Array(40))),
    ]);
    expect(runs.map((r) => [r.code, r.out, r.err])).toEqual([
      [1, '', 'do_set: Failed to parse GUID\n'],
      [1, '', 'do_set: Failed to parse attributes\n'],
      [1, '', 'do_set: Failed to parse attributes\n'],
      [1, '', `do_set: Failed to open ${missing}\n`],
      [1, '', 'Write Protected\n'],
      [1, '', 'Invalid Parameter\n'],
      [1, '', 'Security Violation\n'],
    ]);
    expect(setCalls()).toBe(0);
    expect(new Uint8Array(findVariable(storedVariables(guard), 'Blob', VENDOR)!.data)).toEqual(ALL_BYTES);
  });

  it('enrols a PK from an .auth file (permissive, as the C tools run)', async () => {
    const r = await tool('set', VM, GLOBAL, 'PK', '0x27', dataFile('pk', keys.auth.PK));
    expect(r).toMatchObject({ code: 0, err: '' });
    const pk = findVariable(storedVariables(guard), 'PK', GLOBAL)!;
    expect(pk.attributes).toBe(0x27);
    expect(new Uint8Array(pk.data)).toEqual(keys.esl.PK);
    expect(new Uint8Array(pk.timestamp)).toEqual(new Uint8Array(authTimestamp(keys.auth.PK)));
    const setupMode = await tool('get', VM, GLOBAL, 'SetupMode');
    expect([...setupMode.stdout]).toEqual([0]);
  });

  it('rolls back and answers Device Error when XAPI does not take the write', async () => {
    const before = guard.nvram.get('EFI-variables');
    guard.inject({ kind: 'failure', errorDescription: ['SR_FULL'] }, { method: 'VM.set_NVRAM_EFI_variables' });
    const r = await tool('set', VM, VENDOR, 'NewVar', '7', dataFile('x', 'data'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SR_FULL/);
    expect(r.err.endsWith('Device Error\n')).toBe(true);
    expect(guard.nvram.get('EFI-variables')).toBe(before);
  });
});

describe('varstore-rm', () => {
  beforeEach(() => startVm([...secureBootVariables(), ...otherVariables()]));

  it('deletes a normal variable and, permissively, PK', async () => {
    expect(await tool('rm', VM, GLOBAL, 'BootOrder')).toMatchObject({ code: 0, out: '', err: '' });
    expect(findVariable(storedVariables(guard), 'BootOrder', GLOBAL)).toBeUndefined();
    expect(await tool('rm', VM, GLOBAL, 'PK')).toMatchObject({ code: 0, out: '', err: '' });
    const after = storedVariables(guard);
    expect(findVariable(after, 'PK', GLOBAL)).toBeUndefined();
    expect(findVariable(after, 'KEK', GLOBAL)).toBeDefined();
    const ls = await tool('ls', VM);
    expect(xapiReadiness(ls.out)).toBe('setup_mode');
    expect([...(await tool('get', VM, GLOBAL, 'SetupMode')).stdout]).toEqual([1]);
  });

  it('prints the EFI error for what cannot be deleted', async () => {
    expect(await tool('rm', VM, VENDOR, 'Nope')).toMatchObject({ code: 1, out: '', err: 'Not Found\n' });
    expect(await tool('rm', VM, GLOBAL, 'SetupMode')).toMatchObject({ code: 1, err: 'Write Protected\n' });
    expect(await tool('rm', VM, 'zz', 'PK')).toMatchObject({ code: 1, err: 'main: Failed to parse GUID\n' });
    expect(setCalls()).toBe(0);
  });

  it('cannot delete a private authenticated variable (it needs its signer)', async () => {
    const path = join(work, 'MyVar.auth');
    writeFileSync(path, keys.privateAuth);
    expect(await tool('set', VM, VENDOR, 'MyVar', '0x27', path)).toMatchObject({ code: 0, err: '' });
    expect(Buffer.from(findVariable(storedVariables(guard), 'MyVar', VENDOR)!.data).toString()).toBe('hi\n');
    expect(await tool('rm', VM, VENDOR, 'MyVar')).toMatchObject({ code: 1, err: 'Security Violation\n' });
    expect(findVariable(storedVariables(guard), 'MyVar', VENDOR)).toBeDefined();
  });

  describe('-c (remove-on-clone lists)', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(work, 'clone-'));
    });

    it('removes every listed variable, reporting and skipping missing ones, with options after the uuid as XAPI passes them', async () => {
      writeFileSync(join(dir, '10-boot'), `# boot entries\n\n${GLOBAL} BootOrder\n${GLOBAL}\tBoot0000\n`);
      writeFileSync(join(dir, '20-other'), `${VENDOR}  Missing\r\n${VENDOR.toUpperCase()} Blob\n`);
      mkdirSync(join(dir, '30-subdir'));
      const r = await runTool('rm', ['-c', VM, '-s', sock], { env: { VARSTORE_EFI_CLONE_DIR: dir } });
      expect(r.code).toBe(0);
      expect(r.out).toBe(
        [
          `Removing: GUID: '${GLOBAL}' Name: 'BootOrder'`,
          `Removing: GUID: '${GLOBAL}' Name: 'Boot0000'`,
          `Removing: GUID: '${VENDOR}' Name: 'Missing'`,
          `Removing: GUID: '${VENDOR.toUpperCase()}' Name: 'Blob'`,
          '',
        ].join('\n'),
      );
      expect(r.err).toBe('Not Found\n');
      const after = storedVariables(guard);
      for (const [n, g] of [
        ['BootOrder', GLOBAL],
        ['Boot0000', GLOBAL],
        ['Blob', VENDOR],
      ] as const)
        expect(findVariable(after, n, g)).toBeUndefined();
      expect(findVariable(after, 'PK', GLOBAL)).toBeDefined();
    });

    it('stops before contacting XAPI when a list has a bad line', async () => {
      writeFileSync(join(dir, 'list'), `${GLOBAL} BootOrder\n${GLOBAL}Boot0000\n`);
      const r = await runTool('rm', ['-s', sock, '-c', VM], { env: { VARSTORE_EFI_CLONE_DIR: dir } });
      expect(r).toMatchObject({ code: 1, out: '', err: `Failed to parse line 2 in '${join(dir, 'list')}'.\n` });
      expect(guard.calls).toHaveLength(0);
    });

    it('does nothing but load when the directory does not exist', async () => {
      const r = await runTool('rm', ['-s', sock, '-c', VM], { env: { VARSTORE_EFI_CLONE_DIR: join(dir, 'absent') } });
      expect(r).toMatchObject({ code: 0, out: '', err: '' });
      expect(setCalls()).toBe(0);
    });

    it('takes no <guid> <name> with -c, and needs them without', async () => {
      expect((await tool('rm', '-c', VM, GLOBAL, 'PK')).code).toBe(1);
      const usage = await tool('rm', VM);
      expect(usage.code).toBe(1);
      expect(usage.out.split('\n')[0]).toBe(
        `usage: ${toolPath('rm')} [-c] [-h] [depriv options] <vm-uuid> [<guid> <name>]`,
      );
    });
  });
});
