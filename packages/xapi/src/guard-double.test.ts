/**
 * The xapi-guard double, exercised with an independent HTTP client (node:http), so its wire
 * behaviour is checked by something other than this package's own client.
 */
import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startGuardDouble, type GuardDouble } from './guard-double.js';
import { tempSocketDir } from './test-support.js';
import { decodeMethodResponse, encodeMethodCall, type XmlRpcValue } from './xmlrpc.js';

let dir: ReturnType<typeof tempSocketDir>;
let guard: GuardDouble;
const VM = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';

beforeEach(async () => {
  dir = tempSocketDir();
  guard = await startGuardDouble({
    socketPath: dir.path('guard.sock'),
    vmUuid: VM,
    nvram: { 'EFI-variables-on-boot': 'persist' },
  });
});
afterEach(async () => {
  await guard.close();
  dir.remove();
});

function post(body: string, method = 'POST'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: guard.socketPath, path: '/', method, headers: { 'Content-Type': 'text/xml' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Call and return XAPI's {Status, Value|ErrorDescription} struct as a plain object. */
async function call(method: string, params: XmlRpcValue[]): Promise<Record<string, XmlRpcValue>> {
  const answer = await post(encodeMethodCall(method, params, 'bare'));
  expect(answer.status).toBe(200);
  const decoded = decodeMethodResponse(answer.body);
  if (decoded.kind !== 'result' || !(decoded.value instanceof Map)) throw new Error('not a XAPI struct');
  return Object.fromEntries(decoded.value);
}

describe('xapi-guard double: the allowed methods', () => {
  it('answers login and get_by_uuid with the dummy references, whatever the arguments', async () => {
    expect(await call('session.login_with_password', ['root', '', '', ''])).toEqual({
      Status: 'Success',
      Value: 'DUMMYSESSION',
    });
    expect(await call('VM.get_by_uuid', ['anything', 'another-uuid'])).toEqual({ Status: 'Success', Value: 'DUMMYVM' });
    expect(await call('session.logout', ['x'])).toEqual({ Status: 'Success', Value: null });
  });

  it('writes answers the way XAPI does (untyped strings, <nil/>)', async () => {
    const answer = await post(encodeMethodCall('session.logout', ['DUMMYSESSION']));
    expect(answer.body).toBe(
      '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member>' +
        '<member><name>Value</name><value><nil/></value></member></struct></value></param></params></methodResponse>',
    );
  });

  it('serves and updates the NVRAM map', async () => {
    expect(await call('VM.get_NVRAM', ['s', 'v'])).toEqual({
      Status: 'Success',
      Value: new Map([['EFI-variables-on-boot', 'persist']]),
    });
    await call('VM.set_NVRAM_EFI_variables', ['s', 'v', 'VkFSUw==']);
    expect(guard.nvram.get('EFI-variables')).toBe('VkFSUw==');
    const after = await call('VM.get_NVRAM', ['s', 'v']);
    expect((after.Value as Map<string, string>).get('EFI-variables')).toBe('VkFSUw==');
  });

  it('handles the _v2 write and the certificates state', async () => {
    guard.certificatesState = 'update_on_boot';
    expect(await call('VM.get_secureboot_certificates_state', ['s', 'v'])).toEqual({
      Status: 'Success',
      Value: 'update_on_boot',
    });
    await call('VM.set_NVRAM_EFI_variables_v2', ['s', 'v', 'QQ==', 'no']);
    expect(guard.certificatesState).toBe('update_on_boot');
    await call('VM.set_NVRAM_EFI_variables_v2', ['s', 'v', 'Qg==', 'yes']);
    expect(guard.certificatesState).toBe('ok');
    expect(guard.nvram.get('EFI-variables')).toBe('Qg==');
  });

  it('creates messages bound to its own VM, whatever name, class and uuid are sent', async () => {
    expect(await call('message.create', ['s', 'OTHER', 3, 'Host', 'someone-else', 'text'])).toEqual({
      Status: 'Success',
      Value: null,
    });
    expect(guard.messages).toEqual([
      { name: 'VM_SECURE_BOOT_FAILED', priority: 3, cls: 'VM', objUuid: VM, body: 'text' },
    ]);
  });

  it('refuses unknown methods, wrong parameter counts and types as XAPI failures', async () => {
    expect(await call('VM.destroy', ['s', 'v'])).toEqual({
      Status: 'Failure',
      ErrorDescription: ['MESSAGE_METHOD_UNKNOWN', 'VM.destroy'],
    });
    expect(await call('__proto__', [])).toEqual({
      Status: 'Failure',
      ErrorDescription: ['MESSAGE_METHOD_UNKNOWN', '__proto__'],
    });
    expect(await call('VM.get_NVRAM', ['s'])).toEqual({
      Status: 'Failure',
      ErrorDescription: ['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VM.get_NVRAM', '2', '1'],
    });
    const typeError = await call('message.create', ['s', 'n', 'five', 'VM', 'u', 'b']);
    expect(typeError.Status).toBe('Failure');
    expect((typeError.ErrorDescription as string[])[0]).toBe('FIELD_TYPE_ERROR');
    expect(guard.messages).toEqual([]);
  });

  it('answers unreadable requests with a failure and other HTTP methods with 405', async () => {
    const garbage = await post('<methodCall><oops');
    expect(garbage.status).toBe(200);
    expect(garbage.body).toContain('<value>Failure</value>');
    expect((await post('', 'GET')).status).toBe(405);
  });

  it('records every call with its headers and decoded parameters', async () => {
    await call('session.login_with_password', ['root', '', '', '']);
    await post('', 'GET');
    expect(guard.calls.map((c) => [c.httpMethod, c.method])).toEqual([
      ['POST', 'session.login_with_password'],
      ['GET', undefined],
    ]);
    expect(guard.calls[0]!.params).toEqual(['root', '', '', '']);
    expect(guard.calls[0]!.headers).toContainEqual(['Content-Type', 'text/xml']);
    expect(guard.callsOf('session.login_with_password')).toHaveLength(1);
  });
});

describe('xapi-guard double: injected faults', () => {
  it('fails the next N calls of one method, leaving others alone and skipping the effect', async () => {
    guard.inject(
      { kind: 'failure', errorDescription: ['SR_FULL'] },
      { count: 2, method: 'VM.set_NVRAM_EFI_variables' },
    );
    expect(await call('session.login_with_password', ['root', '', '', ''])).toMatchObject({ Status: 'Success' });
    expect(await call('VM.set_NVRAM_EFI_variables', ['s', 'v', 'QQ=='])).toEqual({
      Status: 'Failure',
      ErrorDescription: ['SR_FULL'],
    });
    expect(await call('VM.set_NVRAM_EFI_variables', ['s', 'v', 'QQ=='])).toEqual({
      Status: 'Failure',
      ErrorDescription: ['SR_FULL'],
    });
    expect(guard.nvram.has('EFI-variables')).toBe(false);
    expect(await call('VM.set_NVRAM_EFI_variables', ['s', 'v', 'QQ=='])).toMatchObject({ Status: 'Success' });
    expect(guard.callsOf('VM.set_NVRAM_EFI_variables').map((c) => c.fault)).toEqual(['failure', 'failure', undefined]);
  });

  it('closes the connection without an answer', async () => {
    guard.inject({ kind: 'close' });
    await expect(post(encodeMethodCall('session.logout', ['s']))).rejects.toThrow(/socket hang up|ECONNRESET/);
  });

  it('answers garbage, raw or inside HTTP', async () => {
    guard.inject({ kind: 'garbage' });
    const inside = await post(encodeMethodCall('session.logout', ['s']));
    expect(inside.status).toBe(200);
    expect(() => decodeMethodResponse(inside.body)).toThrow();
    guard.inject({ kind: 'garbage', raw: Buffer.from('NOT HTTP\r\n\r\n') });
    await expect(post(encodeMethodCall('session.logout', ['s']))).rejects.toThrow();
  });

  it('answers with another HTTP status', async () => {
    guard.inject({ kind: 'http-status', status: 503 });
    expect((await post(encodeMethodCall('session.logout', ['s']))).status).toBe(503);
  });

  it('answers late but performs the call at once', async () => {
    guard.inject({ kind: 'slow', delayMs: 150 }, { method: 'VM.set_NVRAM_EFI_variables' });
    const pending = call('VM.set_NVRAM_EFI_variables', ['s', 'v', 'Qw==']);
    // The call is recorded and performed in the same step, before the delayed answer.
    while (guard.calls.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(guard.nvram.get('EFI-variables')).toBe('Qw==');
    expect(await pending).toEqual({ Status: 'Success', Value: null });
  });

  it('forgets faults on clearFaults and rejects a bad count', async () => {
    guard.inject({ kind: 'close' }, { count: 5 });
    guard.clearFaults();
    expect(await call('session.logout', ['s'])).toMatchObject({ Status: 'Success' });
    expect(() => guard.inject({ kind: 'close' }, { count: 0 })).toThrow(RangeError);
  });
});
