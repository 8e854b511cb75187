/**
 * Microsoft's DBXUpdate as several benchmarks verify it: the VM policy it is checked against and
 * the raw RSA verification of its signature that serves as their baseline.
 */
import type { KeyObject } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import { findSigner, parseAuthentication2, parseSignedData, signedContent } from '@vmsb/auth';
import { type AuthenticatedWrite, Attrs, Guids, makeVariable, utf16le, type StoreView, type Variable } from '@vmsb/efi';
import { testKeys } from '@vmsb/fuzz';
import { buildSignatureList, bundledDbxUpdate, microsoftSignatureList } from '@vmsb/keys';

/** The owner GUID of the benchmarks' own signature lists. */
export const OWNER = '5d1a9b2e-7c44-4e0f-9b1d-2f6c3a8e4b17';

/**
 * The VM's policy (a PK of its own, Microsoft's two KEK CAs; dbx not applied yet) and the dbx
 * append of Microsoft's DBXUpdate, as Authenticator.verify takes them.
 */
export function dbxUpdateAppend(): { view: StoreView; request: AuthenticatedWrite } {
  const vars = new Map<string, Variable>([
    [
      'PK',
      makeVariable({
        name: utf16le('PK'),
        guid: Guids.GLOBAL_VARIABLE,
        attributes: Attrs.NV_BS_RT_AT,
        data: buildSignatureList({ type: 'x509', certificates: [testKeys().PK.certificate], owner: OWNER }),
      }),
    ],
    [
      'KEK',
      makeVariable({
        name: utf16le('KEK'),
        guid: Guids.GLOBAL_VARIABLE,
        attributes: Attrs.NV_BS_RT_AT,
        data: microsoftSignatureList({ role: 'KEK' }),
      }),
    ],
  ]);
  const view: StoreView = {
    get: (n) => vars.get(Buffer.from(n).toString('utf16le')),
    setupMode: false,
    authEnforce: true,
  };
  const request = {
    name: utf16le('dbx'),
    guid: Guids.IMAGE_SECURITY_DATABASE,
    attributes: Attrs.NV_BS_RT_AT,
    append: true,
    data: bundledDbxUpdate().bytes,
  };
  return { view, request };
}

/** What the raw baseline verifies: the DBXUpdate's signed content, its signer's key (imported once), its signature. */
export function dbxUpdateSignature(): { content: Uint8Array; key: KeyObject; signature: Uint8Array } {
  const update = bundledDbxUpdate();
  const parsed = parseAuthentication2(update.bytes);
  if (!parsed.ok) throw new Error(parsed.reason);
  const d = parsed.descriptor;
  const sd = parseSignedData(d.certData);
  if (!sd.ok) throw new Error(sd.reason);
  const signer = findSigner(sd.signedData);
  if (signer === undefined) throw new Error('no signer');
  return {
    content: signedContent(utf16le('dbx'), Guids.IMAGE_SECURITY_DATABASE, update.attributes, d.timestamp, d.payload),
    key: new X509Certificate(Buffer.from(signer.der)).publicKey,
    signature: sd.signedData.signerInfo.signature,
  };
}
