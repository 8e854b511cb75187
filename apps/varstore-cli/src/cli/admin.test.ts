/**
 * The built `varstore` as an administrator uses it: boot-check against Debian's signed shim and
 * GRUB (shim-signed, grub-efi-amd64-signed) and pesign's Authenticode hash, safe enrollment, pipes
 * and `-`, options before the command, exit statuses, JSON, messages, file modes, and decoded boot
 * entries.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { utf16le } from '@vmsb/efi';
import { generatePool, startPoolDouble } from '@vmsb/xapi/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  assertBuilt,
  makeCert,
  OVMF_DIR,
  ovmfFile,
  readBytes,
  requirePeer,
  SNAKEOIL_PEM,
  varstore,
} from './testing/support.js';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

const SHIM = '/usr/lib/shim/shimx64.efi.signed';
const SHIM_UNSIGNED = '/usr/lib/shim/shimx64.efi';
const GRUB = '/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed';

let work: string;
let n = 0;
function dir(): string {
  const d = join(work, `t${++n}`);
  mkdirSync(d);
  return d;
}

function pesignHash(path: string): string {
  const out = execFileSync('pesign', ['-h', '-P', '-i', path]).toString();
  return /hash:\s*([0-9a-f]{64})/.exec(out)![1]!;
}

/** A store in user mode: PK and KEK from Debian's OVMF snakeoil certificate, db as asked. */
async function enrolled(d: string, db: string[]): Promise<string> {
  const store = `${d}/vm.vars`;
  const r = await varstore(['enroll', store, '--pk', SNAKEOIL_PEM, '--kek', SNAKEOIL_PEM, ...db, '--no-backup']);
  if (r.code !== 0) throw new Error(r.stderr);
  return store;
}

beforeAll(() => {
  assertBuilt();
  requirePeer('pesign', 'pesign');
  requirePeer('openssl', 'openssl');
  for (const [f, pkg] of [
    [SHIM, 'shim-signed'],
    [GRUB, 'grub-efi-amd64-signed'],
    [SNAKEOIL_PEM, 'ovmf'],
  ])
    if (!existsSync(f!)) throw new Error(`${f} is missing: install the Debian package "${pkg}" (scripts/setup does)`);
  work = mkdtempSync(join(tmpdir(), 'varstore-admin-'));
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('boot-check', () => {
  it("allows Debian's shim by the UEFI CA, refuses GRUB (Debian's CA), and says why in JSON", async () => {
    const store = await enrolled(dir(), ['--microsoft-db', 'uefi']);
    const r = await varstore(['boot-check', store, SHIM, GRUB, '--json']);
    expect(r.code).toBe(1);
    const [shim, grub] = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(shim).toMatchObject({
      image: SHIM,
      allowed: true,
      sha256: pesignHash(SHIM),
      decidedBy: 1,
      match: { database: 'db', type: 'CERT_X509' },
      remedy: null,
    });
    expect(String(shim!.reason)).toContain('Microsoft Corporation UEFI CA 2011');
    expect(grub).toMatchObject({ image: GRUB, allowed: false, sha256: pesignHash(GRUB), match: null });
    expect(String(grub!.remedy)).toContain('Debian Secure Boot CA');
    expect((await varstore(['boot-check', store, SHIM])).code).toBe(0);
  });

  it('names the Microsoft CA to enroll when db trusts only Windows, and allows anything in setup mode', async () => {
    const d = dir();
    const store = await enrolled(d, ['--microsoft-db', 'windows']);
    const r = await varstore(['boot-check', store, SHIM]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('refused');
    expect(r.stdout).toMatch(/to boot it\s+enroll Microsoft Corporation UEFI CA 2011 or Microsoft UEFI CA 2023 in db/);
    const setup = `${d}/setup.vars`;
    expect((await varstore(['set', setup, 'Timeout', '--hex', '0500', '--no-backup'])).code).toBe(0);
    const s = await varstore(['boot-check', setup, GRUB, '--json']);
    expect([s.code, JSON.parse(s.stdout)[0].allowed]).toEqual([0, true]);
    expect(JSON.parse(s.stdout)[0].reason).toContain('setup mode');
  });

  it("esl --pe makes the db/dbx hash entry (pesign's hash); dbx wins over db", async () => {
    const d = dir();
    const store = await enrolled(d, ['--microsoft-db', 'uefi']);
    // Unsigned shim: refused, then allowed once its hash is in db.
    expect((await varstore(['boot-check', store, SHIM_UNSIGNED])).code).toBe(1);
    const esl = await varstore(['esl', '--pe', SHIM_UNSIGNED, '--owner', 'zero', '--out', '-']);
    expect(esl.code).toBe(0);
    const set = await varstore(['set', store, 'db', '--append', '--esl', '-', '--no-backup'], {
      input: esl.stdoutBytes,
    });
    expect(set.code).toBe(0);
    const ok = await varstore(['boot-check', store, SHIM_UNSIGNED, '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)[0].match.type).toBe('CERT_SHA256');
    // The signed shim's hash, as pesign computes it, revoked in dbx: refused though db trusts its signer.
    const dbx = await varstore(['esl', '--pe', SHIM, '--owner', 'zero', '--out', `${d}/dbx.esl`]);
    expect(dbx.code).toBe(0);
    expect(
      Buffer.from(readBytes(`${d}/dbx.esl`))
        .subarray(-32)
        .toString('hex'),
    ).toBe(pesignHash(SHIM));
    expect((await varstore(['set', store, 'dbx', '--esl', `${d}/dbx.esl`, '--no-backup'])).code).toBe(0);
    const revoked = await varstore(['boot-check', store, SHIM, '--json']);
    expect(revoked.code).toBe(1);
    expect(JSON.parse(revoked.stdout)[0]).toMatchObject({
      allowed: false,
      match: { database: 'dbx', type: 'CERT_SHA256' },
    });
    expect(JSON.parse(revoked.stdout)[0].remedy).toContain('dbx');
  });

  it('is a usage error without images, and exit 3 for an unreadable image', async () => {
    const store = await enrolled(dir(), ['--microsoft-db', 'all']);
    expect((await varstore(['boot-check', store])).code).toBe(2);
    expect((await varstore(['boot-check', store, `${work}/missing.efi`])).code).toBe(3);
  });
});

describe('boot-check vm:all (the pool double of @vmsb/xapi stands in for XAPI)', () => {
  it('checks every UEFI VM: allowed, refused or first_boot per VM, NDJSON with the images, exit 1', async () => {
    const d = dir();
    const uefi = readFileSync(await enrolled(d, ['--microsoft-db', 'uefi'])).toString('base64');
    execFileSync('mv', [`${d}/vm.vars`, `${d}/uefi.vars`]);
    const windows = readFileSync(await enrolled(d, ['--microsoft-db', 'windows'])).toString('base64');
    const specs = generatePool(24, (i) => ({ 'EFI-variables': i % 2 === 0 ? uefi : windows }));
    const socket = join(d, 'xapi');
    const pool = await startPoolDouble({ socketPath: socket, vms: specs });
    try {
      const r = await varstore(['boot-check', 'vm:all', SHIM, '--socket', socket, '--json']);
      expect(r.code).toBe(1);
      const lines = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const expected = specs
        .map((spec, i) => ({ spec, i, uuid: [...pool.vms.values()][i]!.uuid }))
        .filter(({ spec }) => spec.kind.startsWith('uefi-'));
      expect(lines.map((l) => l.vm).sort()).toEqual(expected.map((e) => e.uuid).sort());
      for (const l of lines) {
        const e = expected.find((x) => x.uuid === l.vm)!;
        const want = e.spec.kind === 'uefi-never-booted' ? 'first_boot' : e.i % 2 === 0 ? 'allowed' : 'refused';
        expect([l.vm, l.result]).toEqual([l.vm, want]);
        if (want !== 'first_boot')
          expect(l.images[0]).toMatchObject({ image: SHIM, allowed: want === 'allowed', sha256: pesignHash(SHIM) });
      }
    } finally {
      await pool.close();
    }
  });
});

describe('safe enrollment', () => {
  it("refuses a db that drops Microsoft's CAs unless --microsoft-db says so, and status warns about option ROMs", async () => {
    const d = dir();
    const own = makeCert(d, 'own', 'Own db');
    const store = `${d}/vm.vars`;
    const base = ['enroll', store, '--pk', SNAKEOIL_PEM, '--kek', SNAKEOIL_PEM, '--db', own.crt, '--no-backup'];
    const refused = await varstore(base);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("holds none of Microsoft's CAs");
    expect(refused.stderr).toContain('--microsoft-db none');
    expect(existsSync(store)).toBe(false);
    expect((await varstore([...base, '--microsoft-db', 'none'])).code).toBe(0);
    const status = await varstore(['status', store, '--json']);
    expect(JSON.parse(status.stdout).warnings.join('\n')).toContain('no option-ROM CA');
    const kept = `${d}/kept.vars`;
    expect(
      (
        await varstore([
          'enroll',
          kept,
          '--pk',
          SNAKEOIL_PEM,
          '--kek',
          SNAKEOIL_PEM,
          '--db',
          own.crt,
          '--microsoft-db',
          'all',
          '--no-backup',
        ])
      ).code,
    ).toBe(0);
    expect(JSON.parse((await varstore(['status', kept, '--json'])).stdout).warnings.join('\n')).not.toContain(
      'option-ROM',
    );
  });
});

describe('conventions', () => {
  it('reads a store from stdin (xe vm-param-get … | varstore status -) and writes --out - to stdout', async () => {
    const d = dir();
    const store = await enrolled(d, ['--microsoft-db', 'all']);
    const b64 = `${readFileSync(store).toString('base64')}\n`;
    const r = await varstore(['status', '-', '--json'], { input: new Uint8Array(Buffer.from(b64)) });
    expect([r.code, JSON.parse(r.stdout).readiness, JSON.parse(r.stdout).format]).toEqual([
      0,
      'ready_no_dbx',
      'vars-base64',
    ]);
    const out = await varstore(['get', store, 'PK', '--out', '-']);
    expect(out.code).toBe(0);
    expect(existsSync(join(d, '-'))).toBe(false);
    expect(out.stdoutBytes.length).toBeGreaterThan(40);
    const write = await varstore(['set', '-', 'Timeout', '--hex', '0300'], { input: readBytes(store) });
    expect([write.code, write.stderr]).toEqual([2, expect.stringContaining('standard input')]);
  });

  it('takes global options before the command', async () => {
    const store = await enrolled(dir(), ['--microsoft-db', 'all']);
    const r = await varstore(['--ascii', 'status', store]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Secure Boot  + varstored's rule (Xen): PK enrolled");
    expect(r.stdout).not.toContain('✓');
    expect(JSON.parse((await varstore(['--json', 'ls', store])).stdout).variables.length).toBe(3);
    expect((await varstore(['--socket', '/nonexistent', 'ls', store])).code).toBe(0);
  });

  it('exits as --help says: missing variable 1, setup_mode 1, usage 2', async () => {
    const d = dir();
    const store = await enrolled(d, ['--microsoft-db', 'all']);
    const unknown = await varstore(['get', store, 'NoSuchVariable']);
    expect([unknown.code, unknown.stderr]).toEqual([1, expect.stringContaining('no variable named "NoSuchVariable"')]);
    expect((await varstore(['get', store, 'BootOrder'])).code).toBe(1);
    expect((await varstore(['rm', store, 'NoSuchVariable'])).code).toBe(1);
    const setup = `${d}/setup.vars`;
    expect((await varstore(['set', setup, 'Timeout', '--hex', '0500', '--no-backup'])).code).toBe(0);
    expect((await varstore(['status', setup])).code).toBe(1);
    expect((await varstore(['status', store])).code).toBe(0);
    const help = await varstore(['status', '--help']);
    expect(help.stdout).toContain('1 when one is in setup_mode');
  });

  it('prints JSON for writes too: name and guid apart, ISO-8601 UTC times, certificates with the same fields', async () => {
    const d = dir();
    const store = await enrolled(d, ['--microsoft-db', 'all']);
    const set = JSON.parse(
      (await varstore(['set', store, 'Timeout', '--hex', '0300', '--json', '--no-backup'])).stdout,
    );
    expect(set).toMatchObject({ name: 'Timeout', guid: '8be4df61-93ca-11d2-aa0d-00e098032b8c', action: 'set' });
    const rm = JSON.parse((await varstore(['rm', store, 'Timeout', '--json', '--no-backup'])).stdout);
    expect(rm).toMatchObject({ name: 'Timeout', action: 'deleted' });
    const ls = JSON.parse((await varstore(['ls', store, '--json'])).stdout);
    for (const v of ls.variables)
      expect(v.timestamp === null || /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(v.timestamp)).toBe(true);
    const status = JSON.parse((await varstore(['status', store, '--json'])).stdout);
    const keys = (o: object) => Object.keys(o).sort();
    expect(keys(status.pk)).toEqual(keys(status.kek.certificates[0]));
    expect(keys(status.db.certificates[0])).toEqual(keys(status.pk));
    expect(status.pk.problem).toBeNull();
    const conv = JSON.parse((await varstore(['convert', store, `${d}/vm.json`, '--json'])).stdout);
    expect(conv).toMatchObject({ from: 'vars', to: 'json', variables: 3 });
    const esl = JSON.parse(
      (await varstore(['esl', '--pe', SHIM, '--owner', 'zero', '--out', `${d}/x.esl`, '--json'])).stdout,
    );
    expect(esl).toMatchObject({ entries: 1, size: 76 });
    const key = makeCert(d, 'k');
    const sign = JSON.parse(
      (
        await varstore([
          'sign',
          '--var',
          'db',
          '--key',
          key.key,
          '--cert',
          key.crt,
          `${d}/x.esl`,
          '--timestamp',
          '2030-01-02',
          '--out',
          `${d}/x.auth`,
          '--json',
        ])
      ).stdout,
    );
    expect(sign).toMatchObject({
      name: 'db',
      guid: 'd719b2cb-3d3a-4596-a3bc-dad00e67656f',
      timestamp: '2030-01-02T00:00:00Z',
      step: 'signed',
    });
    const enroll = JSON.parse((await varstore(['enroll', store, '--dbx', `${d}/x.esl`, '--json', '--dry-run'])).stdout);
    expect(enroll.changes).toEqual([
      {
        name: 'dbx',
        guid: 'd719b2cb-3d3a-4596-a3bc-dad00e67656f',
        action: 'create',
        sizeBefore: 0,
        sizeAfter: 76,
        added: [expect.stringMatching(/^CERT_SHA256 /)],
        removed: [],
      },
    ]);
  });

  it('prints keys create and certs update as JSON, changes as data', async () => {
    const d = dir();
    const keys = JSON.parse((await varstore(['keys', 'create', '--out', `${d}/keys`, '--json'])).stdout);
    expect(keys.files).toContainEqual({ name: 'PK.key', mode: '0600' });
    expect(keys.files).toContainEqual({ name: 'PK.auth', mode: '0644' });
    const fd = `${d}/vm.fd`;
    execFileSync('cp', [ovmfFile(`${OVMF_DIR}/OVMF_VARS_4M.ms.fd`), fd]);
    const update = await varstore(['certs', 'update', fd, '--dry-run', '--json']);
    expect(update.code).toBe(4);
    const doc = JSON.parse(update.stdout);
    expect(doc.changes[0]).toMatchObject({
      name: 'db',
      guid: 'd719b2cb-3d3a-4596-a3bc-dad00e67656f',
      action: 'update',
    });
    expect(doc.changes[0].added).toEqual(expect.arrayContaining([expect.stringContaining('Microsoft UEFI CA 2023')]));
  });

  it('names a bad hex digit, says "not a certificate" for a text file, never shows a temporary name', async () => {
    const d = dir();
    const hexBad = await varstore(['esl', '--sha256', `${'0'.repeat(62)}g0`, '--owner', 'zero', '--out', `${d}/x.esl`]);
    expect([hexBad.code, hexBad.stderr]).toEqual([2, expect.stringContaining('"g" is not a hex digit')]);
    execFileSync('sh', ['-c', `echo 'hello' > ${d}/notes.txt`]);
    const text = await varstore(['esl', '--cert', `${d}/notes.txt`, '--owner', 'zero', '--out', `${d}/x.esl`]);
    expect([text.code, text.stderr]).toEqual([3, expect.stringContaining('not a certificate')]);
    const noDir = await varstore(['esl', '--pe', SHIM, '--owner', 'zero', '--out', `${d}/no/such/dir/x.esl`]);
    expect(noDir.code).toBe(3);
    expect(noDir.stderr).toContain(`${d}/no/such/dir/x.esl`);
    expect(noDir.stderr).not.toMatch(/\.tmp/);
    // Two certificates with one subject: the mismatch is told by fingerprint.
    const a = makeCert(d, 'a', 'Same Name');
    const b = makeCert(d, 'b', 'Same Name');
    const payload = `${d}/p.esl`;
    expect((await varstore(['esl', '--cert', a.crt, '--owner', 'zero', '--out', payload])).code).toBe(0);
    expect(
      (await varstore(['sign', '--var', 'db', '--key', a.key, '--cert', a.crt, payload, '--out', `${d}/p.auth`])).code,
    ).toBe(0);
    const wrong = await varstore(['verify', `${d}/p.auth`, '--var', 'db', '--anchor', b.crt]);
    const fp = (crt: string) =>
      execFileSync('openssl', ['x509', '-in', crt, '-noout', '-fingerprint', '-sha256'])
        .toString()
        .split('=')[1]!
        .trim()
        .replace(/:/g, '')
        .toLowerCase();
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toContain(fp(a.crt));
    expect(wrong.stdout).toContain(fp(b.crt));
  });

  it('verify --json has one shape with --store and with --anchor', async () => {
    const d = dir();
    const a = makeCert(d, 'a', 'KEK Signer');
    const store = `${d}/vm.vars`;
    expect(
      (await varstore(['enroll', store, '--pk', a.crt, '--kek', a.crt, '--microsoft-db', 'all', '--no-backup'])).code,
    ).toBe(0);
    expect((await varstore(['esl', '--pe', SHIM, '--owner', 'zero', '--out', `${d}/p.esl`])).code).toBe(0);
    expect(
      (
        await varstore([
          'sign',
          '--var',
          'db',
          '--append',
          '--timestamp',
          '2030-01-01',
          '--key',
          a.key,
          '--cert',
          a.crt,
          `${d}/p.esl`,
          '--out',
          `${d}/p.auth`,
        ])
      ).code,
    ).toBe(0);
    const byStore = await varstore(['verify', `${d}/p.auth`, '--var', 'db', '--append', '--store', store, '--json']);
    const byAnchor = await varstore(['verify', `${d}/p.auth`, '--var', 'db', '--append', '--anchor', a.crt, '--json']);
    expect([byStore.code, byAnchor.code]).toEqual([0, 0]);
    const s = JSON.parse(byStore.stdout);
    const an = JSON.parse(byAnchor.stdout);
    expect(Object.keys(s).sort()).toEqual(Object.keys(an).sort());
    for (const doc of [s, an]) {
      expect(doc).toMatchObject({
        accepted: true,
        name: 'db',
        guid: 'd719b2cb-3d3a-4596-a3bc-dad00e67656f',
        append: true,
        timestamp: '2030-01-01T00:00:00Z',
      });
      expect(doc.trustedBy.subject).toBe('CN=KEK Signer');
    }
    expect([s.against, an.against]).toEqual(['store', 'anchors']);
  });

  it('applies one file-mode policy: public 0644, NVRAM and values 0600, backups as their original', async () => {
    const d = dir();
    const store = await enrolled(d, ['--microsoft-db', 'all']);
    const mode = (p: string) => statSync(p).mode & 0o777;
    expect(mode(store)).toBe(0o600);
    expect((await varstore(['esl', '--pe', SHIM, '--owner', 'zero', '--out', `${d}/x.esl`])).code).toBe(0);
    expect(mode(`${d}/x.esl`)).toBe(0o644);
    expect((await varstore(['get', store, 'PK', '--out', `${d}/pk.bin`])).code).toBe(0);
    expect(mode(`${d}/pk.bin`)).toBe(0o600);
    chmodSync(store, 0o640);
    expect((await varstore(['set', store, 'Timeout', '--hex', '0300'])).code).toBe(0);
    const backup = readdirSync(d).find((f) => f.startsWith('vm.vars.bak-'))!;
    expect([mode(store), mode(`${d}/${backup}`)]).toEqual([0o640, 0o640]);
    expect((await varstore(['convert', store, `${d}/new.json`])).code).toBe(0);
    expect(mode(`${d}/new.json`)).toBe(0o600);
    chmodSync(`${d}/new.json`, 0o660);
    expect((await varstore(['convert', store, `${d}/new.json`, '--force'])).code).toBe(0);
    expect(mode(`${d}/new.json`)).toBe(0o660);
  });
});

describe('ls decodes what virt-fw-vars decodes', () => {
  it('shows load options with device paths, BootOrder, strings and switches; --raw keeps hex', async () => {
    const d = dir();
    const store = `${d}/vm.vars`;
    // Boot0001: ACTIVE, "UEFI Misc Device", PciRoot(0x0)/Pci(0x3,0x0), End.
    const path = '02010c00d041030a00000000' + '01010600' + '0003' + '7fff0400';
    const option = `01000000${(path.length / 2).toString(16).padStart(2, '0')}00${Buffer.from(utf16le('UEFI Misc Device')).toString('hex')}0000${path}`;
    for (const [name, hexValue, extra] of [
      ['Boot0001', option, []],
      ['BootOrder', '01000000', []],
      ['PlatformLang', Buffer.from('en-US\0').toString('hex'), []],
      ['SecureBootEnable', '00', []],
    ] as const)
      expect((await varstore(['set', store, name, '--hex', hexValue, '--no-backup', ...extra])).code).toBe(0);
    const r = await varstore(['ls', store]);
    expect(r.stdout).toContain('"UEFI Misc Device" PciRoot(0x0)/Pci(0x3,0x0)');
    expect(r.stdout).toContain('Boot0001, Boot0000');
    expect(r.stdout).toContain('"en-US"');
    expect(r.stdout).toMatch(/SecureBootEnable .*false/);
    const raw = await varstore(['ls', store, '--raw']);
    expect(raw.stdout).toContain('01000000');
    expect(raw.stdout).not.toContain('PciRoot');
    const json = JSON.parse((await varstore(['ls', store, '--json'])).stdout);
    expect(json.variables[0].value).toEqual({
      type: 'load-option',
      attributes: 1,
      active: true,
      description: 'UEFI Misc Device',
      devicePath: 'PciRoot(0x0)/Pci(0x3,0x0)',
      optionalData: '',
    });
  });
});
