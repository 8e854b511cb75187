import { type StoreState, VariableStore } from '@vmsb/efi';
import {
  decodeResponse,
  EfiStatus,
  encodeRequest,
  fromUtf16le,
  guidFromText,
  Limits,
  type Request,
  utf16le,
} from '@vmsb/protocol';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from './log.js';
import { VariableService } from './service.js';

const GUID = guidFromText('12345678-1234-5678-9abc-def012345678')!;
const NV_BS_RT = 7;

function buffer(request: Request): Uint8Array {
  const out = new Uint8Array(Limits.BUFFER_SIZE);
  encodeRequest(request, out);
  return out;
}

const set = (name: string, data: number[], attributes = NV_BS_RT): Uint8Array =>
  buffer({
    command: 'SetVariable',
    name: utf16le(name),
    guid: GUID,
    data: Uint8Array.from(data),
    attributes,
    atRuntime: false,
  });
const get = (name: string): Uint8Array =>
  buffer({ command: 'GetVariable', name: utf16le(name), guid: GUID, dataSize: 4096, atRuntime: false });

function status(command: 'SetVariable' | 'GetVariable' | 'NotifySBFailure', reply: Uint8Array): bigint {
  const decoded = decodeResponse(command, reply);
  if (!decoded.ok) throw new Error(decoded.reason);
  return decoded.response.status;
}

function capture() {
  const lines: string[] = [];
  const sink = { write: (text: string) => lines.push(text.trimEnd()) };
  return { lines, log: createLogger('debug', { stdout: sink, stderr: sink }) };
}

/** An NvramStore stand-in that records what it was asked to make durable and can be told to fail. */
function recordingPersist() {
  const saved: StoreState[] = [];
  let failNext = 0;
  let active = 0;
  let overlapped = false;
  return {
    saved,
    failNext: (n: number) => {
      failNext = n;
    },
    get overlapped() {
      return overlapped;
    },
    persist: async (state: StoreState): Promise<void> => {
      active++;
      if (active > 1) overlapped = true;
      await new Promise((r) => setTimeout(r, 1));
      active--;
      if (failNext > 0) {
        failNext--;
        throw new Error('disk full');
      }
      saved.push(state);
    },
  };
}

const names = (s: StoreState): string[] =>
  s.variables.filter((v) => (v.attributes & 1) !== 0).map((v) => fromUtf16le(v.name));

describe('VariableService', () => {
  it('makes a non-volatile change durable before answering, and skips volatile ones', async () => {
    const store = VariableStore.create({ platform: { secureBoot: false, authEnforce: true } });
    const p = recordingPersist();
    const { log } = capture();
    const service = new VariableService({ store, persist: p.persist, log });
    expect(status('SetVariable', await service.handleCommand(set('Nv', [1])))).toBe(EfiStatus.SUCCESS);
    expect(p.saved).toHaveLength(1);
    expect(names(p.saved[0]!)).toContain('Nv');
    expect(status('SetVariable', await service.handleCommand(set('Volatile', [1], 6)))).toBe(EfiStatus.SUCCESS);
    expect(p.saved).toHaveLength(1);
  });

  it('rolls back and answers DEVICE_ERROR when the change cannot be saved', async () => {
    const store = VariableStore.create({ platform: { secureBoot: false, authEnforce: true } });
    const p = recordingPersist();
    const { lines, log } = capture();
    const service = new VariableService({ store, persist: p.persist, log });
    await service.handleCommand(set('Kept', [1]));
    p.failNext(1);
    expect(status('SetVariable', await service.handleCommand(set('Kept', [2])))).toBe(EfiStatus.DEVICE_ERROR);
    expect(status('SetVariable', await service.handleCommand(set('Lost', [3])))).toBe(EfiStatus.SUCCESS);
    const reply = decodeResponse('GetVariable', await service.handleCommand(get('Kept')));
    expect(reply.ok && reply.response.command === 'GetVariable' && [...reply.response.data!]).toEqual([1]);
    expect(lines.some((l) => /^error: SetVariable "Kept" .*the NVRAM could not be saved \(disk full\)/.test(l))).toBe(
      true,
    );
    expect(lines.some((l) => /^warn: SetVariable "Kept" .*: DEVICE_ERROR/.test(l))).toBe(true);
  });

  it('with --nonpersistent keeps changes in memory only', async () => {
    const store = VariableStore.create({ platform: { secureBoot: false, authEnforce: true } });
    const service = new VariableService({ store, log: capture().log });
    expect(status('SetVariable', await service.handleCommand(set('Nv', [1])))).toBe(EfiStatus.SUCCESS);
    expect(store.getVariable(utf16le('Nv'), GUID)).toBeDefined();
  });

  it('handles requests one at a time: saves never overlap and answers keep their order', async () => {
    const store = VariableStore.create({ platform: { secureBoot: false, authEnforce: true } });
    const p = recordingPersist();
    const service = new VariableService({ store, persist: p.persist, log: capture().log });
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => service.handleCommand(set(`V${i % 4}`, [i + 1]))),
    );
    expect(replies.every((r) => status('SetVariable', r) === EfiStatus.SUCCESS)).toBe(true);
    expect(p.overlapped).toBe(false);
    expect(p.saved).toHaveLength(20);
    const last = p.saved[19]!.variables.find((v) => fromUtf16le(v.name) === 'V3')!;
    expect([...last.data]).toEqual([20]);
  });

  it('answers what needs no I/O synchronously, but never ahead of a change still being saved', async () => {
    const store = VariableStore.create({ platform: { secureBoot: false, authEnforce: true } });
    const p = recordingPersist();
    const service = new VariableService({ store, persist: p.persist, log: capture().log });
    const probe = service.handleCommand(get('Nv'));
    expect(probe).toBeInstanceOf(Uint8Array);
    expect(status('GetVariable', probe as Uint8Array)).toBe(EfiStatus.NOT_FOUND);
    const write = service.handleCommand(set('Nv', [5]));
    expect(write).toBeInstanceOf(Promise);
    // Queued behind the save: answered now, it would meet the store's open change.
    const read = service.handleCommand(get('Nv'));
    expect(read).toBeInstanceOf(Promise);
    expect(p.saved).toHaveLength(0);
    const [written, readBack] = await Promise.all([write, read]);
    expect(status('SetVariable', written)).toBe(EfiStatus.SUCCESS);
    const decoded = decodeResponse('GetVariable', readBack);
    expect(decoded.ok && decoded.response.command === 'GetVariable' && [...decoded.response.data!]).toEqual([5]);
    expect(p.saved).toHaveLength(1);
    await service.drain();
    expect(service.handleCommand(get('Nv'))).toBeInstanceOf(Uint8Array);
  });

  it('raises the Secure Boot alert once, then answers ACCESS_DENIED', async () => {
    const store = VariableStore.create({ platform: { secureBoot: false, authEnforce: true } });
    let alerts = 0;
    const { lines, log } = capture();
    const service = new VariableService({ store, log, notifySecureBootFailure: async () => void alerts++ });
    const notify = buffer({ command: 'NotifySBFailure' });
    expect(status('NotifySBFailure', await service.handleCommand(notify))).toBe(EfiStatus.SUCCESS);
    expect(status('NotifySBFailure', await service.handleCommand(notify))).toBe(EfiStatus.ACCESS_DENIED);
    expect(alerts).toBe(1);
    expect(lines.some((l) => /^warn: NotifySBFailure/.test(l))).toBe(true);
  });

  it('answers DEVICE_ERROR when the alert cannot be raised, and SUCCESS (logged) without an alert channel', async () => {
    const store = VariableStore.create({ platform: { secureBoot: false, authEnforce: true } });
    const failing = new VariableService({
      store,
      log: capture().log,
      notifySecureBootFailure: async () => Promise.reject(new Error('XAPI down')),
    });
    expect(status('NotifySBFailure', await failing.handleCommand(buffer({ command: 'NotifySBFailure' })))).toBe(
      EfiStatus.DEVICE_ERROR,
    );
    // One alert per store (the store decides; one store per daemon): a daemon of its own.
    const fileBackend = new VariableService({
      store: VariableStore.create({ platform: { secureBoot: false, authEnforce: true } }),
      log: capture().log,
    });
    expect(status('NotifySBFailure', await fileBackend.handleCommand(buffer({ command: 'NotifySBFailure' })))).toBe(
      EfiStatus.SUCCESS,
    );
  });

  it('loads the verifier before dispatching an authenticated write, and not otherwise', async () => {
    const store = VariableStore.create({ platform: { secureBoot: false, authEnforce: true } });
    let prepared = 0;
    const service = new VariableService({
      store,
      log: capture().log,
      prepareAuthenticatedWrite: async () => void prepared++,
    });
    await service.handleCommand(set('Plain', [1]));
    await service.handleCommand(get('Plain'));
    expect(prepared).toBe(0);
    await service.handleCommand(set('Signed', new Array(40).fill(0), 0x27));
    expect(prepared).toBe(1);
    // Once prepared, an authenticated write is dispatched like any other: synchronously when it is refused.
    const again = service.handleCommand(set('Signed', new Array(40).fill(0), 0x27));
    expect(again).toBeInstanceOf(Uint8Array);
    expect(status('SetVariable', again as Uint8Array)).toBe(EfiStatus.SECURITY_VIOLATION);
    expect(prepared).toBe(1);
  });

  it('decodes nothing itself: the log line and the alert come from what dispatch returned, once per request', async () => {
    const real = VariableStore.create({ platform: { secureBoot: false, authEnforce: true } });
    const buffers: Uint8Array[] = [];
    // A store that answers one request for another: the service must describe what dispatch says,
    // not what the buffer holds (it would if it decoded the buffer again).
    const store = {
      dispatch(request: Uint8Array) {
        buffers.push(request);
        return real.dispatch(set('Decoded', [1], 0x27));
      },
    } as unknown as VariableStore;
    const { lines, log } = capture();
    let prepared = 0;
    const service = new VariableService({ store, log, prepareAuthenticatedWrite: async () => void prepared++ });
    const garbage = new Uint8Array(64).fill(0xee);
    expect(status('SetVariable', await service.handleCommand(garbage))).toBe(EfiStatus.SECURITY_VIOLATION);
    // The first authenticated write is dispatched again once the verifier is loaded; later ones once.
    expect([prepared, buffers.length]).toEqual([1, 2]);
    await service.handleCommand(garbage);
    expect([prepared, buffers.length]).toEqual([1, 3]);
    expect(buffers.every((b) => b === garbage)).toBe(true);
    expect(
      lines.filter((l) =>
        l.startsWith(
          'warn: SetVariable "Decoded" 12345678-1234-5678-9abc-def012345678 attributes 0x27: SECURITY_VIOLATION',
        ),
      ),
    ).toHaveLength(2);
    expect(lines.join('\n')).not.toContain('undecodable');

    // NotifySBFailure: the store decides (once), the service raises the alert.
    let alerts = 0;
    const notify = buffer({ command: 'NotifySBFailure' });
    const notifying = new VariableService({
      store: { dispatch: () => real.dispatch(notify) } as unknown as VariableStore,
      log,
      notifySecureBootFailure: async () => void alerts++,
    });
    expect(status('NotifySBFailure', await notifying.handleCommand(garbage))).toBe(EfiStatus.SUCCESS);
    expect(status('NotifySBFailure', await notifying.handleCommand(garbage))).toBe(EfiStatus.ACCESS_DENIED);
    expect(alerts).toBe(1);
  });

  it('logs failed requests with their EFI status name, routine ones only at debug level', async () => {
    const store = VariableStore.create({ platform: { secureBoot: false, authEnforce: true } });
    const { lines, log } = capture();
    const service = new VariableService({ store, log });
    await service.handleCommand(get('Missing'));
    await service.handleCommand(
      buffer({
        command: 'SetVariable',
        name: utf16le('SecureBoot'),
        guid: guidFromText('8be4df61-93ca-11d2-aa0d-00e098032b8c')!,
        data: Uint8Array.of(1),
        attributes: 6,
        atRuntime: false,
      }),
    );
    const bad = new Uint8Array(Limits.BUFFER_SIZE);
    bad[0] = 2;
    await service.handleCommand(bad);
    expect(lines).toContainEqual(
      expect.stringMatching(/^debug: GetVariable "Missing" 12345678-1234-5678-9abc-def012345678: NOT_FOUND$/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^warn: SetVariable "SecureBoot" 8be4df61-93ca-11d2-aa0d-00e098032b8c attributes 0x6: WRITE_PROTECTED/,
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^warn: undecodable request: UNSUPPORTED \(protocol version 2 \(expected 1\)\)$/),
    );
  });

  it('never rejects and always answers within the buffer, whatever the guest sends', async () => {
    const store = VariableStore.create({ platform: { secureBoot: false, authEnforce: true } });
    const service = new VariableService({
      store,
      log: createLogger('error', { stdout: { write: () => true }, stderr: { write: () => true } }),
    });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 5 }), async (bytes, command) => {
        const request = new Uint8Array(Limits.BUFFER_SIZE);
        request.set(bytes);
        request.set([1, 0, 0, 0, command, 0, 0, 0]);
        const reply = await service.handleCommand(request);
        expect(reply.length).toBeGreaterThanOrEqual(8);
        expect(reply.length).toBeLessThanOrEqual(Limits.BUFFER_SIZE);
      }),
      { numRuns: 300 },
    );
  });
});

describe('what a guest can make the daemon log', () => {
  it('escapes every guest byte in the line, including reasons that quote the variable name', async () => {
    const { lines, log } = capture();
    const service = new VariableService({
      store: VariableStore.create({ platform: { secureBoot: false, authEnforce: true } }),
      log,
    });
    // An undefined name in the global namespace: the store's reason quotes it.
    const request = buffer({
      command: 'SetVariable',
      name: utf16le('Boot\x1b[2J\x07\u202e\n'),
      guid: guidFromText('8be4df61-93ca-11d2-aa0d-00e098032b8c')!,
      data: Uint8Array.of(1),
      attributes: NV_BS_RT,
      atRuntime: false,
    });
    expect(status('SetVariable', await service.handleCommand(request))).toBe(EfiStatus.INVALID_PARAMETER);
    const warning = lines.find((l) => l.startsWith('warn: SetVariable'));
    expect(warning).toMatch(/\(Boot\\x1b\[2J\\x07\\u202e\\n is not defined/);
    for (const line of lines) expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
  });

  it('a guest sending failing requests in a loop gets a bounded number of warnings', async () => {
    const { lines, log } = capture();
    const service = new VariableService({
      store: VariableStore.create({ platform: { secureBoot: false, authEnforce: true } }),
      log,
    });
    const bad = set('', [1]); // empty name: INVALID_PARAMETER every time
    for (let i = 0; i < 1000; i++)
      expect(status('SetVariable', await service.handleCommand(bad))).toBe(EfiStatus.INVALID_PARAMETER);
    const warnings = lines.filter((l) => l.startsWith('warn: '));
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings.length).toBeLessThanOrEqual(60);
  });

  it('admits a burst, then a steady rate, and says how many lines it dropped', async () => {
    const { guestCausedLog } = await import('./log.js');
    const { lines, log } = capture();
    let now = 0;
    const emit = guestCausedLog(log, 3, 1, () => now);
    for (let i = 0; i < 10; i++) emit('warn', `m${i}`);
    expect(lines).toEqual(['warn: m0', 'warn: m1', 'warn: m2']);
    now += 1000;
    emit('warn', 'later');
    expect(lines.at(-1)).toBe('warn: later (7 earlier guest-caused messages suppressed)');
    emit('warn', 'dropped again');
    expect(lines).toHaveLength(4);
  });
});

describe('work for when the guest has gone quiet (whenIdle)', () => {
  const AFTER = 1000;
  afterEach(() => {
    vi.useRealTimers();
  });

  function idleService(persist?: (state: StoreState) => Promise<void>, afterRequests = 1) {
    vi.useFakeTimers();
    const store = VariableStore.create({ platform: { secureBoot: false, authEnforce: true } });
    let runs = 0;
    const service = new VariableService({
      store,
      log: capture().log,
      ...(persist ? { persist } : {}),
      whenIdle: { afterMs: AFTER, afterRequests, run: () => void runs++ },
    });
    return { service, runs: () => runs };
  }

  it('runs once the guest has been quiet for a period, once per quiet period, and again after new activity', async () => {
    const { service, runs } = idleService();
    vi.advanceTimersByTime(10 * AFTER);
    expect(runs()).toBe(0); // no activity yet: nothing to give back
    expect(status('GetVariable', await service.handleCommand(get('Absent')))).toBe(EfiStatus.NOT_FOUND);
    vi.advanceTimersByTime(AFTER - 1);
    expect(runs()).toBe(0);
    vi.advanceTimersByTime(AFTER + 1);
    expect(runs()).toBe(1);
    vi.advanceTimersByTime(20 * AFTER);
    expect(runs()).toBe(1);
    service.ppiRead(0, 1);
    vi.advanceTimersByTime(2 * AFTER);
    expect(runs()).toBe(1 + 1);
  });

  it('never runs once stopped, even for a request served while the daemon stops', async () => {
    const { service, runs } = idleService();
    expect(status('GetVariable', await service.handleCommand(get('Absent')))).toBe(EfiStatus.NOT_FOUND);
    service.stopIdleWatch();
    expect(status('GetVariable', await service.handleCommand(get('Absent')))).toBe(EfiStatus.NOT_FOUND);
    vi.advanceTimersByTime(10 * AFTER);
    expect(runs()).toBe(0);
  });

  it('never runs while the guest keeps calling, however long', async () => {
    const { service, runs } = idleService();
    for (let i = 0; i < 200; i++) {
      expect(status('SetVariable', await service.handleCommand(set('V', [i & 0xff], 6)))).toBe(EfiStatus.SUCCESS);
      vi.advanceTimersByTime(AFTER / 2);
    }
    expect(runs()).toBe(0);
    vi.advanceTimersByTime(2 * AFTER);
    expect(runs()).toBe(1);
  });

  it('never runs while a request is outstanding (a save not yet durable)', async () => {
    let finish: () => void = () => undefined;
    const { service, runs } = idleService(() => new Promise<void>((resolve) => (finish = resolve)));
    const answer = service.handleCommand(set('Nv', [1]));
    vi.advanceTimersByTime(10 * AFTER);
    expect(runs()).toBe(0);
    finish();
    expect(status('SetVariable', await answer)).toBe(EfiStatus.SUCCESS);
    vi.advanceTimersByTime(2 * AFTER);
    expect(runs()).toBe(1);
  });

  it('runs again only after enough requests since the last run', async () => {
    const { service, runs } = idleService(undefined, 3);
    for (let i = 0; i < 3; i++) await service.handleCommand(get('Absent'));
    vi.advanceTimersByTime(2 * AFTER);
    expect(runs()).toBe(1);
    for (let round = 0; round < 5; round++) {
      // Two calls, then a long pause: not enough to pay for another run.
      await service.handleCommand(get('Absent'));
      service.ppiRead(0, 1);
      vi.advanceTimersByTime(10 * AFTER);
      expect(runs()).toBe(1 + round);
      // The third call since the last run: the next quiet period runs it.
      await service.ppiWrite(0, 1, 0);
      vi.advanceTimersByTime(2 * AFTER);
      expect(runs()).toBe(2 + round);
      vi.advanceTimersByTime(10 * AFTER);
      expect(runs()).toBe(2 + round);
    }
  });

  it('stops watching when told to (the daemon is stopping)', async () => {
    const { service, runs } = idleService();
    await service.handleCommand(get('Absent'));
    service.stopIdleWatch();
    vi.advanceTimersByTime(10 * AFTER);
    expect(runs()).toBe(0);
  });
});
