import { X509Certificate } from 'node:crypto';
import { certificateDer } from '@vmsb/keys';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { testKeys } from './corpus.js';
import { allNodes, encodeDer, lengthOctets, nest, parseDer, tlv, type DerNode } from './der.js';

describe('the DER tree used for mutation', () => {
  it('parses and re-encodes a real certificate byte for byte', () => {
    const der = certificateDer(testKeys().KEK.certificate);
    const tree = parseDer(der);
    expect(tree).toBeDefined();
    expect(Buffer.compare(encodeDer(tree!), der)).toBe(0);
    expect(allNodes(tree!).length).toBeGreaterThan(20);
  });

  it('round-trips any tree it encodes', () => {
    const leaf: fc.Arbitrary<DerNode> = fc.record({
      tag: fc.constantFrom(Uint8Array.of(0x02), Uint8Array.of(0x04), Uint8Array.of(0x06)),
      content: fc.uint8Array({ maxLength: 300 }),
    });
    const node: fc.Memo<DerNode> = fc.memo((depth) =>
      depth <= 1
        ? leaf
        : fc.record({
            tag: fc.constantFrom(Uint8Array.of(0x30), Uint8Array.of(0x31), Uint8Array.of(0xa0)),
            children: fc.array(node(depth - 1), { maxLength: 4 }),
          }),
    );
    fc.assert(
      fc.property(node(4), (tree) => {
        const bytes = encodeDer(tree);
        expect(Buffer.compare(encodeDer(parseDer(bytes)!), bytes)).toBe(0);
      }),
    );
  });

  it('writes the hostile length forms it is asked for', () => {
    const leaf: DerNode = { tag: Uint8Array.of(0x02), content: Uint8Array.of(1) };
    expect([...encodeDer({ tag: Uint8Array.of(0x30), children: [leaf], form: 'indefinite' })]).toEqual([
      0x30, 0x80, 0x02, 0x01, 0x01, 0, 0,
    ]);
    expect([...encodeDer({ ...leaf, form: 'long4' })]).toEqual([0x02, 0x84, 0, 0, 0, 1, 1]);
    expect([...encodeDer({ ...leaf, form: 'plus1' })]).toEqual([0x02, 0x02, 0x01]);
    expect(encodeDer({ ...leaf, form: 'huge' })[1]).toBe(0x88);
    expect([...lengthOctets(0x1234)]).toEqual([0x82, 0x12, 0x34]);
  });

  it('nests to any depth in one pass, within the size limit, as valid DER', () => {
    const inner = Uint8Array.of(0x05, 0x00);
    const shallow = nest(inner, 50, 0x30, 60000);
    let n: DerNode | undefined = parseDer(shallow);
    let depth = 0;
    while (n?.children?.length === 1) {
      depth++;
      n = n.children[0];
    }
    expect(depth).toBe(50);
    const deep = nest(inner, 1_000_000, 0x30, 60000);
    expect(deep.length).toBeLessThanOrEqual(60000);
    expect(deep.length).toBeGreaterThan(59000);
    expect([...deep.subarray(deep.length - 2)]).toEqual([0x05, 0x00]);
  });

  it('builds minimal TLVs', () => {
    expect([...tlv(0x04, new Uint8Array(3))]).toEqual([0x04, 3, 0, 0, 0]);
    expect(tlv(0x04, new Uint8Array(200)).subarray(0, 3)).toEqual(Uint8Array.of(0x04, 0x81, 200));
    expect(new X509Certificate(Buffer.from(certificateDer(testKeys().PK.certificate))).subject).toContain(
      'vmsb fuzz PK',
    );
  });
});
