/**
 * Test support: keys, certificates and signed updates made at test time with the real tools
 * (openssl for keys, certificates and CMS signatures; efitools' sign-efi-sig-list as an independent
 * signer). Not part of the package's public surface.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Attr, Guids, guidToText, serializeEfiTime, type EfiTime } from '@vmsb/efi';
import { utf16le } from '@vmsb/protocol';
import { buildAuthentication2 } from '../authentication2.js';
import { signedContent } from '../pkcs7.js';

export const FIXTURES = fileURLToPath(new URL('../../fixtures/', import.meta.url));

export function fixture(path: string): Uint8Array {
  return new Uint8Array(readFileSync(join(FIXTURES, path)));
}

export function run(cmd: string, args: readonly string[], options: { cwd?: string; input?: Uint8Array } = {}): Buffer {
  return execFileSync(cmd, args, { cwd: options.cwd, input: options.input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export interface Issued {
  readonly name: string;
  readonly keyPath: string;
  readonly certPath: string;
  readonly der: Uint8Array;
}

export interface IssueOptions {
  /** Signs with this CA; self-signed when absent. */
  readonly issuer?: Issued;
  /** basicConstraints CA:TRUE (default: true when self-signed, false otherwise). */
  readonly ca?: boolean;
  /** Omit basicConstraints altogether. */
  readonly noBasicConstraints?: boolean;
  /** keyUsage value (openssl syntax). */
  readonly keyUsage?: string;
  /** Extra extension lines (openssl syntax). */
  readonly extraExtensions?: readonly string[];
  /** YYYYMMDDHHMMSSZ. */
  readonly notBefore?: string;
  readonly notAfter?: string;
  /** Hex serial (positive). */
  readonly serial?: string;
  /** `rsa:2048` (default), `rsa:1024` (quick), `rsa:3072`, `ec` (P-256). */
  readonly key?: 'rsa:1024' | 'rsa:2048' | 'rsa:3072' | 'ec';
  /** Full -subj value; default `/CN=<name>`. */
  readonly subject?: string;
  /** Certificate signature digest (default sha256). */
  readonly md?: 'sha256' | 'sha1' | 'sha384';
  /** Reuse this key (a path) instead of generating one. */
  readonly keyPath?: string;
  /** Leave out subjectKeyIdentifier/authorityKeyIdentifier. */
  readonly noKeyIdentifiers?: boolean;
  /** openssl string_mask for the subject (`pkix` gives BMPString for non-ASCII names). */
  readonly stringMask?: string;
}

/** A scratch directory with a minimal openssl CA database, removed by `dispose`. */
export class Pki {
  readonly dir = mkdtempSync(join(tmpdir(), 'vmsb-auth-'));
  private serial = 0x1000;
  private files = 0;

  constructor() {
    writeFileSync(join(this.dir, 'index.txt'), '');
    writeFileSync(
      join(this.dir, 'ca.cnf'),
      [
        '[ ca ]',
        'default_ca = CA_default',
        '[ CA_default ]',
        `dir = ${this.dir}`,
        `database = ${join(this.dir, 'index.txt')}`,
        `new_certs_dir = ${this.dir}`,
        `serial = ${join(this.dir, 'serial')}`,
        'default_md = sha256',
        'policy = policy_any',
        'unique_subject = no',
        'copy_extensions = none',
        'email_in_dn = no',
        'preserve = yes',
        '[ policy_any ]',
        'commonName = optional',
        '[ req ]',
        'distinguished_name = dn',
        '[ dn ]',
        '',
      ].join('\n'),
    );
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Issues a certificate (through `openssl ca`, so any validity period can be set). */
  issue(name: string, options: IssueOptions = {}): Issued {
    const stem = `c${this.files++}`;
    const keyPath = this.path(`${stem}.key`);
    const csrPath = this.path(`${stem}.csr`);
    const certPath = this.path(`${stem}.pem`);
    const keyArgs =
      options.keyPath !== undefined
        ? ['-key', options.keyPath]
        : options.key === 'ec'
          ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', keyPath]
          : ['-newkey', options.key ?? 'rsa:2048', '-keyout', keyPath];
    const cnf = this.path(`${stem}.req.cnf`);
    writeFileSync(cnf, `[ req ]\ndistinguished_name = dn\nstring_mask = ${options.stringMask ?? 'utf8only'}\n[ dn ]\n`);
    run('openssl', [
      'req',
      '-new',
      ...keyArgs,
      '-nodes',
      '-out',
      csrPath,
      '-subj',
      options.subject ?? `/CN=${name}`,
      '-config',
      cnf,
      '-utf8',
    ]);
    if (options.keyPath !== undefined) writeFileSync(keyPath, readFileSync(options.keyPath));
    const selfSigned = options.issuer === undefined;
    const ca = options.ca ?? selfSigned;
    const ext: string[] = ['[ v3 ]'];
    if (options.noBasicConstraints !== true) ext.push(`basicConstraints = critical, CA:${ca ? 'TRUE' : 'FALSE'}`);
    if (options.keyUsage !== undefined) ext.push(`keyUsage = ${options.keyUsage}`);
    if (options.noKeyIdentifiers === true) {
      ext.push('subjectKeyIdentifier = none', 'authorityKeyIdentifier = none');
    } else {
      ext.push('subjectKeyIdentifier = hash');
      if (!selfSigned) ext.push('authorityKeyIdentifier = keyid');
    }
    ext.push(...(options.extraExtensions ?? []));
    const extPath = this.path(`${stem}.ext`);
    writeFileSync(extPath, `${ext.join('\n')}\n`);
    writeFileSync(this.path('serial'), `${options.serial ?? (this.serial++).toString(16)}\n`);
    const args = [
      'ca',
      '-batch',
      '-config',
      this.path('ca.cnf'),
      '-in',
      csrPath,
      '-out',
      certPath,
      '-notext',
      '-startdate',
      options.notBefore ?? '20200101000000Z',
      '-enddate',
      options.notAfter ?? '20491231000000Z',
      '-extfile',
      extPath,
      '-extensions',
      'v3',
      '-md',
      options.md ?? 'sha256',
      '-utf8',
    ];
    if (selfSigned) args.push('-selfsign', '-keyfile', keyPath);
    else args.push('-cert', options.issuer.certPath, '-keyfile', options.issuer.keyPath);
    run('openssl', args);
    const der = new Uint8Array(run('openssl', ['x509', '-in', certPath, '-outform', 'DER']));
    return { name, keyPath, certPath, der };
  }

  /**
   * A detached CMS/PKCS#7 signature by openssl over `content`: DER, bare SignedData unless
   * `wrapped`, with or without signed attributes, with extra certificates carried along.
   */
  sign(
    content: Uint8Array,
    signer: Issued,
    options: {
      signedAttributes?: boolean;
      wrapped?: boolean;
      extra?: readonly Issued[];
      md?: string;
      noCerts?: boolean;
      /** Embed the content in the message as well (openssl -nodetach). */
      embedContent?: boolean;
    } = {},
  ): Uint8Array {
    const inPath = this.path('content.bin');
    writeFileSync(inPath, content);
    const args = [
      'cms',
      '-sign',
      '-binary',
      '-in',
      inPath,
      '-signer',
      signer.certPath,
      '-inkey',
      signer.keyPath,
      '-outform',
      'DER',
      '-md',
      options.md ?? 'sha256',
      '-nosmimecap',
    ];
    if (options.signedAttributes !== true) args.push('-noattr');
    if (options.noCerts === true) args.push('-nocerts');
    if (options.embedContent === true) args.push('-nodetach');
    if (options.extra !== undefined && options.extra.length > 0) {
      const chainPath = this.path('chain.pem');
      writeFileSync(chainPath, options.extra.map((c) => readFileSync(c.certPath, 'latin1')).join(''));
      args.push('-certfile', chainPath);
    }
    const wrapped = new Uint8Array(run('openssl', args));
    return options.wrapped === true ? wrapped : unwrapContentInfo(wrapped);
  }

  /**
   * openssl's own verdict, with the flags edk2 and varstored use: partial chains, no time checks,
   * any purpose, the anchor as the only trusted certificate. `cms` must be a ContentInfo.
   */
  opensslVerifies(cms: Uint8Array, content: Uint8Array, anchor: Issued): boolean {
    const p7 = this.path('oracle.p7');
    const data = this.path('oracle.bin');
    writeFileSync(p7, cms);
    writeFileSync(data, content);
    try {
      run('openssl', [
        'smime',
        '-verify',
        '-binary',
        '-inform',
        'DER',
        '-in',
        p7,
        '-content',
        data,
        '-CAfile',
        anchor.certPath,
        '-partial_chain',
        '-no_check_time',
        '-purpose',
        'any',
        '-out',
        '/dev/null',
      ]);
      return true;
    } catch {
      return false;
    }
  }

  /** An EFI signature list holding one certificate, by efitools' cert-to-efi-sig-list. */
  esl(cert: Issued, owner = '77fa9abd-0359-4d32-bd60-28f4e78f784b'): Uint8Array {
    const out = this.path('cert.esl');
    run('cert-to-efi-sig-list', ['-g', owner, cert.certPath, out]);
    return new Uint8Array(readFileSync(out));
  }

  /** A .auth made by efitools' sign-efi-sig-list (its own serialization and PKCS#7). */
  efitoolsAuth(
    variable: string,
    payload: Uint8Array,
    signer: Issued,
    options: { timestamp: string; append?: boolean; vendorGuid?: Uint8Array },
  ): Uint8Array {
    const inPath = this.path('payload.esl');
    const outPath = this.path('out.auth');
    writeFileSync(inPath, payload);
    const args = ['-t', options.timestamp, '-k', signer.keyPath, '-c', signer.certPath];
    if (options.append === true) args.push('-a');
    if (options.vendorGuid !== undefined) args.push('-g', guidToText(options.vendorGuid));
    run('sign-efi-sig-list', [...args, variable, inPath, outPath]);
    return new Uint8Array(readFileSync(outPath));
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The SignedData inside a ContentInfo produced by openssl (strips the ContentInfo header). */
export function unwrapContentInfo(der: Uint8Array): Uint8Array {
  // ContentInfo: 30 len { 06 09 <signedData OID> a0 len { SignedData } }
  let p = 0;
  const skipHeader = (): number => {
    p++;
    const first = der[p++]!;
    if (first < 0x80) return first;
    let len = 0;
    for (let i = 0; i < (first & 0x7f); i++) len = len * 256 + der[p++]!;
    return len;
  };
  skipHeader();
  p += 11; // the OID element
  skipHeader();
  const start = p;
  skipHeader();
  return der.slice(start);
}

export function time(year: number, month = 1, day = 1, hour = 0, minute = 0, second = 0): Uint8Array {
  return serializeEfiTime({ year, month, day, hour, minute, second } as Partial<EfiTime>);
}

export const ATTRS =
  Attr.NON_VOLATILE | Attr.BOOTSERVICE_ACCESS | Attr.RUNTIME_ACCESS | Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS;

export interface SignedWrite {
  readonly name: string;
  readonly guid?: Uint8Array;
  readonly payload: Uint8Array;
  readonly timestamp: Uint8Array;
  readonly signer?: Issued;
  readonly append?: boolean;
  /** Attributes stored (default NV|BS|RT|AT). */
  readonly attributes?: number;
  readonly extra?: readonly Issued[];
  readonly signedAttributes?: boolean;
  readonly wrapped?: boolean;
}

/** The standard GUID for a Secure Boot variable name. */
export function guidFor(name: string): Uint8Array {
  return name === 'db' || name === 'dbx' || name === 'dbt' ? Guids.IMAGE_SECURITY_DATABASE : Guids.GLOBAL_VARIABLE;
}

/** EFI_VARIABLE_AUTHENTICATION_2 || payload signed by openssl over the UEFI serialization (unsigned without a signer). */
export function authenticated(pki: Pki, w: SignedWrite): Uint8Array {
  const guid = w.guid ?? guidFor(w.name);
  const attributes = (w.attributes ?? ATTRS) | (w.append === true ? Attr.APPEND_WRITE : 0);
  const content = signedContent(utf16le(w.name), guid, attributes, w.timestamp, w.payload);
  const sig =
    w.signer === undefined
      ? new Uint8Array(0)
      : pki.sign(content, w.signer, {
          ...(w.extra !== undefined ? { extra: w.extra } : {}),
          signedAttributes: w.signedAttributes ?? false,
          wrapped: w.wrapped ?? false,
        });
  return buildAuthentication2(w.timestamp, sig, w.payload);
}
