// Shared by the tests of this package (not part of the public surface).
import { EfiStatus, FirmwareClient, utf16le } from '@vmsb/protocol';
import { Guids, guid } from './guid.js';
import { VariableStore } from './store.js';
import { serializeEfiTime, type EfiTime } from './time.js';
import type { AuthResult, Authenticator, AuthenticatedWrite, StoreOptions, StoreView } from './types.js';

export const S = EfiStatus;
export const G = Guids.GLOBAL_VARIABLE;
export const D = Guids.IMAGE_SECURITY_DATABASE;
/** A vendor GUID outside the UEFI namespaces. */
export const V = guid('15edf297-e832-4d30-8200-a525a931e33e');
export const n = utf16le;
export const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

export function newStore(options: Partial<StoreOptions> = {}): VariableStore {
  return VariableStore.create({ platform: { secureBoot: true, authEnforce: true }, ...options });
}

export function client(store: VariableStore): FirmwareClient {
  return FirmwareClient.forStore(store);
}

/**
 * An EFI_VARIABLE_AUTHENTICATION_2 descriptor (timestamp, WIN_CERTIFICATE_UEFI_GUID header with
 * the PKCS#7 cert type, `certData`) followed by `payload`.
 */
export function auth2(
  payload: Uint8Array,
  time: Partial<EfiTime> = { year: 2024, month: 1, day: 1 },
  certData: Uint8Array = bytes(0x30, 0x00),
): Uint8Array {
  const out = new Uint8Array(40 + certData.length + payload.length);
  const v = new DataView(out.buffer);
  out.set(serializeEfiTime(time), 0);
  v.setUint32(16, 24 + certData.length, true);
  v.setUint16(20, 0x0200, true);
  v.setUint16(22, 0x0ef1, true);
  out.set(Guids.CERT_PKCS7, 24);
  out.set(certData, 40);
  out.set(payload, 40 + certData.length);
  return out;
}

/**
 * Stands in for @vmsb/auth's authenticator at the seam: it does no cryptography; it records what
 * the store hands over and answers with `decide`. The default approves the write with the payload
 * after the descriptor and the descriptor's timestamp, as a successful verification would.
 */
export class RecordingAuthenticator implements Authenticator {
  readonly calls: { request: AuthenticatedWrite; setupMode: boolean; authEnforce: boolean }[] = [];

  constructor(private readonly decide: (request: AuthenticatedWrite, view: StoreView) => AuthResult = approve) {}

  verify(request: AuthenticatedWrite, view: StoreView): AuthResult {
    this.calls.push({ request, setupMode: view.setupMode, authEnforce: view.authEnforce });
    return this.decide(request, view);
  }
}

export function approve(request: AuthenticatedWrite): AuthResult {
  const dwLength = new DataView(request.data.buffer, request.data.byteOffset).getUint32(16, true);
  return {
    status: EfiStatus.SUCCESS,
    payload: request.data.subarray(16 + dwLength),
    timestamp: request.data.slice(0, 16),
  };
}
