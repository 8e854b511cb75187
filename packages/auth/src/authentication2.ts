import {
  AUTHENTICATION2_HEADER_SIZE,
  authTimestampProblem,
  Guids,
  guidEquals,
  guidToText,
  parseEfiTime,
  WIN_CERT_TYPE_EFI_GUID,
  WIN_CERTIFICATE_UEFI_GUID_SIZE,
  type EfiTime,
} from '@vmsb/efi';
import { EfiStatus } from '@vmsb/protocol';

// The layout lives in @vmsb/efi; these names stay part of this package's surface.
export {
  AUTHENTICATION2_HEADER_SIZE,
  WIN_CERTIFICATE_UEFI_GUID_SIZE,
  WIN_CERT_TYPE_EFI_GUID,
  WIN_CERT_REVISION,
  buildAuthentication2,
} from '@vmsb/efi';

/** EFI_VARIABLE_AUTHENTICATION_2 and the payload after it. Byte fields are views into the parsed data. */
export interface Authentication2 {
  /** The 16-byte EFI_TIME exactly as sent (it is part of what is signed). */
  readonly timestamp: Uint8Array;
  readonly time: EfiTime;
  /** WIN_CERTIFICATE.dwLength: the whole WIN_CERTIFICATE_UEFI_GUID. */
  readonly length: number;
  /** WIN_CERTIFICATE.wRevision (not checked: edk2 and varstored ignore it). */
  readonly revision: number;
  readonly certificateType: number;
  readonly certType: Uint8Array;
  /** The PKCS#7 signature (CertData). */
  readonly certData: Uint8Array;
  /** The new variable value (or the bytes to append). */
  readonly payload: Uint8Array;
}

export type Authentication2Problem =
  /** DataSize or dwLength do not describe a descriptor inside the data. */
  | 'malformed-descriptor'
  /** Pad1, Nanosecond, TimeZone, Daylight or Pad2 is not zero. */
  | 'timestamp-fields'
  /** Not WIN_CERT_TYPE_EFI_GUID with EFI_CERT_TYPE_PKCS7_GUID. */
  | 'certificate-type';

export type Authentication2Result =
  | { readonly ok: true; readonly descriptor: Authentication2 }
  | { readonly ok: false; readonly status: bigint; readonly problem: Authentication2Problem; readonly reason: string };

/**
 * Parses the EFI_VARIABLE_AUTHENTICATION_2 at the start of an authenticated SetVariable's data with
 * edk2's framing rules: data of at least 40 bytes, 24 <= dwLength <= DataSize - 16, the timestamp's
 * pad, nanosecond, zone and daylight fields zero, and a WIN_CERT_TYPE_EFI_GUID certificate of type
 * EFI_CERT_TYPE_PKCS7_GUID. Every failure is EFI_SECURITY_VIOLATION. Never throws.
 */
export function parseAuthentication2(data: Uint8Array): Authentication2Result {
  const fail = (problem: Authentication2Problem, reason: string): Authentication2Result => ({
    ok: false,
    status: EfiStatus.SECURITY_VIOLATION,
    problem,
    reason,
  });
  if (data.length < AUTHENTICATION2_HEADER_SIZE) {
    return fail(
      'malformed-descriptor',
      `the data (${data.length} bytes) is shorter than an EFI_VARIABLE_AUTHENTICATION_2 header (40)`,
    );
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const length = view.getUint32(16, true);
  if (length < WIN_CERTIFICATE_UEFI_GUID_SIZE) return fail('malformed-descriptor', `dwLength ${length} is below 24`);
  if (length > data.length - 16)
    return fail('malformed-descriptor', `dwLength ${length} runs past the ${data.length} bytes of data`);
  const timestamp = data.subarray(0, 16);
  const time = parseEfiTime(timestamp)!;
  const fieldProblem = authTimestampProblem(time);
  if (fieldProblem !== undefined) return fail('timestamp-fields', fieldProblem);
  const revision = view.getUint16(20, true);
  const certificateType = view.getUint16(22, true);
  const certType = data.subarray(24, 40);
  if (certificateType !== WIN_CERT_TYPE_EFI_GUID) {
    return fail(
      'certificate-type',
      `wCertificateType is 0x${certificateType.toString(16)}, not WIN_CERT_TYPE_EFI_GUID (0x0ef1)`,
    );
  }
  if (!guidEquals(certType, Guids.CERT_PKCS7)) {
    return fail('certificate-type', `CertType is ${guidToText(certType)}, not EFI_CERT_TYPE_PKCS7_GUID`);
  }
  return {
    ok: true,
    descriptor: {
      timestamp,
      time,
      length,
      revision,
      certificateType,
      certType,
      certData: data.subarray(AUTHENTICATION2_HEADER_SIZE, 16 + length),
      payload: data.subarray(16 + length),
    },
  };
}
