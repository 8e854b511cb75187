/** Small PE/COFF images built at test time (PE32 and PE32+), with sections in any file order. */

export interface SyntheticSection {
  readonly name: string;
  /** Raw data; its length is SizeOfRawData (a multiple of 0x200 keeps tools happy). */
  readonly data: Uint8Array;
}

export interface SyntheticImageOptions {
  readonly format?: 'PE32' | 'PE32+';
  readonly sections?: readonly SyntheticSection[];
  /** Sections' raw data in reverse file order (the section table stays in order). */
  readonly reverseFileOrder?: boolean;
  /** Bytes after the last section (not a certificate table). */
  readonly trailer?: Uint8Array;
  readonly numberOfRvaAndSizes?: number;
}

const FILE_ALIGNMENT = 0x200;
const SECTION_ALIGNMENT = 0x1000;

function fill(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** An unsigned EFI application image (subsystem 10) with the given sections. */
export function syntheticImage(options: SyntheticImageOptions = {}): Uint8Array {
  const format = options.format ?? 'PE32+';
  const sections = options.sections ?? [
    { name: '.text', data: fill(0x400, 1) },
    { name: '.data', data: fill(0x200, 2) },
  ];
  const rvaCount = options.numberOfRvaAndSizes ?? 16;
  const optionalSize = (format === 'PE32' ? 96 : 112) + rvaCount * 8;
  const peOffset = 0x80;
  const sectionTable = peOffset + 24 + optionalSize;
  const headersEnd = sectionTable + sections.length * 40;
  const sizeOfHeaders = Math.ceil(headersEnd / FILE_ALIGNMENT) * FILE_ALIGNMENT;
  const order = sections.map((_, i) => i);
  if (options.reverseFileOrder === true) order.reverse();
  const pointers: number[] = new Array(sections.length).fill(0);
  let at = sizeOfHeaders;
  for (const i of order) {
    pointers[i] = at;
    at += sections[i]!.data.length;
  }
  const trailer = options.trailer ?? new Uint8Array(0);
  const bytes = new Uint8Array(at + trailer.length);
  const view = new DataView(bytes.buffer);
  bytes[0] = 0x4d;
  bytes[1] = 0x5a;
  view.setUint32(0x3c, peOffset, true);
  view.setUint32(peOffset, 0x00004550, true);
  const fh = peOffset + 4;
  view.setUint16(fh, format === 'PE32' ? 0x14c : 0x8664, true);
  view.setUint16(fh + 2, sections.length, true);
  view.setUint16(fh + 16, optionalSize, true);
  view.setUint16(fh + 18, format === 'PE32' ? 0x0102 : 0x0022, true);
  const oh = fh + 20;
  view.setUint16(oh, format === 'PE32' ? 0x10b : 0x20b, true);
  const sizeOfImage = SECTION_ALIGNMENT * (sections.length + 1);
  view.setUint32(oh + 16, SECTION_ALIGNMENT, true); // AddressOfEntryPoint
  view.setUint32(oh + 20, SECTION_ALIGNMENT, true); // BaseOfCode
  view.setUint32(oh + 32, SECTION_ALIGNMENT, true);
  view.setUint32(oh + 36, FILE_ALIGNMENT, true);
  view.setUint32(oh + 56, sizeOfImage, true);
  view.setUint32(oh + 60, sizeOfHeaders, true);
  view.setUint32(oh + 64, 0x1234, true); // CheckSum: excluded from the hash
  view.setUint16(oh + 68, 10, true); // EFI application
  view.setUint32(oh + (format === 'PE32' ? 92 : 108), rvaCount, true);
  for (const [i, s] of sections.entries()) {
    const st = sectionTable + i * 40;
    bytes.set(new TextEncoder().encode(s.name).subarray(0, 8), st);
    view.setUint32(st + 8, s.data.length, true);
    view.setUint32(st + 12, SECTION_ALIGNMENT * (i + 1), true);
    view.setUint32(st + 16, s.data.length, true);
    view.setUint32(st + 20, pointers[i]!, true);
    view.setUint32(st + 36, 0x60000020, true);
    bytes.set(s.data, pointers[i]!);
  }
  bytes.set(trailer, at);
  return bytes;
}

export { fill as pseudoRandomBytes };
