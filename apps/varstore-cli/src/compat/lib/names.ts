import { guidFromText, guidToText } from '@vmsb/protocol';

/**
 * Variable names and GUIDs as the C tools take and print them.
 *
 * Names: each byte of the argument becomes one UTF-16 code unit (the byte, then 0), which is
 * UTF-16LE for ASCII. Printing keeps the low byte of each code unit when it is printable ASCII
 * and drops it otherwise — the form `varstore-ls` prints and XAPI parses.
 */

/** The bytes of a command-line argument (Node decoded it from UTF-8). */
export function argumentBytes(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'utf8'));
}

/** Widens each byte to a UTF-16LE code unit. */
export function widenName(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length * 2);
  for (let i = 0; i < bytes.length; i++) out[i * 2] = bytes[i]!;
  return out;
}

/** The printable ASCII low bytes of each UTF-16 code unit of `name`. */
export function printableName(name: Uint8Array): string {
  let text = '';
  for (let i = 0; i < name.length; i += 2) {
    const b = name[i]!;
    if (b >= 0x20 && b <= 0x7e) text += String.fromCharCode(b);
  }
  return text;
}

const HEX = /^[0-9a-fA-F]$/;

/**
 * A GUID argument: exactly `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case), nothing around
 * it. Returns the 16 bytes in EFI order, or undefined.
 */
export function parseGuidArgument(text: string): Uint8Array | undefined {
  if (Buffer.byteLength(text, 'utf8') !== 36) return undefined;
  for (let i = 0; i < 36; i++) {
    const c = text[i]!;
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== '-') return undefined;
    } else if (!HEX.test(c)) {
      return undefined;
    }
  }
  return guidFromText(text);
}

/** Lower-case 8-4-4-4-12 text of GUID bytes. */
export function guidText(guid: Uint8Array): string {
  return guidToText(guid);
}
