/** Generators and helpers shared by the format tests. */
import type { StoreState, Variable } from '@vmsb/efi';
import { guidToText } from '@vmsb/protocol';
import fc from 'fast-check';

/** A UTF-16 name without NUL code units: ASCII, other BMP characters, astral pairs and lone surrogates. */
export const nameArb = fc
  .array(
    fc.oneof(
      fc.integer({ min: 0x20, max: 0x7e }),
      fc.integer({ min: 1, max: 0xffff }),
      fc.constantFrom(0xd800, 0xdbff, 0xdc00, 0xdfff),
    ),
    { minLength: 1, maxLength: 24 },
  )
  .map((units) => {
    const out = new Uint8Array(units.length * 2);
    units.forEach((u, i) => {
      out[2 * i] = u & 0xff;
      out[2 * i + 1] = u >>> 8;
    });
    return out;
  });

const bytes = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n });

/** Attributes a stored variable can carry (no APPEND_WRITE, BS or RT set). */
export const attributesArb = fc.constantFrom(0x07, 0x03, 0x06, 0x02, 0x27, 0x23, 0x01 | 0x04);

export function variableArb(options: { digest?: boolean } = {}): fc.Arbitrary<Variable> {
  return fc.record({
    name: nameArb,
    guid: bytes(16),
    attributes: attributesArb,
    data: fc.uint8Array({ minLength: 1, maxLength: 300 }),
    timestamp: fc.oneof(fc.constant(new Uint8Array(16)), bytes(16)),
    signerDigest:
      options.digest === false ? fc.constant(new Uint8Array(32)) : fc.oneof(fc.constant(new Uint8Array(32)), bytes(32)),
  });
}

export function keyOf(v: Pick<Variable, 'name' | 'guid'>): string {
  return `${guidToText(v.guid)}:${Buffer.from(v.name).toString('hex')}`;
}

/** Distinct (name, guid) pairs: what a store can hold. */
export function variablesArb(options: { digest?: boolean; maxLength?: number } = {}): fc.Arbitrary<Variable[]> {
  return fc.uniqueArray(variableArb(options), { selector: keyOf, maxLength: options.maxLength ?? 12 });
}

export function stateOf(variables: readonly Variable[]): StoreState {
  return { variables, morKey: new Uint8Array(8), ppi: { index: 0, func: new Uint8Array(256) } };
}

/** Plain objects for deep equality (Uint8Array subclasses and views compare by content). */
export function plain(variables: readonly Variable[]): object[] {
  return variables.map((v) => ({
    name: Buffer.from(v.name).toString('hex'),
    guid: guidToText(v.guid),
    attributes: v.attributes >>> 0,
    data: Buffer.from(v.data).toString('hex'),
    timestamp: Buffer.from(v.timestamp).toString('hex'),
    signerDigest: Buffer.from(v.signerDigest).toString('hex'),
  }));
}
