import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { XapiClient, XapiError } from './client.js';
import { postXmlRpc } from './http.js';
import { isUefiGuest, PoolClient } from './pool.js';
import { generatePool, startPoolDouble, type PoolDouble } from './pool-double.js';
import { tempSocketDir } from './test-support.js';
import { decodeMethodResponse, encodeMethodCall } from './xmlrpc.js';

let dir: ReturnType<typeof tempSocketDir>;
let pool: PoolDouble | undefined;

beforeEach(() => {
  dir = tempSocketDir();
});
afterEach(async () => {
  await pool?.close();
  pool = undefined;
  dir.remove();
});

const NVRAM = { 'EFI-variables': Buffer.from('VARS').toString('base64') };

describe('the pool double speaks XAPI XML-RPC', () => {
  it('answers a Status/Value struct with untyped strings, and ErrorDescription on failure', async () => {
    pool = await startPoolDouble({ socketPath: dir.path('xapi'), vms: [{ nameLabel: 'a' }] });
    const raw = async (method: string, params: string[]) => {
      const response = await postXmlRpc({
        socketPath: pool!.socketPath,
        body: encodeMethodCall(method, params),
        timeoutMs: 5000,
      });
      expect(response.status).toBe(200);
      return response.body.toString('utf8');
    };
    const login = await raw('session.login_with_password', ['root', '', '1.0', 'test']);
    expect(login).toMatch(
      /^<\?xml version="1.0"\?><methodResponse><params><param><value><struct><member><name>Status<\/name><value>Success<\/value><\/member><member><name>Value<\/name><value>OpaqueRef:[0-9a-f-]{36}<\/value>/,
    );
    const bad = await raw('VM.get_all_records', ['OpaqueRef:nope']);
    const decoded = decodeMethodResponse(bad);
    expect(decoded.kind === 'result' && decoded.value).toEqual(
      new Map<string, unknown>([
        ['Status', 'Failure'],
        ['ErrorDescription', ['SESSION_INVALID', 'OpaqueRef:nope']],
      ]),
    );
  });

  it('ends sessions at logout, and names unknown methods, handles, UUIDs and parameter counts', async () => {
    pool = await startPoolDouble({ socketPath: dir.path('xapi'), vms: [{ nameLabel: 'a' }] });
    const client = new XapiClient({ socket: pool.socketPath });
    const session = await client.login();
    expect(pool.sessions.has(session)).toBe(true);
    const failure = async (method: string, params: string[]) => {
      const error = await client.call(method, params).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(XapiError);
      return (error as XapiError).errorDescription;
    };
    expect(await failure('VM.destroy', [session])).toEqual(['MESSAGE_METHOD_UNKNOWN', 'VM.destroy']);
    expect(await failure('VM.get_power_state', [session, 'OpaqueRef:x'])).toEqual([
      'HANDLE_INVALID',
      'VM',
      'OpaqueRef:x',
    ]);
    expect(await failure('VM.get_by_uuid', [session, '00000000-0000-0000-0000-000000000000'])).toEqual([
      'UUID_INVALID',
      'VM',
      '00000000-0000-0000-0000-000000000000',
    ]);
    expect(await failure('VM.get_power_state', [session])).toEqual([
      'MESSAGE_PARAMETER_COUNT_MISMATCH',
      'VM.get_power_state',
      '2',
      '1',
    ]);
    await client.logout(session);
    expect(await failure('VM.get_all', [session])).toEqual(['SESSION_INVALID', session]);
  });

  it('does not check the power state on VM.set_NVRAM_EFI_variables, as XAPI does not', async () => {
    pool = await startPoolDouble({ socketPath: dir.path('xapi'), vms: [{ nameLabel: 'up', powerState: 'Running' }] });
    const [vm] = pool.vms.values();
    await new PoolClient({ socket: pool.socketPath }).withSession((s) => s.setNvramEfiVariables(vm!.ref, 'AAAA'));
    expect(vm!.nvram.get('EFI-variables')).toBe('AAAA');
  });

  it('keeps and replaces Pool.custom_uefi_certificates, unless custom certificates are not allowed', async () => {
    pool = await startPoolDouble({ socketPath: dir.path('xapi'), uefiCertificates: 'ZGVm' });
    const client = new PoolClient({ socket: pool.socketPath });
    await client.withSession(async (s) => {
      const ref = await s.pool();
      expect(await s.uefiCertificates(ref)).toBe('ZGVm');
      expect(await s.customUefiCertificates(ref)).toBe('');
      await s.setCustomUefiCertificates(ref, 'Y3VzdG9t');
      expect(await s.customUefiCertificates(ref)).toBe('Y3VzdG9t');
    });
    pool.allowCustomUefiCertificates = false;
    const error = await client
      .withSession(async (s) => s.setCustomUefiCertificates(await s.pool(), ''))
      .catch((e: unknown) => e);
    expect((error as XapiError).errorDescription[0]).toBe('OPERATION_NOT_ALLOWED');
    expect(pool.sessions.size).toBe(0);
  });
});

describe('PoolClient reads a pool of every kind of VM with one VM.get_all_records', () => {
  it('classifies templates, snapshots, control domains, BIOS and PV guests out, UEFI guests in', async () => {
    const specs = generatePool(300, () => NVRAM);
    pool = await startPoolDouble({ socketPath: dir.path('xapi'), vms: specs });
    const records = await new PoolClient({ socket: pool.socketPath }).withSession((s) => s.vmRecords());
    expect(records).toHaveLength(300);
    expect(pool.callsOf('VM.get_all_records')).toHaveLength(1);
    const kinds = new Map(specs.map((s) => [s.nameLabel, s.kind]));
    const seen = new Set<string>();
    for (const r of records) {
      const kind = kinds.get(r.nameLabel)!;
      seen.add(kind);
      expect([r.nameLabel, isUefiGuest(r)]).toEqual([r.nameLabel, kind.startsWith('uefi-')]);
      if (kind === 'uefi-never-booted') expect(r.nvram.size).toBe(0);
      if (kind === 'uefi-running') expect(r.powerState).toBe('Running');
    }
    expect(seen.size).toBe(10);
  });

  it('reports a record that is not what XAPI sends as a protocol error', async () => {
    pool = await startPoolDouble({ socketPath: dir.path('xapi'), vms: [{ nameLabel: 'a' }] });
    pool.inject({ kind: 'failure', errorDescription: ['INTERNAL_ERROR', 'db'] }, { method: 'VM.get_all_records' });
    const error = await new PoolClient({ socket: pool.socketPath })
      .withSession((s) => s.vmRecords())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(XapiError);
    expect((error as XapiError).message).toContain('INTERNAL_ERROR');
    expect(pool.sessions.size).toBe(0);
  });
});
