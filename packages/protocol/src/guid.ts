/**
 * GUIDs travel as 16 bytes in EFI memory order: Data1 (u32), Data2 (u16), Data3 (u16) little-endian,
 * then Data4 as 8 bytes. The text form is the usual 8-4-4-4-12 hex.
 */
const GUID_TEXT = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i;

/** Bytes of a GUID given as text, or undefined when the text is not a GUID. */
export function guidFromText(text: string): Uint8Array | undefined {
  const m = GUID_TEXT.exec(text.trim());
  if (m === null) return undefined;
  const hex = (s: string): number[] => s.match(/../g)!.map((b) => parseInt(b, 16));
  const bytes = [
    ...hex(m[1]!).reverse(),
    ...hex(m[2]!).reverse(),
    ...hex(m[3]!).reverse(),
    ...hex(m[4]!),
    ...hex(m[5]!),
  ];
  return Uint8Array.from(bytes);
}

/** Text (lower case) of 16 GUID bytes in EFI order. */
export function guidToText(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new RangeError(`a GUID is 16 bytes, got ${bytes.length}`);
  const h = (from: number, to: number, reverse: boolean): string => {
    const part = Array.from(bytes.subarray(from, to));
    if (reverse) part.reverse();
    return part.map((b) => b.toString(16).padStart(2, '0')).join('');
  };
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`;
}
