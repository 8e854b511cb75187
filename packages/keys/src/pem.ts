/** PEM armour (RFC 7468): base64 of DER between `-----BEGIN <label>-----` and `-----END <label>-----`. */

export interface PemBlock {
  readonly label: string;
  readonly der: Uint8Array;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** Every PEM block in `text`, in order; text outside the blocks (OpenSSL's "Bag Attributes", comments) is ignored. */
export function decodePem(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    const body = m[2]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new TypeError(`the PEM block "${m[1]}" is not valid base64`);
    out.push({ label: m[1]!, der: new Uint8Array(Buffer.from(body, 'base64')) });
  }
  return out;
}

/** PEM text of `der` with 64-character lines and a final newline. */
export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}${lines.length > 0 ? '\n' : ''}-----END ${label}-----\n`;
}

/** Whether bytes read from a file are PEM text rather than DER. */
export function looksLikePem(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 4096)).toString('latin1');
  return head.includes('-----BEGIN ');
}

/** Text of PEM bytes. */
export function pemText(input: string | Uint8Array): string {
  return typeof input === 'string'
    ? input
    : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('latin1');
}
