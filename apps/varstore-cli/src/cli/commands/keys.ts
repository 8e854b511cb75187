import {
  explainAuthenticatedWrite,
  signatureDatabaseProblem,
  type AuthExplanation,
  type CertificateSummary,
} from '@vmsb/auth';
import { Attr, Attrs, efiTimeToDate, formatAttributes, formatEfiTime, guidToText, parseEfiTime } from '@vmsb/efi';
import {
  attachSignature,
  buildSignatureList,
  concatSignatureLists,
  createAuthenticatedVariable,
  createKeySet,
  keySetFiles,
  loadPrivateKey,
  describeCertificate,
  parseSignableBytes,
  signableBytes,
  verifyAuthenticatedVariable,
  type RsaBits,
} from '@vmsb/keys';
import { EfiStatus, statusName } from '@vmsb/protocol';
import { positionals } from '../args.js';
import { loadStore, type Command } from '../command.js';
import { microsoftDbs, microsoftKeks, microsoftLists, parseDbChoices, parseKekChoice } from '../edits.js';
import { CliError, ExitCode, explainStatus, messageOf, usageError } from '../errors.js';
import { FileMode, imageHash, parseHex, readCertificateFile, readInput, writeOutput } from '../inputs.js';
import {
  isSignatureDatabase,
  nowTimestamp,
  parseAttributes,
  parseGuid,
  parseTimestamp,
  resolveName,
} from '../names.js';
import { printable } from '../output.js';
import { EditSession, variableKey } from '../session.js';

export const esl: Command = {
  name: 'esl',
  summary: 'build EFI signature lists from certificates or SHA-256 hashes',
  help: `usage: varstore esl (--cert <file>... | --sha256 <hex>... | --pe <image.efi>...) --owner <guid> --out <file>

Writes EFI_SIGNATURE_LISTs: one X.509 list per certificate (PEM, PEM bundles or DER), byte for
byte what efitools' cert-to-efi-sig-list writes, and one SHA-256 list holding every --sha256 hash
and the Authenticode SHA-256 of every --pe image (what firmware looks up in db and dbx; the same
hash as \`pesign -h\` and \`varstore boot-check\`), ready for \`varstore set <store> db --append --esl\`.
--owner is the SignatureOwner of every entry (a GUID, or microsoft, zero). --out - writes to stdout.`,
  options: {
    cert: { kind: 'values' },
    sha256: { kind: 'values' },
    pe: { kind: 'values' },
    owner: { kind: 'value' },
    out: { kind: 'value' },
    json: { kind: 'flag' },
  },
  async run(ctx) {
    const { args, out } = ctx;
    positionals(args, 'esl', []);
    const owner = parseGuid(args.required('owner'), '--owner');
    const outPath = args.required('out');
    if (args.values('cert').length === 0 && args.values('sha256').length === 0 && args.values('pe').length === 0)
      throw usageError('esl: give --cert, --sha256 or --pe');
    const parts: Uint8Array[] = [];
    let entries = 0;
    for (const path of args.values('cert')) {
      const certs = await readCertificateFile(path);
      parts.push(buildSignatureList({ type: 'x509', certificates: certs, owner }));
      entries += certs.length;
    }
    const hashes = args.values('sha256').map((h) => parseHex(h, 32, '--sha256'));
    for (const path of args.values('pe')) hashes.push(await imageHash(path));
    if (hashes.length > 0) {
      parts.push(buildSignatureList({ type: 'sha256', hashes, owner }));
      entries += hashes.length;
    }
    const bytes = concatSignatureLists(parts);
    await writeOutput(outPath, bytes, { mode: FileMode.PUBLIC, stdout: ctx.io.stdout });
    const summary = `wrote ${outPath === '-' ? 'standard output' : outPath}: ${entries} entr${entries === 1 ? 'y' : 'ies'}, ${bytes.length} bytes, owner ${guidToText(owner)}`;
    if (args.flag('json')) {
      if (outPath === '-') throw usageError('esl: --json and --out - both use standard output');
      out.json({ out: outPath, entries, size: bytes.length, owner: guidToText(owner) });
    } else if (outPath === '-') out.note(summary);
    else out.line(`${out.glyph('ok')} ${summary}`);
    return ExitCode.OK;
  },
};

/** The variable a sign/verify command is about: name, GUID, attributes as signed. */
function updateTarget(args: Parameters<Command['run']>[0]['args'], existing: Parameters<typeof resolveName>[2] = []) {
  const resolved = resolveName(args.required('var'), args.value('guid'), existing);
  let attributes =
    args.value('attributes') === undefined ? Attrs.NV_BS_RT_AT : parseAttributes(args.value('attributes')!);
  if ((attributes & Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS) === 0)
    throw usageError(`attributes ${formatAttributes(attributes)} lack TIME_BASED_AUTHENTICATED_WRITE_ACCESS (AT)`);
  if (args.flag('append')) attributes |= Attr.APPEND_WRITE;
  return { ...resolved, attributes };
}

function timestampLabel(bytes: Uint8Array): string {
  return bytes.every((b) => b === 0) ? 'zero' : formatEfiTime(parseEfiTime(bytes)!).replace('T', ' ');
}

export const sign: Command = {
  name: 'sign',
  summary: 'make a signed update (.auth), or do it offline in two steps',
  help: `usage: varstore sign --var <name> [--guid <guid>] [--attributes <attr>] [--append] [--timestamp <t>]
                     --key <key> --cert <cert> [--chain <cert>]... [--key-password <p>]
                     (<payload> | --empty) --out <file.auth>
       varstore sign --var <name> ... --emit-signable (<payload> | --empty) --out <file>
       varstore sign --var <name> --attach-signature <sig> --signable <file> [--cert <cert>] --out <file.auth>
       varstore sign --var <name> ... --attach-signature <sig> --timestamp <t> (<payload> | --empty) --out <file.auth>

Signs an authenticated variable update (EFI_VARIABLE_AUTHENTICATION_2 + payload), SHA-256 with
RSA, as sign-efi-sig-list does (byte-identical output for the same key, certificate, timestamp and
payload). The payload is usually signature lists (\`varstore esl\`); --empty signs a deletion.
  --var            the variable (PK, KEK, db, dbx need no --guid); the signer must be the PK for PK
                   and KEK, the PK or a KEK certificate for db and dbx
  --attributes     default NV|BS|RT|AT (0x27); --append adds APPEND_WRITE (0x40), which is signed too
  --timestamp      now (default), zero, YYYY-MM-DD or "YYYY-MM-DD HH:MM:SS" (UTC); a replacing
                   update must be later than the stored one
  --wrap-content-info   put the SignedData in a ContentInfo (efitools and Microsoft write it bare)
Offline (HSM) signing: --emit-signable writes the exact bytes to sign; sign them elsewhere, e.g.
  openssl cms -sign -binary -noattr -md sha256 -signer C -inkey K -in F.signable -outform DER -out F.p7
or a raw RSA PKCS#1 v1.5 SHA-256 signature (openssl dgst -sha256 -sign K); then --attach-signature
with --signable <the same file>, which carries the timestamp, so the two steps cannot disagree.
The signature is checked against the bytes and the certificate before the .auth is written.`,
  options: {
    var: { kind: 'value' },
    guid: { kind: 'value' },
    attributes: { kind: 'value' },
    append: { kind: 'flag' },
    timestamp: { kind: 'value' },
    key: { kind: 'value' },
    cert: { kind: 'value' },
    chain: { kind: 'values' },
    'key-password': { kind: 'value' },
    empty: { kind: 'flag' },
    out: { kind: 'value' },
    'emit-signable': { kind: 'flag' },
    'attach-signature': { kind: 'value' },
    signable: { kind: 'value' },
    'signature-format': { kind: 'value' },
    'wrap-content-info': { kind: 'flag' },
    json: { kind: 'flag' },
  },
  async run(ctx) {
    const { args, out } = ctx;
    const outPath = args.required('out');
    const attach = args.value('attach-signature');
    const emit = args.flag('emit-signable');
    if (attach !== undefined && emit)
      throw usageError('sign: --emit-signable and --attach-signature are two separate steps');
    const chain = await Promise.all(args.values('chain').map(async (p) => (await readCertificateFile(p))[0]!));
    const wrap = args.flag('wrap-content-info');

    // Where the signed bytes come from: a signable file of the first step, or the options.
    let target: {
      name: Uint8Array;
      guid: Uint8Array;
      attributes: number;
      timestamp: Uint8Array;
      payload: Uint8Array;
      label: string;
    };
    if (args.value('signable') !== undefined) {
      if (attach === undefined) throw usageError('sign: --signable goes with --attach-signature');
      for (const conflicting of ['timestamp', 'guid', 'attributes'])
        if (args.value(conflicting) !== undefined)
          throw usageError(`sign: --${conflicting} is taken from the --signable file`);
      if (args.flag('append') || args.flag('empty') || args.positionals.length > 0)
        throw usageError('sign: the payload and --append are taken from the --signable file');
      const bytes = await readInput(args.value('signable')!, 'signable file');
      const name = args.required('var');
      try {
        const v = parseSignableBytes(bytes, name);
        target = { ...v, label: name };
      } catch (e) {
        throw new CliError(
          `--signable ${args.value('signable')}: ${messageOf(e)} (was it made for --var ${name}?)`,
          ExitCode.USAGE,
        );
      }
    } else {
      const t = updateTarget(args);
      const [payloadPath] = positionals(args, 'sign', ['payload'], 1);
      if ((payloadPath === undefined) === !args.flag('empty'))
        throw usageError('sign: give the payload file, or --empty for a deletion');
      const payload = payloadPath === undefined ? new Uint8Array(0) : await readInput(payloadPath, 'payload');
      if (attach !== undefined && args.value('timestamp') === undefined) {
        throw usageError(
          'sign: --attach-signature needs the timestamp the signed bytes carry: --timestamp as in the first step, or --signable <file>',
        );
      }
      const timestamp =
        args.value('timestamp') === undefined
          ? nowTimestamp(ctx.io.now())
          : parseTimestamp(args.value('timestamp')!, ctx.io.now());
      target = { name: t.name, guid: t.guid, attributes: t.attributes, timestamp, payload, label: t.text };
    }
    const input = {
      name: target.name,
      guid: target.guid,
      attributes: target.attributes,
      timestamp: target.timestamp,
      payload: target.payload,
    };

    let result: Uint8Array;
    let signerText = '';
    try {
      if (emit) {
        for (const o of ['key', 'cert'])
          if (args.value(o) !== undefined)
            throw usageError(`sign: --emit-signable signs nothing; --${o} is for the other steps`);
        result = signableBytes(input);
      } else if (attach !== undefined) {
        const signature = await readInput(attach, 'signature');
        const certificate =
          args.value('cert') === undefined ? undefined : (await readCertificateFile(args.value('cert')!))[0]!;
        const format = args.value('signature-format') ?? 'auto';
        if (!['auto', 'cms', 'raw'].includes(format)) throw usageError('sign: --signature-format is auto, cms or raw');
        const attempts: string[] = [];
        let made: Uint8Array | undefined;
        if (format !== 'raw') {
          try {
            made = attachSignature({
              ...input,
              cms: signature,
              ...(certificate !== undefined ? { certificate } : {}),
              chain,
              wrapContentInfo: wrap,
            });
          } catch (e) {
            attempts.push(`as PKCS#7: ${messageOf(e)}`);
          }
        }
        if (made === undefined && format !== 'cms') {
          if (certificate === undefined) attempts.push('as a raw RSA signature: give --cert');
          else {
            try {
              made = attachSignature({ ...input, signature, certificate, chain, wrapContentInfo: wrap });
            } catch (e) {
              attempts.push(`as a raw RSA signature: ${messageOf(e)}`);
            }
          }
        }
        if (made === undefined)
          throw new CliError(`the signature in ${attach} does not fit: ${attempts.join('; ')}`, ExitCode.FAILED);
        result = made;
      } else {
        const keyBytes = await readInput(args.required('key'), 'private key');
        const password = args.value('key-password');
        const key = loadPrivateKey(keyBytes, password === undefined ? {} : { passphrase: password });
        const certificate = (await readCertificateFile(args.required('cert')))[0]!;
        const info = describeCertificate(certificate);
        signerText = ` by "${printable(info.commonName ?? info.subject)}"`;
        result = createAuthenticatedVariable({ ...input, key, certificate, chain, wrapContentInfo: wrap });
      }
    } catch (e) {
      if (e instanceof CliError) throw e;
      throw new CliError(`sign ${target.label}: ${messageOf(e)}`, ExitCode.FAILED);
    }
    if (args.flag('json') && outPath === '-') throw usageError('sign: --json and --out - both use standard output');
    await writeOutput(outPath, result, { mode: FileMode.PUBLIC, stdout: ctx.io.stdout });
    if (args.flag('json')) {
      const t = target.timestamp.every((b) => b === 0) ? null : `${formatEfiTime(parseEfiTime(target.timestamp)!)}Z`;
      out.json({
        out: outPath,
        step: emit ? 'signable' : 'signed',
        name: target.label,
        guid: guidToText(target.guid),
        attributes: target.attributes,
        attributesText: formatAttributes(target.attributes),
        timestamp: t,
        payloadSize: target.payload.length,
        size: result.length,
        signer: signerText === '' ? null : signerText.replace(/^ by "(.*)"$/, '$1'),
      });
      return ExitCode.OK;
    }
    // With --out -, stdout carries the bytes: the summary goes to stderr.
    const say = (text: string): void => (outPath === '-' ? out.note(text) : out.line(text));
    const what = `${target.label}, attributes ${formatAttributes(target.attributes)}, timestamp ${timestampLabel(target.timestamp)}, ${target.payload.length}-byte payload`;
    if (emit) {
      say(`${out.glyph('ok')} wrote the ${result.length} bytes to sign to ${outPath} (${what})`);
      out.note(
        `next: sign ${outPath} (e.g. openssl cms -sign -binary -noattr -md sha256 -signer <cert> -inkey <key> -in ${outPath} -outform DER -out ${outPath}.p7),`,
      );
      out.note(
        `then: varstore sign --var ${target.label} --attach-signature ${outPath}.p7 --signable ${outPath} --out <file.auth>`,
      );
    } else {
      say(`${out.glyph('ok')} wrote ${outPath}: ${what}, signed${signerText}`);
    }
    return ExitCode.OK;
  },
};

function summaryJson(c: CertificateSummary | undefined): unknown {
  return c === undefined
    ? null
    : { subject: c.subject, issuer: c.issuer, serialNumber: c.serialNumber, sha256: c.sha256, notAfter: c.notAfter };
}

export const verify: Command = {
  name: 'verify',
  summary: 'would a signed update (.auth) be accepted? why not?',
  help: `usage: varstore verify <file.auth> --var <name> [--guid <guid>] [--attributes <attr>] [--append]
                       (--store <store> | --anchor <cert>...) [--json] [--socket <path>]

Checks a signed update as the daemon would. With --store: against that store's PK and KEK, in
enforcing mode, with its stored timestamp (stale updates are refused) and its size limits. With
--anchor: against the given certificates only (the update's signature chains to one of them).
Exit status 0 when it would be accepted; 1 otherwise, with the reason: wrong signer (which was
expected and which signed), stale timestamp, malformed signature list, not signed, bad signature.
An update made for an append verifies only with --append (APPEND_WRITE is part of what is signed).`,
  options: {
    var: { kind: 'value' },
    guid: { kind: 'value' },
    attributes: { kind: 'value' },
    append: { kind: 'flag' },
    store: { kind: 'value' },
    anchor: { kind: 'values' },
    json: { kind: 'flag' },
  },
  async run(ctx) {
    const { args, out } = ctx;
    const [authPath] = positionals(args, 'verify', ['file.auth']);
    const storeText = args.value('store');
    const anchors = args.values('anchor');
    if ((storeText === undefined) === (anchors.length === 0))
      throw usageError('verify: give --store <store> or --anchor <cert> (one of them)');
    const auth = await readInput(authPath!, '.auth file');

    if (storeText !== undefined) {
      const store = await loadStore(ctx, storeText);
      if (!store.exists) throw new CliError(`${storeText}: no such file`, ExitCode.STORE);
      const session = EditSession.open(store.state, 'enforcing');
      const t = updateTarget(args, session.original.variables);
      const key = variableKey(t.name, t.guid);
      const existing = session.original.variables.find((v) => variableKey(v.name, v.guid) === key);
      const explanation = explainAuthenticatedWrite(
        {
          name: t.name,
          guid: t.guid,
          attributes: t.attributes & ~Attr.APPEND_WRITE,
          append: (t.attributes & Attr.APPEND_WRITE) !== 0,
          data: auth,
          ...(existing !== undefined ? { existing } : {}),
        },
        { get: (n, g) => session.get(n, g), setupMode: session.store.setupMode, authEnforce: true },
      );
      // The whole SetVariable, as the guest's would run: attribute, size and namespace rules too.
      const result = session.set(t.name, t.guid, t.attributes, auth);
      return report(out, args.flag('json'), explanation, result, t);
    }

    const t = updateTarget(args);
    const trusted = (await Promise.all(anchors.map(readCertificateFile))).flat();
    const verification = verifyAuthenticatedVariable({
      name: t.name,
      guid: t.guid,
      attributes: t.attributes,
      auth,
      trusted,
    });
    let problem: { code: string; reason: string } | undefined = verification.ok
      ? undefined
      : { code: verification.code, reason: verification.reason };
    if (verification.ok && isSignatureDatabase(t.name, t.guid) && verification.payload.length > 0) {
      const why = signatureDatabaseProblem(verification.payload, t.text === 'PK');
      if (why !== undefined)
        problem = { code: 'malformed-list', reason: `the payload is not a valid ${t.text}: ${why}` };
    }
    const accepted = problem === undefined;
    const doc = {
      accepted,
      variable: `${t.text} (${guidToText(t.guid)})`,
      code: problem?.code ?? null,
      reason:
        problem?.reason ??
        (verification.ok
          ? `signed by "${verification.signer.subject}", trusted through "${verification.trustedBy.subject}"`
          : ''),
    };
    if (args.flag('json')) {
      out.json(
        verifyDocument({
          accepted,
          status: accepted ? 'SUCCESS' : 'SECURITY_VIOLATION',
          code: doc.code,
          reason: doc.reason,
          name: t.text,
          guid: t.guid,
          attributes: t.attributes,
          against: 'anchors',
          mode: null,
          timestamp: verification.ok ? verification.timestamp : undefined,
          storedTimestamp: undefined,
          signer: verification.signer,
          allowedSigners: trusted.map((der) => {
            const c = describeCertificate(der);
            return {
              subject: c.subject,
              issuer: c.issuer,
              serialNumber: c.serialNumber,
              sha256: c.sha256,
              notAfter: c.notAfter.toISOString(),
            };
          }),
          trustedBy: verification.ok ? verification.trustedBy : undefined,
          chain: verification.ok ? verification.chain : [],
        }),
      );
      return accepted ? ExitCode.OK : ExitCode.FAILED;
    }
    if (problem === undefined) out.line(`${out.glyph('ok')} accepted: ${doc.reason}`);
    else {
      out.line(`${out.glyph('bad')} rejected (${problem.code}): ${problem.reason}`);
      if (!verification.ok && verification.signer !== undefined) out.line(`  signer:   ${verification.signer.subject}`);
      if (!verification.ok && problem.code === 'wrong-signer') {
        // Same subject, different certificate: only fingerprints tell them apart.
        const infos = trusted.map((der) => describeCertificate(der));
        const collide =
          verification.signer !== undefined && infos.some((c) => c.subject === verification.signer!.subject);
        const label = (c: { subject: string; sha256: string }) =>
          collide ? `${c.subject} (sha256 ${c.sha256})` : c.subject;
        if (collide && verification.signer !== undefined)
          out.line(
            `  signer sha256: ${verification.signer.sha256} (the same subject as an anchor, another certificate)`,
          );
        out.line(`  expected: ${infos.map(label).join(' | ')} (from ${anchors.join(', ')})`);
      }
    }
    return problem === undefined ? ExitCode.OK : ExitCode.FAILED;
  },
};

/**
 * The one JSON shape of `verify`, against a store or against anchors: the variable as `name` and
 * `guid`, times in ISO-8601 UTC with `Z`, certificates as summaries.
 */
function verifyDocument(d: {
  accepted: boolean;
  status: string;
  code: string | null;
  reason: string;
  name: string;
  guid: Uint8Array;
  attributes: number;
  against: 'store' | 'anchors';
  mode: string | null;
  timestamp: string | undefined;
  storedTimestamp: string | undefined;
  signer: CertificateSummary | undefined;
  allowedSigners: readonly (
    | CertificateSummary
    | { subject: string; issuer: string; serialNumber: string; sha256: string; notAfter: string }
  )[];
  trustedBy: CertificateSummary | undefined;
  chain: readonly CertificateSummary[];
}): unknown {
  const iso = (t: string | undefined): string | null => (t === undefined ? null : t.endsWith('Z') ? t : `${t}Z`);
  return {
    accepted: d.accepted,
    status: d.status,
    code: d.code,
    reason: d.reason,
    name: d.name,
    guid: guidToText(d.guid),
    attributes: d.attributes,
    attributesText: formatAttributes(d.attributes),
    append: (d.attributes & Attr.APPEND_WRITE) !== 0,
    against: d.against,
    mode: d.mode,
    timestamp: iso(d.timestamp),
    storedTimestamp: iso(d.storedTimestamp),
    signer: summaryJson(d.signer as CertificateSummary | undefined),
    allowedSigners: d.allowedSigners.map((c) => summaryJson(c as CertificateSummary)),
    trustedBy: summaryJson(d.trustedBy),
    chain: d.chain.map(summaryJson),
  };
}

function report(
  out: import('../output.js').Output,
  json: boolean,
  e: AuthExplanation,
  result: { status: bigint; reason?: string },
  target: { text: string; guid: Uint8Array; attributes: number },
): number {
  const accepted = result.status === EfiStatus.SUCCESS;
  // The authenticator's reason explains signature failures; the store's, everything else.
  const authFailed = e.status !== EfiStatus.SUCCESS;
  const reason = accepted ? e.reason : authFailed ? e.reason : (result.reason ?? e.reason);
  const code = accepted ? null : authFailed ? (e.code ?? 'refused') : 'refused-by-store';
  if (json) {
    out.json(
      verifyDocument({
        accepted,
        status: statusName(result.status),
        code,
        reason,
        name: target.text,
        guid: target.guid,
        attributes: target.attributes,
        against: 'store',
        mode: e.mode,
        timestamp: e.timestamp,
        storedTimestamp: e.storedTimestamp,
        signer: e.signer,
        allowedSigners: e.allowedSigners ?? [],
        trustedBy: e.trustedBy,
        chain: e.chain ?? [],
      }),
    );
    return accepted ? ExitCode.OK : ExitCode.FAILED;
  }
  if (accepted) {
    out.line(`${out.glyph('ok')} accepted (${e.mode} mode): ${reason}`);
    return ExitCode.OK;
  }
  const ex = explainStatus(result.status);
  out.line(`${out.glyph('bad')} rejected: EFI_${ex.name} (${code})`);
  out.line(`  reason:   ${reason}`);
  if (e.signer !== undefined) out.line(`  signer:   ${e.signer.subject}`);
  if (e.allowedSigners !== undefined && code === 'wrong-signer') {
    out.line(
      `  expected: ${e.allowedSigners.length === 0 ? '(no PK or KEK certificate enrolled)' : e.allowedSigners.map((c) => c.subject).join(' | ')}`,
    );
  }
  if (e.timestamp !== undefined && code === 'stale-timestamp')
    out.line(`  timestamp: ${e.timestamp}, stored ${e.storedTimestamp ?? '-'}`);
  if (code === 'bad-signature' && !e.append)
    out.line('  hint:     an update signed as an append verifies only as one: try --append');
  if (ex.fix !== undefined && !authFailed) out.line(`  fix:      ${ex.fix}`);
  return ExitCode.FAILED;
}

export const keysCreate: Command = {
  name: 'keys create',
  summary: 'generate PK, KEK and db keys and certificates, with ready .auth files',
  help: `usage: varstore keys create --out <dir> [--cn <name>] [--bits 2048|3072|4096] [--days <n>]
                            [--owner <guid>] [--timestamp <t>]
                            [--microsoft-kek none|2011|2023|all] [--microsoft-db none|windows|uefi|oprom|all]...

Generates three RSA keys and self-signed certificates ("<cn> PK", "<cn> KEK", "<cn> db"; default cn
"varstore"), their signature lists, and updates signed along the chain: PK.auth (self-signed),
KEK.auth (signed by PK), db.auth (signed by KEK), noPK.auth (deletes PK, back to setup mode).
--microsoft-kek/--microsoft-db add Microsoft's certificates to KEK.auth/db.auth. Files in <dir>:
{PK,KEK,db}.{key,crt,der,esl,auth}, noPK.auth, owner-guid.txt; existing files are never overwritten.
Enrol them with: varstore enroll <store> --pk <dir>/PK.auth --kek <dir>/KEK.auth --db <dir>/db.auth
(add --microsoft-db none when db.auth holds none of Microsoft's CAs: see \`varstore enroll --help\`)`,
  options: {
    out: { kind: 'value' },
    cn: { kind: 'value' },
    bits: { kind: 'value' },
    days: { kind: 'value' },
    owner: { kind: 'value' },
    timestamp: { kind: 'value' },
    'microsoft-kek': { kind: 'value' },
    'microsoft-db': { kind: 'values' },
    json: { kind: 'flag' },
  },
  async run(ctx) {
    const { args, out } = ctx;
    positionals(args, 'keys create', []);
    const dir = args.required('out');
    const bits = Number(args.value('bits') ?? '2048');
    if (![2048, 3072, 4096].includes(bits)) throw usageError('keys create: --bits is 2048, 3072 or 4096');
    const days = args.value('days') === undefined ? undefined : Number(args.value('days'));
    if (days !== undefined && (!Number.isInteger(days) || days < 1))
      throw usageError('keys create: --days is a positive whole number');
    const owner =
      args.value('owner') === undefined ? undefined : guidToText(parseGuid(args.value('owner')!, '--owner'));
    const timestamp =
      args.value('timestamp') === undefined
        ? ctx.io.now()
        : efiTimeToDate(parseEfiTime(parseTimestamp(args.value('timestamp')!, ctx.io.now()))!);
    const kekChoice = parseKekChoice(args.value('microsoft-kek'));
    const dbChoices = parseDbChoices(args.values('microsoft-db'));
    const extraKek = kekChoice === undefined ? [] : microsoftKeks(kekChoice);
    const extraDb = dbChoices === undefined ? [] : microsoftDbs(dbChoices);
    let set;
    try {
      set = await createKeySet({
        cn: args.value('cn') ?? 'varstore',
        bits: bits as RsaBits,
        ...(days !== undefined ? { days } : {}),
        ...(owner !== undefined ? { owner } : {}),
        timestamp,
        extra: {
          ...(extraKek.length > 0 ? { KEK: microsoftLists(extraKek) } : {}),
          ...(extraDb.length > 0 ? { db: microsoftLists(extraDb) } : {}),
        },
        outDir: dir,
      });
    } catch (e) {
      throw new CliError(`keys create: ${messageOf(e)}`, ExitCode.STORE);
    }
    if (args.flag('json')) {
      out.json({
        out: dir,
        owner: set.owner,
        files: keySetFiles(set).map((f) => ({ name: f.name, mode: `0${f.mode.toString(8)}` })),
      });
      return ExitCode.OK;
    }
    out.line(`${out.glyph('ok')} created keys in ${dir} (owner ${set.owner}):`);
    out.table(
      undefined,
      keySetFiles(set).map((f) => [`  ${f.name}`, f.mode === 0o600 ? 'private key (0600)' : describeFile(f.name)]),
    );
    out.note(
      `next: varstore enroll <store> --pk ${dir}/PK.auth --kek ${dir}/KEK.auth --db ${dir}/db.auth${extraDb.length > 0 ? '' : ' --microsoft-db none   (db.auth holds no Microsoft CA: Windows, shim and option ROMs will not run; --microsoft-db all when creating the keys keeps them)'}`,
    );
    return ExitCode.OK;
  },
};

function describeFile(name: string): string {
  if (name.endsWith('.crt')) return 'certificate (PEM)';
  if (name.endsWith('.der')) return 'certificate (DER)';
  if (name.endsWith('.esl')) return 'signature list';
  if (name === 'noPK.auth') return 'signed deletion of PK (back to setup mode)';
  if (name.endsWith('.auth')) return `signed update of ${name.slice(0, -5)}`;
  return 'owner GUID';
}
