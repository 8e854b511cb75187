import { parseCertificate, type CertificateResult } from './x509.js';

/**
 * Parsed certificates keyed by their exact bytes. Trust anchors (the PK and KEK certificates) are
 * parsed, and their keys imported, once instead of on every authenticated write. Bounded: the
 * oldest entries go first.
 */
export class CertificateCache {
  private readonly entries = new Map<string, CertificateResult>();

  constructor(readonly capacity = 256) {}

  parse(der: Uint8Array): CertificateResult {
    const key = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1');
    const hit = this.entries.get(key);
    if (hit !== undefined) return hit;
    const result = parseCertificate(der);
    if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(key, result);
    return result;
  }

  get size(): number {
    return this.entries.size;
  }
}
