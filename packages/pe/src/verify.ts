import { createHash } from 'node:crypto';
import {
  parseCertificate,
  parseSignedData,
  summarizeCertificate,
  VerificationContext,
  verifyWithAnchor,
  type Certificate,
  type CertificateSummary,
} from '@vmsb/auth';
import { guidToText, parseSignatureLists, signatureHashes, x509Certificates, type SignatureList } from '@vmsb/efi';
import { authenticodeHashAlgorithm, derPrefix, readCertificateTable, spcIndirectDataContent } from './certificates.js';
import { authenticodeDigest, parsePeImage, type PeImage } from './image.js';

/** The image-security databases an image is checked against: each variable's value, or undefined when absent. */
export interface ImageSecurityDatabases {
  readonly db: Uint8Array | undefined;
  readonly dbx: Uint8Array | undefined;
  /** Only its presence matters here (see `ImageVerdict` on timestamps). */
  readonly dbt?: Uint8Array | undefined;
}

/** The db or dbx entry that decided. */
export interface DatabaseMatch {
  readonly database: 'db' | 'dbx';
  /** The signature type: CERT_X509, CERT_SHA256, CERT_X509_SHA256, ... */
  readonly type: string;
  readonly owner: string;
  /** For CERT_X509 entries. */
  readonly certificate?: CertificateSummary;
  /** For hash entries: the hash, hex. */
  readonly hash?: string;
  /** For CERT_X509_* entries: the certificate carried in the signature whose TBS hash matched. */
  readonly revokedCertificate?: CertificateSummary;
}

export type SignatureOutcome = 'allowed' | 'forbidden' | 'untrusted' | 'unsupported' | 'skipped';

/** What happened to one entry of the certificate table. */
export interface SignatureCheck {
  /** Position in the certificate table, from 0. */
  readonly index: number;
  readonly offset: number;
  /** WIN_CERTIFICATE wCertificateType. */
  readonly certificateType: number;
  readonly digestAlgorithm: string | null;
  readonly signer: CertificateSummary | null;
  /** Every certificate the signature carries. */
  readonly certificates: readonly CertificateSummary[];
  readonly outcome: SignatureOutcome;
  readonly detail: string;
  readonly match: DatabaseMatch | null;
}

export interface ImageVerdict {
  readonly allowed: boolean;
  /** The Authenticode SHA-256 of the image (hex); null when the image cannot be hashed. */
  readonly sha256: string | null;
  readonly signed: boolean;
  /** One sentence: why it is allowed or refused. */
  readonly reason: string;
  /** The certificate-table entry that decided, when one did. */
  readonly decidedBy: number | null;
  /** The db or dbx entry that decided, when one did. */
  readonly match: DatabaseMatch | null;
  readonly signatures: readonly SignatureCheck[];
}

interface DatabaseView {
  readonly present: boolean;
  readonly lists: readonly SignatureList[];
  /** CERT_X509 entries, parsed (unparseable ones are left out, as OpenSSL would fail on them). */
  readonly certificates: readonly { owner: Uint8Array; der: Uint8Array; certificate: Certificate }[];
}

function viewOf(value: Uint8Array | undefined): DatabaseView {
  if (value === undefined) return { present: false, lists: [], certificates: [] };
  const parsed = parseSignatureLists(value);
  const lists = parsed.ok ? parsed.lists : [];
  const certificates = [];
  for (const { owner, der } of x509Certificates(lists)) {
    const c = parseCertificate(der);
    if (c.ok) certificates.push({ owner, der, certificate: c.certificate });
  }
  return { present: true, lists, certificates };
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** edk2's IsSignatureFoundInDatabase: an entry of the digest's type and size equal to it. */
function findHash(db: DatabaseView, name: 'db' | 'dbx', digest: Uint8Array, algorithm: string): DatabaseMatch | null {
  for (const h of signatureHashes(db.lists)) {
    if (h.type.kind !== 'hash' || h.type.hashAlgorithm !== algorithm) continue;
    if (Buffer.compare(h.hash, digest) === 0)
      return { database: name, type: h.type.name, owner: guidToText(h.owner), hash: hex(h.hash) };
  }
  return null;
}

/** edk2's IsCertHashFoundInDbx: a CERT_X509_SHA{256,384,512} entry equal to the hash of the certificate's TBS. */
function findCertificateHash(
  dbx: DatabaseView,
  cert: Certificate,
): { match: DatabaseMatch; timeOfRevocation: Uint8Array } | null {
  for (const h of signatureHashes(dbx.lists)) {
    if (h.type.kind !== 'x509-hash' || h.type.hashAlgorithm === undefined || h.timeOfRevocation === undefined) continue;
    const tbsHash = createHash(h.type.hashAlgorithm).update(cert.tbs).digest();
    if (Buffer.compare(tbsHash, h.hash) === 0) {
      return {
        match: {
          database: 'dbx',
          type: h.type.name,
          owner: guidToText(h.owner),
          hash: hex(h.hash),
          revokedCertificate: summarizeCertificate(cert),
        },
        timeOfRevocation: h.timeOfRevocation,
      };
    }
  }
  return null;
}

/** The timestamp exception edk2 grants a revoked certificate (PassTimestampCheck), in words. */
function revocationNote(timeOfRevocation: Uint8Array, dbt: boolean): string {
  if (timeOfRevocation.every((b) => b === 0)) return 'revoked for all time (zero TimeOfRevocation)';
  if (!dbt) return 'revoked; no dbt, so no timestamp can exempt the signature';
  return 'revoked from its TimeOfRevocation on; edk2 would still accept a signature whose RFC 3161 timestamp verifies against dbt and predates it, which is not evaluated here';
}

/** AuthenticodeVerify: the signature's content names this digest and its chain reaches `anchor`. */
function authenticodeVerifies(
  ctx: VerificationContext,
  content: Uint8Array,
  digest: Uint8Array,
  anchor: Certificate,
): { ok: true } | { ok: false; reason: string } {
  if (content.length < digest.length || Buffer.compare(content.subarray(content.length - digest.length), digest) !== 0)
    return { ok: false, reason: "the signature's image digest is not this image's Authenticode hash" };
  const r = verifyWithAnchor(ctx, anchor);
  return r.ok ? { ok: true } : { ok: false, reason: r.reason };
}

/**
 * Whether edk2's DxeImageVerificationLib would let firmware in user mode with Secure Boot on run
 * this image, given the db and dbx variables:
 *
 * - unsigned (no certificate table): allowed only when its SHA-256 is in db and not in dbx;
 * - signed: each PKCS#7 entry of the certificate table in turn, hashed with its own digest
 *   algorithm: refused at once when a dbx certificate verifies it, when a certificate it carries
 *   has its TBS hash in dbx, or when the image hash is in dbx; allowed when its chain reaches a db
 *   certificate (whose own TBS hash is not in dbx) or when the image hash is in db;
 * - a certificate table that does not walk to its end refuses the image whatever else holds.
 *
 * PKCS#7 verification is @vmsb/auth's (OpenSSL's PKCS7_verify rules as edk2 calls it: partial
 * chains, no time checks, any purpose), which verifies SHA-256 signatures. Never throws.
 */
export function verifyImage(bytes: Uint8Array, databases: ImageSecurityDatabases): ImageVerdict {
  const parsed = parsePeImage(bytes);
  const refused = (reason: string, extra: Partial<ImageVerdict> = {}): ImageVerdict => ({
    allowed: false,
    sha256: null,
    signed: false,
    reason,
    decidedBy: null,
    match: null,
    signatures: [],
    ...extra,
  });
  if (!parsed.ok) return refused(`not a verifiable PE/COFF image: ${parsed.reason}`);
  const image = parsed.image;
  const sha = authenticodeDigest(bytes, image, 'sha256');
  if (!sha.ok) return refused(`the image cannot be hashed: ${sha.reason}`);
  const sha256 = hex(sha.digest);
  const db = viewOf(databases.db);
  const dbx = viewOf(databases.dbx);
  const dbt = databases.dbt !== undefined;

  if (image.certificateTable === undefined) {
    const banned = findHash(dbx, 'dbx', sha.digest, 'sha256');
    if (banned !== null) return refused('unsigned, and its SHA-256 hash is in dbx', { sha256, match: banned });
    const listed = findHash(db, 'db', sha.digest, 'sha256');
    if (listed !== null)
      return {
        allowed: true,
        sha256,
        signed: false,
        reason: 'unsigned; its SHA-256 hash is in db',
        decidedBy: null,
        match: listed,
        signatures: [],
      };
    return refused('unsigned, and its SHA-256 hash is not in db', { sha256 });
  }

  const table = readCertificateTable(bytes, image);
  const checks: SignatureCheck[] = [];
  let verified: { index: number; match: DatabaseMatch } | undefined;
  let forbidden: { index: number; match: DatabaseMatch | null; detail: string } | undefined;
  for (const [index, entry] of table.entries.entries()) {
    const base = { index, offset: entry.offset, certificateType: entry.type };
    if (entry.kind === 'skipped' || entry.signedData === undefined) {
      checks.push({
        ...base,
        digestAlgorithm: null,
        signer: null,
        certificates: [],
        outcome: 'skipped',
        detail: 'not a PKCS#7 signature (edk2 passes over it)',
        match: null,
      });
      continue;
    }
    const signedData = entry.signedData;
    const algorithm = authenticodeHashAlgorithm(signedData);
    const sd = parseSignedData(derPrefix(signedData));
    const certificates = sd.ok ? sd.signedData.certificates : [];
    const summaries = certificates.map(summarizeCertificate);
    const signerCert = sd.ok
      ? certificates.find(
          (c) =>
            Buffer.compare(c.issuer, sd.signedData.signerInfo.issuer) === 0 &&
            Buffer.compare(c.serialNumber, sd.signedData.signerInfo.serialNumber) === 0,
        )
      : undefined;
    const signer = signerCert === undefined ? null : summarizeCertificate(signerCert);
    const record = (outcome: SignatureOutcome, detail: string, match: DatabaseMatch | null = null): void => {
      checks.push({
        ...base,
        digestAlgorithm: algorithm ?? null,
        signer,
        certificates: summaries,
        outcome,
        detail,
        match,
      });
    };
    if (algorithm === undefined || algorithm === 'sha224') {
      record(
        'unsupported',
        'its digest algorithm is not one edk2 hashes images with (SHA-1, SHA-256, SHA-384, SHA-512)',
      );
      continue;
    }
    const digestResult = authenticodeDigest(bytes, image, algorithm);
    if (!digestResult.ok) {
      record('unsupported', `the image cannot be hashed: ${digestResult.reason}`);
      continue;
    }
    const digest = digestResult.digest;
    const spc = spcIndirectDataContent(signedData);
    const content = 'content' in spc ? spc.content : undefined;
    const ctx = sd.ok && content !== undefined ? new VerificationContext(sd.signedData, content) : undefined;
    const verifies = (anchor: Certificate): { ok: true } | { ok: false; reason: string } => {
      if (ctx === undefined || content === undefined)
        return { ok: false, reason: sd.ok ? (spc as { problem: string }).problem : sd.reason };
      return authenticodeVerifies(ctx, content, digest, anchor);
    };

    // IsForbiddenByDbx (only when dbx exists).
    if (dbx.present) {
      let banned: { match: DatabaseMatch | null; detail: string } | undefined;
      for (const entryCert of dbx.certificates) {
        if (verifies(entryCert.certificate).ok) {
          banned = {
            match: {
              database: 'dbx',
              type: 'CERT_X509',
              owner: guidToText(entryCert.owner),
              certificate: summarizeCertificate(entryCert.certificate),
            },
            detail: 'its chain reaches a certificate in dbx',
          };
          break;
        }
      }
      if (banned === undefined && certificates.length === 0)
        banned = {
          match: null,
          detail: sd.ok ? 'it carries no certificates' : `its PKCS#7 cannot be read (${sd.reason})`,
        };
      if (banned === undefined) {
        for (const c of certificates) {
          const hit = findCertificateHash(dbx, c);
          if (hit !== null) {
            banned = {
              match: hit.match,
              detail: `it carries "${c.subjectText}", whose TBS hash is in dbx (${revocationNote(hit.timeOfRevocation, dbt)})`,
            };
            break;
          }
        }
      }
      if (banned !== undefined) {
        record('forbidden', banned.detail, banned.match);
        forbidden = { index, ...banned };
        break;
      }
    }

    // IsAllowedByDb: the first db certificate the signature verifies against decides.
    let allowedBy: DatabaseMatch | undefined;
    let detail = '';
    if (verified === undefined) {
      for (const entryCert of db.certificates) {
        if (!verifies(entryCert.certificate).ok) continue;
        const revoked = dbx.present ? findCertificateHash(dbx, entryCert.certificate) : null;
        if (revoked !== null) {
          detail = `it chains to db's "${entryCert.certificate.subjectText}", whose TBS hash is in dbx (${revocationNote(revoked.timeOfRevocation, dbt)})`;
        } else {
          allowedBy = {
            database: 'db',
            type: 'CERT_X509',
            owner: guidToText(entryCert.owner),
            certificate: summarizeCertificate(entryCert.certificate),
          };
        }
        break;
      }
    }

    const hashBanned = findHash(dbx, 'dbx', digest, algorithm);
    if (hashBanned !== null) {
      record('forbidden', `its ${algorithm.toUpperCase()} Authenticode hash is in dbx`, hashBanned);
      forbidden = { index, match: hashBanned, detail: `its ${algorithm.toUpperCase()} Authenticode hash is in dbx` };
      verified = undefined;
      break;
    }
    if (allowedBy !== undefined) {
      verified = { index, match: allowedBy };
      record('allowed', `its chain reaches db's "${allowedBy.certificate!.subject}"`, allowedBy);
      continue;
    }
    if (verified === undefined) {
      const listed = findHash(db, 'db', digest, algorithm);
      if (listed !== null) {
        verified = { index, match: listed };
        record('allowed', `its ${algorithm.toUpperCase()} Authenticode hash is in db`, listed);
        continue;
      }
    }
    if (detail === '') {
      if (!sd.ok) detail = `its PKCS#7 cannot be read: ${sd.reason}`;
      else if (content === undefined) detail = (spc as { problem: string }).problem;
      else if (Buffer.compare(content.subarray(content.length - digest.length), digest) !== 0)
        detail = "the digest it signs is not this image's Authenticode hash (the image was changed after signing)";
      else if (ctx !== undefined && !ctx.contentSignature().ok)
        detail = (ctx.contentSignature() as { reason: string }).reason;
      else
        detail = `no db certificate is in its chain${signer === null ? '' : ` (signed by "${signer.subject}", issued by "${signer.issuer}")`}`;
    }
    record(
      verified === undefined ? 'untrusted' : 'skipped',
      verified === undefined
        ? detail
        : 'not checked against db (an earlier signature is trusted); nothing of it is in dbx',
    );
  }

  const signed = true;
  if (forbidden !== undefined)
    return refused(`signature ${forbidden.index + 1} is forbidden: ${forbidden.detail}`, {
      sha256,
      signed,
      decidedBy: forbidden.index,
      match: forbidden.match,
      signatures: checks,
    });
  if (!table.intact)
    return refused(`the certificate table is corrupt (${table.problem}): edk2 refuses the image`, {
      sha256,
      signed,
      signatures: checks,
    });
  if (verified !== undefined) {
    const m = verified.match;
    const why =
      m.certificate !== undefined
        ? `its chain reaches db's "${m.certificate.subject}"`
        : 'its Authenticode hash is in db';
    return {
      allowed: true,
      sha256,
      signed,
      reason: `signature ${verified.index + 1} is trusted: ${why}`,
      decidedBy: verified.index,
      match: m,
      signatures: checks,
    };
  }
  const pkcs7 = checks.filter((c) => c.outcome !== 'skipped');
  return refused(
    pkcs7.length === 0
      ? 'signed, but with no signature edk2 can check'
      : `no signature is trusted by db, and the image hash is not in db`,
    { sha256, signed, signatures: checks },
  );
}

export type { PeImage };
