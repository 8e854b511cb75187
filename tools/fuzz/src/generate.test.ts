import { describe, expect, it } from 'vitest';
import { fuzzCorpus } from './corpus.js';
import { FrameGenerator, type VariableRef } from './generate.js';
import { Random } from './random.js';

describe('FrameGenerator', () => {
  it('makes frames for many seeds without failing, within the buffer unless oversized on purpose', () => {
    const corpus = fuzzCorpus();
    const names: VariableRef[] = corpus.state.variables.map((v) => ({ name: v.name, guid: v.guid }));
    const kinds = new Set<string>();
    for (let seed = 0; seed < 6; seed++) {
      const g = new FrameGenerator(new Random(seed), corpus, () => names);
      for (let i = 0; i < 800; i++) {
        const input = g.next();
        kinds.add(input.kind.replace(/\+mutated$/, ''));
        if (input.transport !== 'oversize') expect(input.frame.length).toBeLessThanOrEqual(65536);
        else expect(input.frame.length).toBeGreaterThan(65536);
      }
    }
    for (const k of [
      'get',
      'set',
      'getnext',
      'query',
      'notify',
      'raw',
      'auth:as-is',
      'auth:der',
      'auth:hostile',
      'transport:oversize',
      'transport:truncated',
    ])
      expect(kinds).toContain(k);
  });

  it('mutates a frame whose fields were all deleted (found by a 300,000-step run)', () => {
    const g = new FrameGenerator(new Random(1), fuzzCorpus(), () => []);
    const fields: unknown[] = [];
    expect(() => (g as unknown as { mutateField(f: unknown[]): void }).mutateField(fields)).not.toThrow();
    expect(fields).toEqual([]);
  });
});
