import { createPrivateKey, createPublicKey, generateKeyPair as generateKeyPairCallback, KeyObject } from 'node:crypto';
import { looksLikePem, pemText } from './pem.js';

/** A private key: a node:crypto KeyObject, PEM text (PKCS#8 or PKCS#1), or DER bytes (PKCS#8 or PKCS#1) or PEM bytes. */
export type PrivateKeyInput = KeyObject | string | Uint8Array;

/** RSA modulus sizes UEFI firmware handles (edk2 verifies with OpenSSL; Microsoft's CAs use 2048 and 4096). */
export type RsaBits = 2048 | 3072 | 4096;
export const RSA_BITS: readonly RsaBits[] = [2048, 3072, 4096];

export interface KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

export interface GenerateKeyPairOptions {
  /** Default 2048. */
  readonly bits?: RsaBits;
}

/** A fresh RSA key pair (public exponent 65537). Asynchronous because 4096-bit generation takes seconds. */
export function generateKeyPair(options: GenerateKeyPairOptions = {}): Promise<KeyPair> {
  const bits = options.bits ?? 2048;
  if (!RSA_BITS.includes(bits))
    return Promise.reject(new RangeError(`RSA key size ${String(bits)} is not one of ${RSA_BITS.join(', ')}`));
  return new Promise((resolve, reject) => {
    generateKeyPairCallback('rsa', { modulusLength: bits, publicExponent: 0x10001 }, (err, publicKey, privateKey) => {
      if (err) reject(err);
      else resolve({ privateKey, publicKey });
    });
  });
}

export interface LoadPrivateKeyOptions {
  /** For encrypted PEM keys. */
  readonly passphrase?: string;
}

/** The RSA private key in `input`. Throws a TypeError naming the problem (not a key, not RSA, not private). */
export function loadPrivateKey(input: PrivateKeyInput, options: LoadPrivateKeyOptions = {}): KeyObject {
  let key: KeyObject;
  if (input instanceof KeyObject) {
    key = input;
  } else if (typeof input === 'string' || looksLikePem(input)) {
    key = createPrivateKey({
      key: pemText(input),
      format: 'pem',
      ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
    });
  } else {
    const der = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    try {
      key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } catch {
      key = createPrivateKey({ key: der, format: 'der', type: 'pkcs1' });
    }
  }
  if (key.type !== 'private') throw new TypeError(`expected a private key, got a ${key.type} key`);
  if (key.asymmetricKeyType !== 'rsa')
    throw new TypeError(`UEFI signatures use RSA keys, got ${key.asymmetricKeyType ?? 'an unknown key type'}`);
  return key;
}

/** The public half of a private key. */
export function publicKeyOf(key: KeyObject): KeyObject {
  return key.type === 'public' ? key : createPublicKey(key);
}

/** Modulus size of an RSA key in bits. */
export function keyBits(key: KeyObject): number {
  return key.asymmetricKeyDetails?.modulusLength ?? 0;
}

/** The private key as unencrypted PKCS#8 PEM ("PRIVATE KEY", what `openssl genpkey` writes and efitools reads). */
export function privateKeyToPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** The private key as unencrypted PKCS#8 DER. */
export function privateKeyToDer(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ type: 'pkcs8', format: 'der' }));
}

/** SubjectPublicKeyInfo DER of a key (public or private). */
export function subjectPublicKeyInfo(key: KeyObject): Uint8Array {
  return new Uint8Array(publicKeyOf(key).export({ type: 'spki', format: 'der' }));
}
