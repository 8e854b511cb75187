import { Attr, Guids } from '@vmsb/efi';
import { EfiStatus } from '@vmsb/protocol';
import { efiStatusText } from './efi-errors.js';
import type { ToolIo } from './io.js';
import type { ToolSession } from './session.js';

/**
 * The data that deletes a time-based authenticated variable in permissive mode: an
 * EFI_VARIABLE_AUTHENTICATION_2 with a zero timestamp, an empty PKCS#7 WIN_CERTIFICATE_UEFI_GUID
 * (dwLength 24, wRevision 0, WIN_CERT_TYPE_EFI_GUID) and no payload — the 40 bytes the C tools send.
 */
export function emptyAuthenticationDescriptor(): Uint8Array {
  const out = new Uint8Array(40);
  const view = new DataView(out.buffer);
  view.setUint32(16, 24, true);
  view.setUint16(20, 0, true);
  view.setUint16(22, 0x0ef1, true);
  out.set(Guids.CERT_PKCS7, 24);
  return out;
}

/**
 * Deletes a variable as the C tools do: GetVariable for its attributes, then SetVariable with
 * those attributes and empty data (or the empty descriptor when it is time-based authenticated).
 * Prints the EFI status on stderr and returns false when either step fails.
 */
export async function removeVariable(
  session: ToolSession,
  guid: Uint8Array,
  name: Uint8Array,
  io: ToolIo,
): Promise<boolean> {
  const current = await session.getVariable(name, guid);
  if (current.status !== EfiStatus.SUCCESS) {
    io.err(`${efiStatusText(current.status)}\n`);
    return false;
  }
  const attributes = current.attributes!;
  const data =
    (attributes & Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS) !== 0
      ? emptyAuthenticationDescriptor()
      : new Uint8Array(0);
  const status = await session.setVariable(name, guid, attributes, data);
  if (status !== EfiStatus.SUCCESS) {
    io.err(`${efiStatusText(status)}\n`);
    return false;
  }
  return true;
}
