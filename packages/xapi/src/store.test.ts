/**
 * The xapidb store against the xapi-guard double (which stands in for xapi-guard and XAPI) over
 * real Unix sockets, and against a raw socket server where the exact bytes matter.
 */
import type { StoreState, Variable } from '@vmsb/efi';
import { decodeVarsBlob, encodeVarsBlob } from '@vmsb/nvram';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startGuardDouble, type GuardDouble } from './guard-double.js';
import { createXapidbStore, EFI_VARIABLES_KEY, type XapidbStoreOptions } from './store.js';
import {
  frameRequest,
  httpOk,
  ManualClock,
  requestComplete,
  startRawServer,
  successString,
  SUCCESS_NIL,
  tempSocketDir,
} from './test-support.js';

const VM = '4a6b1c2d-0e3f-4a5b-8c7d-9e0f1a2b3c4d';
const NV_BS_RT = 0x7;
const BS_RT = 0x6;

let dir: ReturnType<typeof tempSocketDir>;
let guard: GuardDouble;
let logs: string[];

beforeEach(async () => {
  dir = tempSocketDir();
  guard = await startGuardDouble({ socketPath: dir.path('xapi-depriv-socket'), vmUuid: VM });
  logs = [];
});
afterEach(async () => {
  await guard.close();
  dir.remove();
});

function store(extra: Partial<XapidbStoreOptions> = {}) {
  return createXapidbStore({
    uuid: VM,
    socket: guard.socketPath,
    log: (level, message) => logs.push(`${level}: ${message}`),
    ...extra,
  });
}

function utf16(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'utf16le'));
}

function variable(name: string, attributes: number, data: number[], fill = 0): Variable {
  return {
    name: utf16(name),
    guid: Uint8Array.from({ length: 16 }, (_, i) => i + 0x10),
    attributes,
    data: Uint8Array.from(data),
    timestamp: new Uint8Array(16).fill(fill),
    signerDigest: new Uint8Array(32).fill(fill),
  };
}

function state(variables: Variable[]): StoreState {
  return {
    variables,
    morKey: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
    ppi: { index: 0x105, func: new Uint8Array(256).fill(9) },
  };
}

/** The NV-only view of a state, as it must come back from XAPI. */
function nonVolatile(s: StoreState): StoreState {
  return { variables: s.variables.filter((v) => (v.attributes & 1) !== 0), morKey: s.morKey, ppi: s.ppi };
}

const methods = () => guard.calls.map((c) => c.method);

describe('load', () => {
  it('first boot: no EFI-variables key resolves to undefined after login, get_by_uuid, get_NVRAM, logout', async () => {
    guard.nvram.set('EFI-variables-on-boot', 'persist');
    expect(await store().load()).toBeUndefined();
    expect(guard.calls.map((c) => [c.method, c.params])).toEqual([
      ['session.login_with_password', ['root', '', '', '']],
      ['VM.get_by_uuid', ['DUMMYSESSION', VM]],
      ['VM.get_NVRAM', ['DUMMYSESSION', 'DUMMYVM']],
      ['session.logout', ['DUMMYSESSION']],
    ]);
    expect(logs.some((l) => l.includes('first boot'))).toBe(true);
  });

  it('decodes the stored blob', async () => {
    const stored = state([variable('BootOrder', NV_BS_RT, [0, 0, 1, 0], 0x11)]);
    guard.nvram.set(
      EFI_VARIABLES_KEY,
      Buffer.from(encodeVarsBlob(stored, { nonVolatileOnly: true })).toString('base64'),
    );
    expect(await store().load()).toEqual(stored);
  });

  it('names the source when the value is not base64', async () => {
    guard.nvram.set(EFI_VARIABLES_KEY, 'VkFSUw\n==');
    await expect(store().load()).rejects.toThrow(`VM.NVRAM["EFI-variables"] of VM ${VM} is not valid base64`);
  });

  it('names the source and the defect when the blob is corrupt', async () => {
    guard.nvram.set(EFI_VARIABLES_KEY, Buffer.from('VARX\x02\x00\x00\x00').toString('base64'));
    await expect(store().load()).rejects.toThrow(
      new RegExp(`^VM\\.NVRAM\\["EFI-variables"\\] of VM ${VM} is corrupt: .+`),
    );
    guard.nvram.set(EFI_VARIABLES_KEY, '');
    await expect(store().load()).rejects.toThrow(/is corrupt/);
  });

  it('rejects with the XAPI error when get_NVRAM fails', async () => {
    guard.inject(
      { kind: 'failure', errorDescription: ['HANDLE_INVALID', 'VM', 'DUMMYVM'] },
      { method: 'VM.get_NVRAM' },
    );
    await expect(store().load()).rejects.toThrow(
      `cannot read the NVRAM of VM ${VM} from XAPI (${guard.socketPath}): VM.get_NVRAM: XAPI error HANDLE_INVALID (VM, DUMMYVM)`,
    );
    expect(methods()).toEqual(['session.login_with_password', 'VM.get_by_uuid', 'VM.get_NVRAM', 'session.logout']);
  });

  it('rejects when the socket is not there', async () => {
    await guard.close();
    await expect(store().load()).rejects.toThrow(/session\.login_with_password: XAPI socket .*: (ENOENT|ECONNREFUSED)/);
  });

  it('loads even if the final logout fails (the data is already read)', async () => {
    guard.inject({ kind: 'close' }, { method: 'session.logout' });
    expect(await store().load()).toBeUndefined();
    expect(logs.some((l) => l.startsWith('warn: session.logout'))).toBe(true);
  });
});

describe('save', () => {
  it('writes base64 of the NV-only VARS v2 blob: login, get_by_uuid, set_NVRAM_EFI_variables, logout', async () => {
    const s = store();
    const full = state([
      variable(
        'Boot0000',
        NV_BS_RT,
        Array.from({ length: 300 }, (_, i) => i & 0xff),
      ),
      variable('Volatile', BS_RT, [1]),
    ]);
    await s.save(full);
    expect(guard.calls.map((c) => [c.method, c.params.slice(0, 2)])).toEqual([
      ['session.login_with_password', ['root', '']],
      ['VM.get_by_uuid', ['DUMMYSESSION', VM]],
      ['VM.set_NVRAM_EFI_variables', ['DUMMYSESSION', 'DUMMYVM']],
      ['session.logout', ['DUMMYSESSION']],
    ]);
    const written = guard.callsOf('VM.set_NVRAM_EFI_variables')[0]!.params[2] as string;
    expect(written).toMatch(/^[A-Za-z0-9+/]+={0,2}$/); // standard alphabet, padded, one line
    expect(written.length % 4).toBe(0);
    expect(written.length).toBeGreaterThan(76); // long enough that a line-wrapping encoder would have wrapped
    expect(written).toBe(Buffer.from(encodeVarsBlob(full, { nonVolatileOnly: true })).toString('base64'));
    const decoded = decodeVarsBlob(new Uint8Array(Buffer.from(written, 'base64')));
    expect(decoded).toEqual({ ok: true, version: 2, state: nonVolatile(full) });
  });

  it('looks the VM up once and reuses the reference (also after load)', async () => {
    const s = store();
    await s.save(state([variable('A', NV_BS_RT, [1])]));
    await s.save(state([variable('A', NV_BS_RT, [2])]));
    expect(guard.callsOf('VM.get_by_uuid')).toHaveLength(1);
    const loaded = store();
    await loaded.load();
    await loaded.save(state([variable('A', NV_BS_RT, [3])]));
    expect(guard.callsOf('VM.get_by_uuid')).toHaveLength(2);
  });

  it('round trip: what is written loads back identically (any NV state)', async () => {
    const variableArb = fc.record({
      name: fc.integer({ min: 1, max: 40 }).chain((n) => fc.uint8Array({ minLength: 2 * n, maxLength: 2 * n })),
      guid: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      attributes: fc.constantFrom(0x1, 0x3, 0x7, 0x27),
      data: fc.uint8Array({ minLength: 1, maxLength: 600 }),
      timestamp: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      signerDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    });
    const stateArb = fc.record({
      variables: fc.uniqueArray(variableArb, {
        maxLength: 12,
        selector: (v) => Buffer.concat([v.name, v.guid]).toString('hex'),
      }),
      morKey: fc.uint8Array({ minLength: 8, maxLength: 8 }),
      ppi: fc.record({ index: fc.nat({ max: 0x12f }), func: fc.uint8Array({ minLength: 256, maxLength: 256 }) }),
    });
    await fc.assert(
      fc.asyncProperty(stateArb, async (s) => {
        await store().save(s);
        expect(await store().load()).toEqual(s);
      }),
      { numRuns: 25 },
    );
  });

  it('rejects with a message naming the XAPI error, and logs out', async () => {
    guard.inject(
      { kind: 'failure', errorDescription: ['SESSION_INVALID', 'OpaqueRef:x'] },
      { method: 'VM.set_NVRAM_EFI_variables' },
    );
    const rejection = store().save(state([variable('A', NV_BS_RT, [1])]));
    await expect(rejection).rejects.toThrow(
      `cannot save the NVRAM of VM ${VM} to XAPI (${guard.socketPath}): VM.set_NVRAM_EFI_variables: XAPI error SESSION_INVALID (OpaqueRef:x)`,
    );
    await rejection.catch((error: Error) => {
      expect((error.cause as { errorDescription: string[] }).errorDescription).toEqual([
        'SESSION_INVALID',
        'OpaqueRef:x',
      ]);
    });
    expect(guard.nvram.has(EFI_VARIABLES_KEY)).toBe(false);
    expect(methods().at(-1)).toBe('session.logout');
  });

  it.each([
    [
      'a hang-up',
      { kind: 'close' as const },
      /VM\.set_NVRAM_EFI_variables: XAPI socket .*: (connection closed without an answer|ECONNRESET)/,
    ],
    ['garbage', { kind: 'garbage' as const }, /VM\.set_NVRAM_EFI_variables: unreadable XAPI answer: malformed XML/],
    ['raw garbage', { kind: 'garbage' as const, raw: Buffer.from('SSH-2.0\r\n\r\n') }, /not an HTTP response/],
    [
      'an HTTP error',
      { kind: 'http-status' as const, status: 500 },
      /VM\.set_NVRAM_EFI_variables: XAPI answered HTTP 500/,
    ],
  ])('rejects on %s', async (_what, fault, message) => {
    guard.inject(fault, { method: 'VM.set_NVRAM_EFI_variables' });
    await expect(store().save(state([variable('A', NV_BS_RT, [1])]))).rejects.toThrow(message);
  });

  it('rejects when the login fails', async () => {
    guard.inject(
      { kind: 'failure', errorDescription: ['SESSION_AUTHENTICATION_FAILED', 'root'] },
      { method: 'session.login_with_password' },
    );
    await expect(store().save(state([variable('A', NV_BS_RT, [1])]))).rejects.toThrow(
      /session\.login_with_password: XAPI error SESSION_AUTHENTICATION_FAILED \(root\)/,
    );
    expect(methods()).toEqual(['session.login_with_password']);
  });

  it('rejects when the answer does not come in time', async () => {
    guard.inject({ kind: 'slow', delayMs: 5_000 }, { method: 'VM.set_NVRAM_EFI_variables' });
    await expect(store({ timeoutMs: 200 }).save(state([variable('A', NV_BS_RT, [1])]))).rejects.toThrow(
      /no complete answer within 200 ms/,
    );
  });

  it('resolves when only the logout after a successful write fails (the write is durable)', async () => {
    guard.inject({ kind: 'failure', errorDescription: ['INTERNAL_ERROR'] }, { method: 'session.logout' });
    await store().save(state([variable('A', NV_BS_RT, [1])]));
    expect(guard.nvram.has(EFI_VARIABLES_KEY)).toBe(true);
    expect(logs.some((l) => l.startsWith('warn: session.logout: XAPI error INTERNAL_ERROR'))).toBe(true);
  });

  it('rejects a state no reader could load, without contacting XAPI', async () => {
    await expect(store().save(state([variable('Empty', NV_BS_RT, [])]))).rejects.toThrow(
      /cannot save the NVRAM of VM .*data length 0/,
    );
    expect(guard.calls).toEqual([]);
  });

  it('runs saves one at a time in call order', async () => {
    const s = store();
    await Promise.all([1, 2, 3, 4].map((n) => s.save(state([variable('A', NV_BS_RT, [n])]))));
    const values = guard
      .callsOf('VM.set_NVRAM_EFI_variables')
      .map((c) => decodeVarsBlob(Buffer.from(c.params[2] as string, 'base64')));
    expect(values.map((v) => v.ok && v.state.variables[0]!.data[0])).toEqual([1, 2, 3, 4]);
    // login/set/logout triples never interleave
    expect(methods().filter((m) => m !== 'VM.get_by_uuid')).toEqual(
      Array.from({ length: 4 }, () => [
        'session.login_with_password',
        'VM.set_NVRAM_EFI_variables',
        'session.logout',
      ]).flat(),
    );
  });

  it('non-persistent: loads from XAPI but never writes', async () => {
    const s = store({ nonPersistent: true });
    expect(await s.load()).toBeUndefined();
    const before = guard.calls.length;
    await s.save(state([variable('A', NV_BS_RT, [1])]));
    expect(guard.calls.length).toBe(before);
    expect(guard.nvram.has(EFI_VARIABLES_KEY)).toBe(false);
  });
});

describe('write throttle (injected clock)', () => {
  it('sends 100 writes at once, then waits half a second before each further write', async () => {
    const clock = new ManualClock();
    const s = store({ clock });
    const events: string[] = [];
    clock.onSleep = (ms) =>
      events.push(`sleep ${ms} after ${guard.callsOf('VM.set_NVRAM_EFI_variables').length} writes`);
    for (let i = 0; i < 100; i++) await s.save(state([variable('A', NV_BS_RT, [i & 0xff])]));
    expect(clock.sleeps).toEqual([]);
    await s.save(state([variable('A', NV_BS_RT, [100])]));
    await s.save(state([variable('A', NV_BS_RT, [101])]));
    expect(events).toEqual(['sleep 500 after 100 writes', 'sleep 500 after 101 writes']);
    expect(guard.callsOf('VM.set_NVRAM_EFI_variables')).toHaveLength(102);
    clock.advance(1_000); // two credits accrue
    await s.save(state([variable('A', NV_BS_RT, [102])]));
    await s.save(state([variable('A', NV_BS_RT, [103])]));
    expect(clock.sleeps).toHaveLength(2);
    await s.save(state([variable('A', NV_BS_RT, [104])]));
    expect(clock.sleeps).toHaveLength(3);
    expect(logs.filter((l) => l.includes('throttled'))).toHaveLength(3);
  });

  it('does not throttle loads or Secure Boot alerts', async () => {
    const clock = new ManualClock();
    const s = store({ clock });
    for (let i = 0; i < 100; i++) await s.save(state([variable('A', NV_BS_RT, [1])]));
    await s.load();
    await s.notifySecureBootFailure();
    expect(clock.sleeps).toEqual([]);
  });
});

describe('notifySecureBootFailure', () => {
  it('sends message.create(session, VM_SECURE_BOOT_FAILED, 5, VM, uuid, text) with an <int> priority', async () => {
    await store().notifySecureBootFailure();
    const [login, create, logout] = guard.calls;
    expect([login?.method, create?.method, logout?.method]).toEqual([
      'session.login_with_password',
      'message.create',
      'session.logout',
    ]);
    expect(create!.params).toEqual([
      'DUMMYSESSION',
      'VM_SECURE_BOOT_FAILED',
      5,
      'VM',
      VM,
      'The VM failed to pass Secure Boot verification.',
    ]);
    expect(create!.body).toContain('<param><value><int>5</int></value></param>');
    expect(guard.messages).toEqual([
      {
        name: 'VM_SECURE_BOOT_FAILED',
        priority: 5,
        cls: 'VM',
        objUuid: VM,
        body: 'The VM failed to pass Secure Boot verification.',
      },
    ]);
  });

  it('rejects when XAPI refuses the message', async () => {
    guard.inject(
      { kind: 'failure', errorDescription: ['MESSAGE_METHOD_UNKNOWN', 'message.create'] },
      { method: 'message.create' },
    );
    await expect(store().notifySecureBootFailure()).rejects.toThrow(
      /cannot raise VM_SECURE_BOOT_FAILED .*MESSAGE_METHOD_UNKNOWN/,
    );
    expect(guard.messages).toEqual([]);
  });
});

describe('HTTP framing on the wire', () => {
  it('sends exactly the bytes varstored sends, one connection per call', async () => {
    const path = dir.path('raw.sock');
    let n = 0;
    const raw = await startRawServer(path, (bytes, socket) => {
      if (!requestComplete(bytes)) return;
      n += 1;
      const answers = [
        successString('DUMMYSESSION'),
        successString('DUMMYVM'),
        successString('<struct></struct>'),
        SUCCESS_NIL,
      ];
      socket.end(httpOk(answers[n - 1] ?? SUCCESS_NIL));
    });
    try {
      expect(await createXapidbStore({ uuid: VM, socket: path }).load()).toBeUndefined();
      expect(raw.received).toHaveLength(4);
      const login =
        'POST / HTTP/1.1\r\nHost: _var_lib_xcp_xapi\r\nAccept-Encoding: identity\r\nUser-Agent: varstored/0.1\r\n' +
        'Connection: close\r\nContent-Type: text/xml\r\nContent-Length: 307\r\n\r\n' +
        "<?xml version='1.0'?><methodCall><methodName>session.login_with_password</methodName><params>" +
        '<param><value><string>root</string></value></param><param><value><string></string></value></param>' +
        '<param><value><string></string></value></param><param><value><string></string></value></param></params></methodCall>';
      expect(raw.received[0]!.toString('latin1')).toBe(login);
      const getByUuid =
        "<?xml version='1.0'?><methodCall><methodName>VM.get_by_uuid</methodName><params>" +
        `<param><value><string>DUMMYSESSION</string></value></param><param><value><string>${VM}</string></value></param></params></methodCall>`;
      expect(raw.received[1]).toEqual(frameRequest(getByUuid));
      expect(raw.received[3]!.toString('latin1')).toMatch(
        /<methodName>session\.logout<\/methodName><params><param><value><string>DUMMYSESSION<\/string>/,
      );
    } finally {
      await raw.close();
    }
  });
});
