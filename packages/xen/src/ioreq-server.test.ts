// The ioreq server against the fake hypervisor (fake/fakexen.c), which stands in for Xen, the Linux
// privcmd and evtchn drivers and guest vCPUs, in this process. The binding under test is the same
// source as the production one, linked against the fake libraries.
import { EfiStatus } from '@vmsb/protocol';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { XenApi } from './api.js';
import { loadBinding } from './native.js';
import { GuestLogLimiter, IoreqServerImpl } from './server.js';
import { FakeXen, fakeApi, fakeBuilt, Ioreq, legacyGfnBase, PAGE, BUFFER_SIZE, until } from './testing/fake-xen.js';
import type { GuestHandler, IoreqServer, LogLevel } from './types.js';

interface Call {
  kind: 'command' | 'ppiRead' | 'ppiWrite';
  request?: Uint8Array;
  index?: number;
  size?: number;
  value?: number;
}

/** A handler that records its calls; commands answer `respond(request)`. */
function recorder(respond: (request: Uint8Array) => Uint8Array | Promise<Uint8Array> = () => Uint8Array.of(1, 2, 3)) {
  const calls: Call[] = [];
  let active = 0;
  let maxActive = 0;
  const handler: GuestHandler = {
    async handleCommand(request) {
      // A copy: the request's memory is released once it is answered.
      calls.push({ kind: 'command', request: request.slice() });
      active++;
      maxActive = Math.max(maxActive, active);
      try {
        return await respond(request);
      } finally {
        active--;
      }
    },
    ppiRead(index, size) {
      calls.push({ kind: 'ppiRead', index, size });
      return (0xa1b2c3d4 + index) >>> 0;
    },
    async ppiWrite(index, size, value) {
      calls.push({ kind: 'ppiWrite', index, size, value });
    },
  };
  return { handler, calls, maxActive: () => maxActive };
}

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

function thrown(fn: () => unknown): Error & { code?: string; syscall?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

const DEVICE_ERROR = (() => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(EfiStatus.DEVICE_ERROR);
  return b;
})();

describe.skipIf(!fakeBuilt)('ioreq server on the fake hypervisor', () => {
  let fx: FakeXen;
  let api: XenApi;
  let server: IoreqServer | undefined;
  let logs: { level: LogLevel; message: string }[];

  const start = async (handler: GuestHandler, domid = fx.domid): Promise<IoreqServer> => {
    server = await api.startIoreqServer({ domid, handler, log: (level, message) => logs.push({ level, message }) });
    return server;
  };

  beforeEach(() => {
    fx = new FakeXen(7, 3, 256);
    fx.useInProcess();
    api = fakeApi();
    logs = [];
    server = undefined;
  });

  afterEach(async () => {
    await server?.close();
    fx.dispose();
  });

  it('restricts its handles, creates an unbuffered server, maps its page as a resource, binds every vCPU, then claims 0x100-0x10B', async () => {
    const s = await start(recorder().handler);
    expect(s.vcpus).toBe(3);
    const snap = fx.snapshot();
    expect(snap.counters).toMatchObject({
      dmOpen: 1,
      fmOpen: 1,
      evOpen: 1,
      dmRestricted: 7,
      fmRestricted: 7,
      evRestricted: 7,
    });
    expect(snap.servers).toHaveLength(1);
    const [srv] = snap.servers;
    expect(srv).toMatchObject({ enabled: true, gfnPublished: false, resourceMaps: 1 });
    expect(srv!.ranges).toEqual([{ isMmio: false, start: 0x100, end: 0x10b }]);
    expect(srv!.channels.every((c) => c.bound && !c.masked)).toBe(true);
    expect(logs.some((l) => l.level === 'info' && /3 vCPU\(s\), ports 0x100-0x10b/.test(l.message))).toBe(true);
  });

  it('hands a private copy of the 16 pages to the handler and writes the response back before completing the OUT', async () => {
    const r = recorder(() => Buffer.from('the response'));
    await start(r.handler);
    const gfn = 0x20;
    const content = randomBytes(BUFFER_SIZE);
    fx.writeRam(gfn * PAGE, content);
    const before = fx.readRam((gfn - 1) * PAGE, PAGE);
    const after = fx.readRam((gfn + 16) * PAGE, PAGE);

    const result = await fx.out(1, 0x100, 4, gfn);

    expect(result.outcome).toBe('completed');
    expect(r.calls).toHaveLength(1);
    expect(r.calls[0]!.request).toHaveLength(BUFFER_SIZE);
    expect(Buffer.from(r.calls[0]!.request!).equals(content)).toBe(true);
    const buffer = fx.readBuffer(gfn);
    expect(buffer.subarray(0, 12).toString()).toBe('the response');
    expect(buffer.subarray(12).equals(content.subarray(12))).toBe(true);
    expect(fx.readRam((gfn - 1) * PAGE, PAGE).equals(before)).toBe(true);
    expect(fx.readRam((gfn + 16) * PAGE, PAGE).equals(after)).toBe(true);
    // The handler's promise settled within the request's callback (its microtasks run there): the
    // answer went back through the mapping the request was copied from, then it was unmapped.
    expect(fx.snapshot().counters.foreignPages).toBe(0);
    expect(fx.snapshot().counters.foreignMaps).toBe(1);
  });

  it('hands a plain Uint8Array whose slices are copies, one buffer per vCPU reused by its next command', async () => {
    const requests: Uint8Array[] = [];
    const kept: Uint8Array[] = [];
    let later: Uint8Array | undefined;
    const handler: GuestHandler = {
      handleCommand: async (request) => {
        requests.push(request);
        kept.push(request.slice(0, 16)); // what a store keeps of a request
        if (requests.length === 2) {
          await new Promise((resolve) => setImmediate(resolve));
          later = request;
        }
        return Uint8Array.of(1);
      },
      ppiRead: () => 0,
      ppiWrite: async () => undefined,
    };
    await start(handler);
    const fills = [0xab, 0xcd, 0xef];
    for (const [i, vcpu] of [0, 1, 0].entries()) {
      fx.writeRam(0x20 * PAGE, Buffer.alloc(BUFFER_SIZE, fills[i]));
      expect((await fx.out(vcpu, 0x100, 4, 0x20)).outcome).toBe('completed');
    }
    expect(Buffer.isBuffer(requests[0])).toBe(false);
    expect(Object.getPrototypeOf(requests[0])).toBe(Uint8Array.prototype);
    // Usable until answered, also across an await.
    expect(later).toBe(requests[1]);
    // Each vCPU has its own buffer; its next command rewrites it (so nothing may keep a view).
    expect(requests[2]).toBe(requests[0]);
    expect(requests[1]).not.toBe(requests[0]);
    expect(requests[0]!.every((b) => b === 0xef)).toBe(true);
    expect(requests[1]!.every((b) => b === 0xcd)).toBe(true);
    // What was copied out of a request keeps that request's bytes.
    expect(kept.map((k) => [...k])).toEqual(fills.map((f) => new Array(16).fill(f)));
  });

  it('copies the whole buffer again for each command: nothing of the previous request shows through', async () => {
    const seen: Buffer[] = [];
    const handler: GuestHandler = {
      handleCommand: (request) => {
        seen.push(Buffer.from(request));
        return Uint8Array.of(seen.length);
      },
      ppiRead: () => 0,
      ppiWrite: async () => undefined,
    };
    await start(handler);
    const contents = [randomBytes(BUFFER_SIZE), Buffer.alloc(BUFFER_SIZE), randomBytes(BUFFER_SIZE)];
    for (const content of contents) {
      fx.writeRam(0x28 * PAGE, content);
      expect((await fx.out(0, 0x100, 4, 0x28)).outcome).toBe('completed');
    }
    for (const [i, content] of contents.entries()) expect(seen[i]!.equals(content)).toBe(true);
  });

  it('answers a synchronous handler through the mapping it copied the request from: one mapping per call', async () => {
    const seen: Buffer[] = [];
    const handler: GuestHandler = {
      handleCommand: (request) => {
        seen.push(Buffer.from(request));
        return Buffer.from(`answer ${seen.length}`);
      },
      ppiRead: () => 0,
      ppiWrite: async () => undefined,
    };
    await start(handler);
    const gfn = 0x30;
    for (let call = 1; call <= 3; call++) {
      const content = randomBytes(BUFFER_SIZE);
      fx.writeRam(gfn * PAGE, content);
      expect((await fx.out(call % 3, 0x100, 4, gfn)).outcome).toBe('completed');
      expect(seen[call - 1]!.equals(content)).toBe(true);
      const buffer = fx.readBuffer(gfn);
      expect(buffer.subarray(0, 8).toString()).toBe(`answer ${call}`);
      expect(buffer.subarray(8).equals(content.subarray(8))).toBe(true);
    }
    expect(fx.snapshot().counters.foreignMaps).toBe(3);
    expect(fx.snapshot().counters.foreignPages).toBe(0);
  });

  it('unmaps the buffer when a synchronous handler throws or gives no valid answer, and still completes', async () => {
    let call = 0;
    const handler: GuestHandler = {
      handleCommand: () => {
        call++;
        if (call === 1) throw new Error('boom');
        return 'not bytes' as unknown as Uint8Array;
      },
      ppiRead: () => 0,
      ppiWrite: async () => undefined,
    };
    await start(handler);
    for (let i = 0; i < 2; i++) {
      expect((await fx.out(0, 0x100, 4, 0x20)).outcome).toBe('completed');
      expect(fx.readBuffer(0x20, 8).equals(DEVICE_ERROR)).toBe(true);
    }
    expect(fx.snapshot().counters.foreignPages).toBe(0);
    expect(fx.snapshot().counters.foreignMaps).toBe(2);
  });

  it('gives the handler the first copy only when the guest rewrites its buffer while the request is in flight', async () => {
    const gfn = 0x40;
    const first = Buffer.alloc(BUFFER_SIZE, 0x11);
    const second = Buffer.alloc(BUFFER_SIZE, 0x22);
    let seenAfterRewrite: Buffer | undefined;
    const r = recorder(async (request) => {
      fx.writeRam(gfn * PAGE, second); // another vCPU scribbles over the buffer
      await new Promise((resolve) => setImmediate(resolve));
      seenAfterRewrite = Buffer.from(request);
      return Buffer.from('ok');
    });
    await start(r.handler);
    fx.writeRam(gfn * PAGE, first);

    expect((await fx.out(0, 0x100, 4, gfn)).outcome).toBe('completed');
    expect(seenAfterRewrite!.equals(first)).toBe(true);
    const buffer = fx.readBuffer(gfn);
    expect(buffer.subarray(0, 2).toString()).toBe('ok');
    expect(buffer.subarray(2).equals(second.subarray(2))).toBe(true);
    // Answered after the callback returned: unmapped meanwhile, answered through a fresh mapping.
    expect(fx.snapshot().counters.foreignMaps).toBe(2);
    expect(fx.snapshot().counters.foreignPages).toBe(0);
  });

  it('serves IN and OUT of every size at every offset of the three ports as varstored does', async () => {
    const r = recorder();
    await start(r.handler);
    expect((await fx.out(0, 0x104, 4, 0x100)).outcome).toBe('completed'); // PPI index = 0x100
    r.calls.length = 0;

    for (let offset = 0; offset < 12; offset++) {
      for (const size of [1, 2, 4]) {
        if (offset + size > 12) continue; // not inside the claimed range: never routed to us
        const port = 0x100 + offset;
        const within = offset % 4;
        const straddles = within + size > 4;
        const mask = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
        const label = `port 0x${port.toString(16)} size ${size}`;

        const read = await fx.in(2, port, size);
        expect(read.outcome, label).toBe('completed');
        if (offset >= 8 && !straddles) {
          expect(read.value, label).toBe(((0xa1b2c3d4 + 0x100 + within) & mask) >>> 0);
          expect(r.calls, label).toEqual([{ kind: 'ppiRead', index: 0x100 + within, size }]);
        } else {
          expect(read.value, label).toBe(0);
          expect(r.calls, label).toEqual([]);
        }
        r.calls.length = 0;

        if (offset === 0 && size === 4) continue; // the command write, tested on its own
        if (offset === 4 && size === 4) continue; // the PPI index write, used below
        const write = await fx.out(2, port, size, 0xdeadbeef);
        expect(write.outcome, label).toBe('completed');
        if (offset >= 8 && !straddles) {
          expect(r.calls, label).toEqual([
            { kind: 'ppiWrite', index: 0x100 + within, size, value: (0xdeadbeef & mask) >>> 0 },
          ]);
        } else {
          expect(r.calls, label).toEqual([]);
        }
        r.calls.length = 0;
      }
    }

    // The index register takes 32-bit writes at its port only.
    await fx.out(0, 0x104, 4, 0x12);
    await fx.in(0, 0x108, 1);
    await fx.out(0, 0x104, 2, 0x34);
    await fx.out(0, 0x106, 1, 0x56);
    await fx.in(0, 0x108, 4);
    expect(r.calls).toEqual([
      { kind: 'ppiRead', index: 0x12, size: 1 },
      { kind: 'ppiRead', index: 0x12, size: 4 },
    ]);
  });

  it('answers reads of the command port with 0 and never calls the handler for them', async () => {
    const r = recorder();
    await start(r.handler);
    for (const size of [1, 2, 4]) {
      const read = await fx.in(1, 0x100, size);
      expect(read).toMatchObject({ outcome: 'completed', value: 0 });
    }
    expect(r.calls).toEqual([]);
  });

  it('completes and notifies ioreqs of every type without calling the handler', async () => {
    const r = recorder();
    await start(r.handler);
    const types = [
      Ioreq.TYPE_COPY,
      Ioreq.TYPE_PCI_CONFIG,
      Ioreq.TYPE_TIMEOFFSET,
      Ioreq.TYPE_INVALIDATE,
      3,
      4,
      5,
      6,
      9,
      0x7f,
      0xff,
    ];
    for (const type of types) {
      for (const dir of [Ioreq.READ, Ioreq.WRITE]) {
        for (const size of [1, 2, 4, 8]) {
          const result = await fx.raw(0, { type, dir, size, addr: 0xfeb00000, data: 0x5a, route: 1 });
          expect(result.outcome, `type ${type} dir ${dir} size ${size}`).toBe('completed');
          if (dir === Ioreq.READ) {
            const ones = size === 8 ? 0xffffffffffffffffn : (1n << BigInt(size * 8)) - 1n;
            expect(result.data).toBe(ones);
          } else {
            expect(result.data).toBe(0x5an);
          }
        }
      }
    }
    // INVALIDATE as Xen broadcasts it: a 4-byte write of all ones.
    const invalidate = await fx.raw(2, {
      type: Ioreq.TYPE_INVALIDATE,
      dir: Ioreq.WRITE,
      size: 4,
      addr: 0,
      data: 0xffffffffffffffffn,
      route: 1,
    });
    expect(invalidate.outcome).toBe('completed');
    expect(r.calls).toEqual([]);
  });

  it('completes port I/O of impossible sizes without effect', async () => {
    const r = recorder();
    await start(r.handler);
    for (const size of [0, 3, 5, 8, 16, 0xffffffff]) {
      for (const dir of [Ioreq.READ, Ioreq.WRITE]) {
        const result = await fx.raw(1, { addr: 0x100, size, dir, data: 0x20, route: 1 });
        expect(result.outcome, `size ${size}`).toBe('completed');
        expect(result.data).toBe(dir === Ioreq.READ ? 0n : 0x20n);
      }
    }
    expect(r.calls).toEqual([]);
    expect(fx.snapshot().counters.foreignMaps).toBe(0);
  });

  it('completes string I/O and data-is-pointer requests without touching guest memory', async () => {
    const r = recorder();
    await start(r.handler);
    const gfn = 0x30;
    const content = randomBytes(BUFFER_SIZE);
    fx.writeRam(gfn * PAGE, content);
    const gpa = BigInt(gfn * PAGE);
    const cases = [
      { count: 16, dataIsPtr: 1, df: 0 },
      { count: 16, dataIsPtr: 1, df: 1 },
      { count: 1, dataIsPtr: 1, df: 0 },
      { count: 0xffffffff, dataIsPtr: 1, df: 0 },
      { count: 0, dataIsPtr: 0, df: 0 },
      { count: 2, dataIsPtr: 0, df: 0 },
    ];
    for (const c of cases) {
      for (const dir of [Ioreq.READ, Ioreq.WRITE]) {
        for (const port of [0x100, 0x104, 0x108]) {
          const result = await fx.raw(0, { addr: port, size: 4, dir, data: gpa, route: 0, ...c });
          expect(result.outcome, JSON.stringify({ ...c, dir, port })).toBe('completed');
          expect(result.data).toBe(gpa); // a pointer is left as it is
        }
      }
    }
    expect(r.calls).toEqual([]);
    expect(fx.readBuffer(gfn).equals(content)).toBe(true);
    expect(fx.snapshot().counters.foreignMaps).toBe(0);
  });

  it('never sees accesses outside 0x100-0x10B or straddling its edges: Xen answers those itself', async () => {
    const r = recorder();
    await start(r.handler);
    const deliveries = fx.snapshot().counters.deliveries;
    for (const [port, size] of [
      [0xff, 1],
      [0xfe, 4],
      [0x10c, 1],
      [0x10a, 4],
      [0x10b, 2],
      [0x80, 4],
    ] as const) {
      const read = await fx.in(0, port, size);
      expect(read.outcome).toBe('unclaimed');
      expect(read.value).toBe(size === 4 ? 0xffffffff : (1 << (size * 8)) - 1);
      expect((await fx.out(0, port, size, 0x20)).outcome).toBe('unclaimed');
    }
    expect(fx.snapshot().counters.deliveries).toBe(deliveries);
    expect(r.calls).toEqual([]);
  });

  it('completes as "not ours" a port access outside its range that reaches it anyway', async () => {
    const r = recorder();
    await start(r.handler);
    const result = await fx.raw(0, { addr: 0x80, size: 1, dir: Ioreq.READ, route: 1 });
    expect(result).toMatchObject({ outcome: 'completed', data: 0xffn });
    const high = await fx.raw(0, { addr: 0xffffffffffffffffn, size: 4, dir: Ioreq.READ, route: 1 });
    expect(high).toMatchObject({ outcome: 'completed', data: 0xffffffffn });
    expect(r.calls).toEqual([]);
  });

  it('serves other vCPUs while one waits for its handler, and hands requests to the handler one at a time', async () => {
    const first = gate();
    const r = recorder(async (request) => {
      if (request[0] === 0xa0) await first.opened;
      return Uint8Array.of(request[0]! + 1);
    });
    await start(r.handler);
    fx.writeBuffer(0x50, Uint8Array.of(0xa0));
    fx.writeBuffer(0x70, Uint8Array.of(0xb0));

    let vcpu0Done = false;
    const vcpu0 = fx.out(0, 0x100, 4, 0x50).then((res) => {
      vcpu0Done = true;
      return res;
    });
    await until(() => r.calls.length === 1, 'the first command to reach the handler');

    // vCPU 1 is not held up by vCPU 0's command.
    expect(await fx.in(1, 0x100, 4)).toMatchObject({ outcome: 'completed', value: 0 });
    expect((await fx.out(1, 0x104, 4, 0x101)).outcome).toBe('completed');
    expect(vcpu0Done).toBe(false);
    expect(fx.slotState(0)).toBe(Ioreq.STATE_INPROCESS);

    // A second command waits for the first.
    const vcpu2 = fx.out(2, 0x100, 4, 0x70);
    await until(() => fx.slotState(2) === Ioreq.STATE_INPROCESS, "vCPU 2's command to be taken");
    expect(r.calls.filter((c) => c.kind === 'command')).toHaveLength(1);

    first.open();
    expect((await vcpu0).outcome).toBe('completed');
    expect((await vcpu2).outcome).toBe('completed');
    expect(fx.readBuffer(0x50, 1)[0]).toBe(0xa1);
    expect(fx.readBuffer(0x70, 1)[0]).toBe(0xb1);
    expect(r.maxActive()).toBe(1);
    expect(r.calls.map((c) => c.kind)).toEqual(['command', 'command']);
  });

  it('completes a synchronous answer at once, and keeps arrival order between synchronous and asynchronous ones', async () => {
    const slow = gate();
    const seen: number[] = [];
    const handler: GuestHandler = {
      handleCommand(request) {
        seen.push(request[0]!);
        // 0x01 waits for I/O (a write being persisted); the others answer synchronously (reads).
        if (request[0] === 0x01) return slow.opened.then(() => Uint8Array.of(0xa1));
        return Uint8Array.of(0xb0 | request[0]!);
      },
      ppiRead: () => 0,
      ppiWrite: async () => undefined,
    };
    await start(handler);
    fx.writeBuffer(0x10, Uint8Array.of(0x02));
    expect((await fx.out(0, 0x100, 4, 0x10)).outcome).toBe('completed');
    expect(fx.readBuffer(0x10, 1)[0]).toBe(0xb2);

    fx.writeBuffer(0x20, Uint8Array.of(0x01));
    fx.writeBuffer(0x30, Uint8Array.of(0x03));
    const waiting = fx.out(0, 0x100, 4, 0x20);
    await until(() => seen.length === 2, 'the asynchronous command to reach the handler');
    const queued = fx.out(1, 0x100, 4, 0x30);
    await until(() => fx.slotState(1) === Ioreq.STATE_INPROCESS, "vCPU 1's command to be taken");
    // The synchronous one is not answered ahead of the one before it.
    expect(seen).toEqual([0x02, 0x01]);
    slow.open();
    expect((await waiting).outcome).toBe('completed');
    expect((await queued).outcome).toBe('completed');
    expect(seen).toEqual([0x02, 0x01, 0x03]);
    expect(fx.readBuffer(0x20, 1)[0]).toBe(0xa1);
    expect(fx.readBuffer(0x30, 1)[0]).toBe(0xb3);
  });

  it('answers EFI_DEVICE_ERROR when the handler fails, and keeps serving', async () => {
    let mode = 'reject';
    const handler: GuestHandler = {
      handleCommand(request) {
        if (mode === 'reject') return Promise.reject(new Error('store exploded'));
        if (mode === 'throw') throw new Error('synchronous failure');
        if (mode === 'too-long') return Promise.resolve(new Uint8Array(BUFFER_SIZE + 1));
        if (mode === 'not-bytes') return Promise.resolve('nope' as unknown as Uint8Array);
        if (mode === 'sync-too-long') return new Uint8Array(BUFFER_SIZE + 1);
        if (mode === 'sync-not-bytes') return 'nope' as unknown as Uint8Array;
        return Promise.resolve(Uint8Array.of(request[0]!, 0x55));
      },
      ppiRead() {
        throw new Error('ppi read failure');
      },
      ppiWrite() {
        return Promise.reject(new Error('ppi write failure'));
      },
    };
    await start(handler);
    for (const m of ['reject', 'throw', 'too-long', 'not-bytes', 'sync-too-long', 'sync-not-bytes']) {
      mode = m;
      fx.writeBuffer(0x10, Uint8Array.of(0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0x99));
      expect((await fx.out(0, 0x100, 4, 0x10)).outcome, m).toBe('completed');
      const buffer = fx.readBuffer(0x10, 9);
      expect(buffer.subarray(0, 8).equals(DEVICE_ERROR), m).toBe(true);
      expect(buffer[8]).toBe(0x99);
    }
    expect(logs.filter((l) => l.level === 'error' && /EFI_DEVICE_ERROR/.test(l.message))).toHaveLength(6);

    expect(await fx.in(1, 0x108, 4)).toMatchObject({ outcome: 'completed', value: 0 });
    expect((await fx.out(1, 0x108, 1, 7)).outcome).toBe('completed');
    expect(logs.some((l) => /ppiRead failed \(ppi read failure\)/.test(l.message))).toBe(true);
    expect(logs.some((l) => /ppiWrite failed: ppi write failure/.test(l.message))).toBe(true);

    mode = 'ok';
    fx.writeBuffer(0x10, Uint8Array.of(0x42));
    expect((await fx.out(2, 0x100, 4, 0x10)).outcome).toBe('completed');
    expect([...fx.readBuffer(0x10, 2)]).toEqual([0x42, 0x55]);
  });

  it('completes a command whose buffer is not guest RAM without calling the handler', async () => {
    const r = recorder();
    await start(r.handler);
    for (const gfn of [fx.ramPages - 15, fx.ramPages, 0xffffffff, legacyGfnBase()]) {
      expect((await fx.out(0, 0x100, 4, gfn)).outcome).toBe('completed');
    }
    expect(r.calls).toEqual([]);
    expect(logs.filter((l) => l.level === 'warn' && /cannot map the guest buffer/.test(l.message))).toHaveLength(4);
    expect(fx.snapshot().counters.foreignPages).toBe(0);
  });

  it('ignores a spurious event', async () => {
    const r = recorder();
    await start(r.handler);
    const deliveries = fx.snapshot().counters.deliveries;
    fx.kick(1);
    await until(
      () => !fx.snapshot().servers[0]!.channels[1]!.masked && fx.snapshot().counters.deliveries > deliveries,
      'the event to be taken',
    );
    expect(r.calls).toEqual([]);
    expect(await fx.in(1, 0x108, 2)).toMatchObject({ outcome: 'completed', value: 0xa1b2c3d4 & 0xffff });
  });

  it('tears down completely and can start again', async () => {
    const r = recorder((req) => Uint8Array.of(req[0]! ^ 0xff));
    const s = await start(r.handler);
    fx.writeBuffer(0x10, Uint8Array.of(0x0f));
    await fx.out(0, 0x100, 4, 0x10);
    await s.close();
    await s.close(); // idempotent

    const snap = fx.snapshot();
    expect(snap.servers).toEqual([]);
    expect(snap.counters).toMatchObject({ dmOpen: 0, fmOpen: 0, evOpen: 0, foreignPages: 0 });
    expect((await fx.in(0, 0x100, 4)).outcome).toBe('unclaimed');

    const again = await start(r.handler);
    expect(again.vcpus).toBe(3);
    fx.writeBuffer(0x10, Uint8Array.of(0x33));
    expect((await fx.out(2, 0x100, 4, 0x10)).outcome).toBe('completed');
    expect(fx.readBuffer(0x10, 1)[0]).toBe(0xcc);
    expect(fx.snapshot().servers).toHaveLength(1);
  });

  it('answers, while closing, every request already raised', async () => {
    const first = gate();
    const r = recorder(async (request) => {
      if (request[0] === 1) await first.opened;
      return Uint8Array.of(request[0]! + 0x10);
    });
    const s = await start(r.handler);
    fx.writeBuffer(0x10, Uint8Array.of(1));
    fx.writeBuffer(0x30, Uint8Array.of(2));
    const a = fx.out(0, 0x100, 4, 0x10);
    await until(() => r.calls.length === 1, 'the first command');
    const b = fx.out(1, 0x100, 4, 0x30);
    await until(() => fx.slotState(1) !== Ioreq.STATE_NONE, "vCPU 1's request to be raised");

    const closed = s.close();
    first.open();
    await closed;
    expect((await a).outcome).toBe('completed');
    expect((await b).outcome).toBe('completed');
    expect(fx.readBuffer(0x10, 1)[0]).toBe(0x11);
    expect(fx.readBuffer(0x30, 1)[0]).toBe(0x12);
    expect(fx.snapshot().servers).toEqual([]);
  });

  it('falls back to the legacy page mapping when resource mapping is not supported', async () => {
    fx.setFaults('noMapResource');
    const r = recorder(() => Uint8Array.of(9));
    const s = await start(r.handler);
    expect(fx.snapshot().servers[0]).toMatchObject({ gfnPublished: true, resourceMaps: 0 });
    expect(fx.snapshot().counters.foreignPages).toBe(1); // the ioreq page itself
    fx.writeBuffer(0x10, Uint8Array.of(0));
    expect((await fx.out(1, 0x100, 4, 0x10)).outcome).toBe('completed');
    expect(fx.readBuffer(0x10, 1)[0]).toBe(9);
    expect(logs.some((l) => /page mapped through its guest frame/.test(l.message))).toBe(true);
    await s.close();
    expect(fx.snapshot().counters).toMatchObject({ foreignPages: 0, dmOpen: 0, fmOpen: 0, evOpen: 0 });
  });

  it.each([
    ['failBind', /xenevtchn_bind_interdomain \(vCPU 2, port \d+\) failed/, 'ENOMEM'],
    ['rangeBusy', /xendevicemodel_map_io_range_to_ioreq_server failed/, 'EEXIST'],
  ] as const)('unwinds everything when start-up fails (%s)', async (fault, message, code) => {
    fx.setFaults(fault);
    await expect(start(recorder().handler)).rejects.toSatisfy(
      (e: Error & { code?: string }) => message.test(e.message) && e.code === code,
    );
    server = undefined;
    const snap = fx.snapshot();
    expect(snap.servers).toEqual([]);
    expect(snap.counters).toMatchObject({ dmOpen: 0, fmOpen: 0, evOpen: 0, foreignPages: 0 });
  });

  it('refuses a vCPU count that does not fit the ioreq page', async () => {
    fx.setFaults('badVcpus');
    await expect(start(recorder().handler)).rejects.toThrow(/reported 4096 vCPUs; an ioreq page holds 1 to 128/);
    server = undefined;
    expect(fx.snapshot().counters).toMatchObject({ dmOpen: 0, fmOpen: 0, evOpen: 0 });
    expect(fx.snapshot().servers).toEqual([]);
  });

  it('fails for a domain that does not exist', async () => {
    await expect(start(recorder().handler, 8)).rejects.toMatchObject({
      code: 'ESRCH',
      syscall: 'xendevicemodel_nr_vcpus',
    });
    server = undefined;
    expect(fx.snapshot().counters).toMatchObject({ dmOpen: 0, fmOpen: 0, evOpen: 0 });
  });

  it('checks its options before touching Xen', async () => {
    const h = recorder().handler;
    for (const domid of [0, -1, 1.5, 0x7ff0, Number.NaN]) {
      await expect(api.startIoreqServer({ domid, handler: h })).rejects.toThrow(RangeError);
    }
    await expect(
      api.startIoreqServer({
        domid: 7,
        handler: { handleCommand: async () => new Uint8Array() } as unknown as GuestHandler,
      }),
    ).rejects.toThrow(/handler must implement/);
    expect(fx.snapshot().counters.dmOpen).toBe(0);
  });

  it('says Xen is unavailable, naming the device, when there is no hypervisor', async () => {
    expect(api.xenAvailability()).toEqual({ ok: true });
    delete process.env.VMSB_FAKE_XEN;
    const availability = api.xenAvailability();
    expect(availability.ok).toBe(false);
    expect(!availability.ok && availability.reason).toMatch(
      /^\/dev\/xen\/privcmd is missing: this host is not a Xen dom0/,
    );
    await expect(start(recorder().handler)).rejects.toMatchObject({
      code: 'ENOXEN',
      message: expect.stringMatching(/^Xen is unavailable: \/dev\/xen\/privcmd is missing/),
    });
    server = undefined;
  });

  it('limits how much a guest can make it log, per level', async () => {
    // A frozen clock: the budget never refills, so exactly the burst gets through.
    const loaded = loadBinding('vmsb_xen_fake');
    if (!loaded.ok) throw new Error(loaded.reason);
    server = new IoreqServerImpl(
      loaded.binding,
      fx.domid,
      recorder().handler,
      (level, message) => logs.push({ level, message }),
      () => new GuestLogLimiter(5, 1, () => 0),
    );
    for (let i = 0; i < 12; i++) await fx.out(0, 0x100, 4, 0xfffffff0);
    for (let i = 0; i < 3; i++) await fx.out(0, 0x100, 2, 0); // debug messages have their own budget
    const warnings = logs.filter((l) => l.level === 'warn' && /cannot map the guest buffer/.test(l.message));
    expect(warnings).toHaveLength(5);
    expect(logs.filter((l) => l.level === 'debug' && /command port write of size 2/.test(l.message))).toHaveLength(3);
  });
});

describe.skipIf(!fakeBuilt)('xenstore on the fake hypervisor', () => {
  let fx: FakeXen;
  let api: XenApi;

  beforeEach(() => {
    fx = new FakeXen(9, 1, 16);
    fx.useInProcess();
    api = fakeApi();
  });

  afterEach(() => fx.dispose());

  it('reads platform keys and writes the readiness key over one connection kept open', () => {
    fx.xenstoreWrite('/local/domain/9/platform/secureboot', 'true');
    expect(api.xenstoreRead('/local/domain/9/platform/secureboot')).toBe('true');
    expect(api.xenstoreRead('/local/domain/9/platform/auth-enforce')).toBeUndefined();
    api.xenstoreWrite('/local/domain/9/varstored-pid', '4242');
    expect(fx.xenstoreRead('/local/domain/9/varstored-pid')).toBe('4242');
    expect(fx.snapshot().counters.xsOpen).toBe(1);
  });

  it('checks paths and values, and reports xenstore errors with their errno', () => {
    expect(() => api.xenstoreRead('')).toThrow(TypeError);
    expect(() => api.xenstoreRead('/a\0b')).toThrow(TypeError);
    expect(() => api.xenstoreRead(`/${'x'.repeat(3072)}`)).toThrow(TypeError);
    expect(() => api.xenstoreWrite('/a', 'x'.repeat(4097))).toThrow(TypeError);
    // The fake's xenstored takes values below 1 KiB.
    expect(thrown(() => api.xenstoreWrite('/a', 'x'.repeat(2000)))).toMatchObject({
      code: 'E2BIG',
      syscall: 'xs_write',
    });
    delete process.env.VMSB_FAKE_XEN;
    const binding = loadBinding('vmsb_xen_fake');
    if (binding.ok) binding.binding.xenstoreClose();
    expect(thrown(() => api.xenstoreRead('/local/domain/9/platform/secureboot'))).toMatchObject({
      code: 'ENOENT',
      syscall: 'xs_open',
    });
  });
});
