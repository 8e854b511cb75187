// Property: whatever a hostile guest (or hypervisor) puts in an ioreq slot, the request is completed
// and notified, the value Xen takes back is what varstored's port semantics say, and the handler is
// called only for the three requests it serves. Runs on the fake hypervisor (see ioreq-server.test.ts).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeXen, fakeApi, fakeBuilt, Ioreq } from './testing/fake-xen.js';
import type { GuestHandler, IoreqServer } from './types.js';

const U64 = (1n << 64n) - 1n;
const ones = (size: number): bigint => (size >= 8 ? U64 : (1n << BigInt(size * 8)) - 1n);

interface Slot {
  addr: bigint;
  data: bigint;
  count: number;
  size: number;
  dir: number;
  type: number;
  dataIsPtr: number;
  df: number;
}

type Expected = { data: bigint; call?: 'command' | 'ppiRead' | 'ppiWrite'; index?: number };

const RAM_PAGES = 64;

/** The port semantics, written out independently of the binding. */
function model(r: Slot, ppiIndex: number): Expected {
  const read = r.dir === Ioreq.READ;
  if (r.type !== Ioreq.TYPE_PIO) return { data: read && !r.dataIsPtr ? ones(r.size) : r.data };
  if (r.dataIsPtr || r.count !== 1) return { data: r.data };
  if (![1, 2, 4].includes(r.size)) return { data: read ? 0n : r.data };
  if (r.addr < 0x100n || r.addr + BigInt(r.size) > 0x10cn) return { data: read ? ones(r.size) : r.data };
  const offset = Number(r.addr - 0x100n);
  const port = offset >> 2;
  const within = offset & 3;
  if (within + r.size > 4) return { data: read ? 0n : r.data };
  if (port === 0) {
    if (read || within !== 0 || r.size !== 4) return { data: read ? 0n : r.data };
    // A command reaches the handler only when its 16 pages are guest RAM.
    const gfn = r.data & 0xffffffffn;
    return gfn + 16n <= BigInt(RAM_PAGES) ? { data: r.data, call: 'command' } : { data: r.data };
  }
  if (port === 1) return { data: read ? 0n : r.data };
  return read
    ? { data: BigInt((0x5eed0000 + ppiIndex + within) >>> 0) & ones(r.size), call: 'ppiRead', index: ppiIndex + within }
    : { data: r.data, call: 'ppiWrite', index: ppiIndex + within };
}

/** Anything at all in the slot's fields. */
const anySlot: fc.Arbitrary<Slot> = fc.record({
  addr: fc.oneof(fc.bigInt({ min: 0xfcn, max: 0x10en }), fc.bigInt({ min: 0n, max: U64 })),
  data: fc.oneof(fc.bigInt({ min: 0n, max: 0x100n }), fc.bigInt({ min: 0n, max: U64 })),
  count: fc.oneof(fc.constantFrom(0, 1, 2, 16), fc.nat({ max: 0xffffffff })),
  size: fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 8), fc.nat({ max: 0xffffffff })),
  dir: fc.constantFrom(0, 1),
  type: fc.oneof(fc.constantFrom(0, 1, 2, 7, 8), fc.nat({ max: 0xff })),
  dataIsPtr: fc.constantFrom(0, 1),
  df: fc.constantFrom(0, 1),
});

/** Plain IN/OUT around the claimed range, the requests whose handling depends on port and offset. */
const portIo: fc.Arbitrary<Slot> = fc.record({
  addr: fc.bigInt({ min: 0xfcn, max: 0x10en }),
  data: fc.oneof(fc.bigInt({ min: 0n, max: 0x40n }), fc.bigInt({ min: 0n, max: 0xffffffffn })),
  count: fc.constant(1),
  size: fc.constantFrom(1, 2, 4),
  dir: fc.constantFrom(0, 1),
  type: fc.constant(0),
  dataIsPtr: fc.constant(0),
  df: fc.constant(0),
});

const slot = fc.oneof({ arbitrary: portIo, weight: 3 }, { arbitrary: anySlot, weight: 2 });

describe.skipIf(!fakeBuilt)('any ioreq on the fake hypervisor', () => {
  let fx: FakeXen;
  let server: IoreqServer;
  const calls: { kind: string; index?: number }[] = [];

  beforeAll(async () => {
    fx = new FakeXen(5, 2, RAM_PAGES);
    fx.useInProcess();
    const handler: GuestHandler = {
      handleCommand: async () => {
        calls.push({ kind: 'command' });
        return Uint8Array.of(0);
      },
      ppiRead: (index) => {
        calls.push({ kind: 'ppiRead', index });
        return 0x5eed0000 + index;
      },
      ppiWrite: async (index) => {
        calls.push({ kind: 'ppiWrite', index });
      },
    };
    server = await fakeApi().startIoreqServer({ domid: 5, handler });
  });

  afterAll(async () => {
    await server.close();
    fx.dispose();
  });

  it('is completed, answered as the port semantics say, and reaches the handler only when it should', async () => {
    let ppiIndex = 0;
    await fc.assert(
      fc.asyncProperty(slot, fc.constantFrom(0, 1), async (r, vcpu) => {
        calls.length = 0;
        const expected = model(r, ppiIndex);
        const result = await fx.raw(vcpu, { ...r, route: 1 });
        expect(result.outcome).toBe('completed');
        expect(result.data).toBe(expected.data);
        expect(calls).toEqual(
          expected.call
            ? [{ kind: expected.call, ...(expected.index !== undefined ? { index: expected.index } : {}) }]
            : [],
        );
        // A 32-bit write at 0x104 moves the PPI index register.
        if (
          r.type === Ioreq.TYPE_PIO &&
          !r.dataIsPtr &&
          r.count === 1 &&
          r.dir === Ioreq.WRITE &&
          r.addr === 0x104n &&
          r.size === 4
        ) {
          ppiIndex = Number(r.data & 0xffffffffn);
        }
        expect(fx.snapshot().counters.foreignPages).toBe(0);
      }),
      { numRuns: 400 },
    );
  });
});
