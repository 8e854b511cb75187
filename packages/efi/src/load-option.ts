import { devicePathToText } from './device-path.js';

/** LOAD_OPTION_ACTIVE and friends (UEFI 2.10 §3.1.3). */
export const LoadOptionAttr = {
  ACTIVE: 0x0000_0001,
  FORCE_RECONNECT: 0x0000_0002,
  HIDDEN: 0x0000_0008,
  CATEGORY_APP: 0x0000_0100,
} as const;

/** An EFI_LOAD_OPTION (Boot####, Driver####, SysPrep####, PlatformRecovery####), decoded. */
export interface LoadOption {
  readonly attributes: number;
  readonly active: boolean;
  readonly description: string;
  /** The FilePathList as UEFI device-path text (instances separated by commas). */
  readonly devicePath: string;
  /** OptionalData, hex (empty when none). */
  readonly optionalData: string;
}

/**
 * Decodes an EFI_LOAD_OPTION: Attributes (u32), FilePathListLength (u16), a NUL-terminated UCS-2
 * Description, FilePathList, OptionalData. Bounded by the value; a malformed one gives the reason.
 */
export function parseLoadOption(bytes: Uint8Array): { ok: true; option: LoadOption } | { ok: false; reason: string } {
  if (bytes.length < 8) return { ok: false, reason: `${bytes.length} bytes is shorter than a load option` };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const attributes = view.getUint32(0, true);
  const pathLength = view.getUint16(4, true);
  let at = 6;
  let description = '';
  for (;;) {
    if (at + 2 > bytes.length) return { ok: false, reason: 'the description has no terminating NUL' };
    const c = view.getUint16(at, true);
    at += 2;
    if (c === 0) break;
    description += String.fromCharCode(c);
  }
  if (pathLength > bytes.length - at)
    return { ok: false, reason: `FilePathListLength ${pathLength} runs past the end of the value` };
  const path = devicePathToText(bytes.subarray(at, at + pathLength));
  return {
    ok: true,
    option: {
      attributes,
      active: (attributes & LoadOptionAttr.ACTIVE) !== 0,
      description,
      devicePath: path.text,
      optionalData: Buffer.from(bytes.subarray(at + pathLength)).toString('hex'),
    },
  };
}
