import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanArguments } from './getopt.js';

const OPTS = 'hcr:dg:s:u:';

describe('scanArguments (glibc getopt)', () => {
  it('reads clusters, attached and separate arguments, and permutes operands', () => {
    expect(scanArguments(['-c', 'uuid', '-r', '/root', '-u1000', '-g', '1000', '-cd', 'x'], OPTS)).toEqual({
      events: [
        { kind: 'option', option: 'c' },
        { kind: 'option', option: 'r', argument: '/root' },
        { kind: 'option', option: 'u', argument: '1000' },
        { kind: 'option', option: 'g', argument: '1000' },
        { kind: 'option', option: 'c' },
        { kind: 'option', option: 'd' },
      ],
      operands: ['uuid', 'x'],
    });
  });

  it('takes the next word as the argument whatever it looks like; a cluster ends at an option with an argument', () => {
    expect(scanArguments(['-u', '-d'], OPTS).events).toEqual([{ kind: 'option', option: 'u', argument: '-d' }]);
    expect(scanArguments(['-dsx'], OPTS).events).toEqual([
      { kind: 'option', option: 'd' },
      { kind: 'option', option: 's', argument: 'x' },
    ]);
  });

  it('reports unknown options and missing arguments, and keeps scanning like getopt', () => {
    expect(scanArguments(['-xc', 'u', '-s'], OPTS).events).toEqual([
      { kind: 'error', message: "invalid option -- 'x'" },
      { kind: 'option', option: 'c' },
      { kind: 'error', message: "option requires an argument -- 's'" },
    ]);
    expect(scanArguments(['--long'], OPTS).events[0]).toEqual({ kind: 'error', message: "invalid option -- '-'" });
    expect(scanArguments(['-:'], 'a:').events[0]).toEqual({ kind: 'error', message: "invalid option -- ':'" });
  });

  it('ends options at "--"; "-" alone is an operand; POSIXLY_CORRECT stops at the first operand', () => {
    expect(scanArguments(['-c', '--', '-d', 'x'], OPTS)).toEqual({
      events: [{ kind: 'option', option: 'c' }],
      operands: ['-d', 'x'],
    });
    expect(scanArguments(['-', '-c'], OPTS)).toEqual({ events: [{ kind: 'option', option: 'c' }], operands: ['-'] });
    expect(scanArguments(['u', '-c'], OPTS, { posixlyCorrect: true })).toEqual({ events: [], operands: ['u', '-c'] });
  });

  it('keeps operands and options each in their order, however they are interleaved', () => {
    const operand = fc.string({ maxLength: 8 }).filter((s) => !s.startsWith('-') || s === '-');
    const option = fc.oneof(
      fc.constantFrom('c', 'd', 'h').map((o) => ({ words: [`-${o}`], event: { kind: 'option' as const, option: o } })),
      fc.tuple(fc.constantFrom('r', 'g', 's', 'u'), fc.string({ maxLength: 8 })).map(([o, a]) => ({
        words: [`-${o}`, a],
        event: { kind: 'option' as const, option: o, argument: a },
      })),
    );
    const item = fc.oneof(
      operand.map((o) => ({ operand: o })),
      option,
    );
    fc.assert(
      fc.property(fc.array(item, { maxLength: 12 }), (items) => {
        const words = items.flatMap((i) => ('operand' in i ? [i.operand] : i.words));
        const scanned = scanArguments(words, OPTS);
        expect(scanned.operands).toEqual(items.flatMap((i) => ('operand' in i ? [i.operand] : [])));
        expect(scanned.events).toEqual(items.flatMap((i) => ('event' in i ? [i.event] : [])));
      }),
    );
  });
});
