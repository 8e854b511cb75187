/**
 * The EFI_VARIABLE_AUTHENTICATION_2 layout (UEFI 2.10 §8.2.2) that starts a time-based authenticated
 * SetVariable's data: EFI_TIME (16), then WIN_CERTIFICATE_UEFI_GUID: dwLength (u32), wRevision
 * (u16), wCertificateType (u16), CertType (GUID), CertData (the PKCS#7); the payload follows.
 */
import { Guids } from './guid.js';

/** Bytes before CertData: EFI_TIME (16) + WIN_CERTIFICATE header (8) + CertType GUID (16). */
export const AUTHENTICATION2_HEADER_SIZE = 40;
/** OFFSET_OF(EFI_VARIABLE_AUTHENTICATION_2, AuthInfo): where dwLength starts. */
export const AUTHENTICATION2_AUTHINFO_OFFSET = 16;
/** sizeof(WIN_CERTIFICATE_UEFI_GUID) without CertData: the smallest valid dwLength. */
export const WIN_CERTIFICATE_UEFI_GUID_SIZE = 24;
export const WIN_CERT_TYPE_EFI_GUID = 0x0ef1;
export const WIN_CERT_REVISION = 0x0200;

/**
 * WIN_CERTIFICATE.dwLength when `data` frames a descriptor as edk2's SetVariable requires (at least
 * 40 bytes, 24 <= dwLength <= DataSize - 16), else undefined. The payload starts at 16 + dwLength.
 */
export function authentication2Length(data: Uint8Array): number | undefined {
  if (data.length < AUTHENTICATION2_HEADER_SIZE) return undefined;
  const length = new DataView(data.buffer, data.byteOffset + AUTHENTICATION2_AUTHINFO_OFFSET, 4).getUint32(0, true);
  if (length < WIN_CERTIFICATE_UEFI_GUID_SIZE || length > data.length - AUTHENTICATION2_AUTHINFO_OFFSET)
    return undefined;
  return length;
}

/**
 * EFI_VARIABLE_AUTHENTICATION_2 || payload around a PKCS#7 signature (an empty signature gives the
 * unsigned descriptor setup mode accepts).
 */
export function buildAuthentication2(timestamp: Uint8Array, certData: Uint8Array, payload: Uint8Array): Uint8Array {
  if (timestamp.length !== 16) throw new RangeError(`an EFI_TIME is 16 bytes, got ${timestamp.length}`);
  const out = new Uint8Array(AUTHENTICATION2_HEADER_SIZE + certData.length + payload.length);
  const view = new DataView(out.buffer);
  out.set(timestamp, 0);
  view.setUint32(AUTHENTICATION2_AUTHINFO_OFFSET, WIN_CERTIFICATE_UEFI_GUID_SIZE + certData.length, true);
  view.setUint16(20, WIN_CERT_REVISION, true);
  view.setUint16(22, WIN_CERT_TYPE_EFI_GUID, true);
  out.set(Guids.CERT_PKCS7, 24);
  out.set(certData, AUTHENTICATION2_HEADER_SIZE);
  out.set(payload, AUTHENTICATION2_HEADER_SIZE + certData.length);
  return out;
}
