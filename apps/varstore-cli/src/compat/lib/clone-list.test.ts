import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCloneList } from './clone-list.js';
import { guidText } from './names.js';

const G = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const names = (r: ReturnType<typeof parseCloneList>): string[] =>
  r.ok ? r.entries.map((e) => Buffer.from(e.name).toString('latin1')) : [];

describe('parseCloneList', () => {
  it('reads "<guid><blanks><name>" lines, skipping blank lines and # comments', () => {
    const r = parseCloneList(
      bytes(`# comment\n\n${G} Boot0000\r\n${G}\t \tname with  spaces \n${G.toUpperCase()} X`),
      'f',
    );
    expect(names(r)).toEqual(['Boot0000', 'name with  spaces ', 'X']);
    expect(r.ok && r.entries.map((e) => e.guidText)).toEqual([G, G, G.toUpperCase()]);
    expect(r.ok && guidText(r.entries[0]!.guid)).toBe(G);
  });

  it('fails on the first malformed line, counting every line', () => {
    const cases: [string, number][] = [
      [`${G}Boot0000\n`, 1],
      [`# c\n${G}\n`, 2],
      [`${G}   \n`, 1],
      [` ${G} Boot\n`, 1],
      [`${G.slice(1)}x Boot\n`, 1],
      [`\n\n${G} ok\nshort\n`, 4],
    ];
    for (const [text, line] of cases)
      expect(parseCloneList(bytes(text), '/d/f')).toEqual({
        ok: false,
        message: `Failed to parse line ${line} in '/d/f'.`,
      });
  });

  it('reads back any list it could have been given', () => {
    const name = fc.string({
      minLength: 1,
      maxLength: 20,
      unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
    });
    const entry = fc.tuple(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.constantFrom(' ', '\t', '  \t'),
      name,
      fc.constantFrom('\n', '\r\n'),
    );
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 10 }), (entries) => {
        const text = entries.map(([g, blank, n, eol]) => `${guidText(g)}${blank}${n}${eol}`).join('');
        const r = parseCloneList(bytes(text), 'f');
        expect(r.ok).toBe(true);
        expect(names(r)).toEqual(entries.map(([, , n]) => n));
        expect(r.ok && r.entries.map((e) => [...e.guid])).toEqual(entries.map(([g]) => [...g]));
      }),
    );
  });

  it('never throws', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => void parseCloneList(b, 'f')));
  });
});
