/**
 * The authenticator is loaded on first use: verifying PKCS#7 needs pkijs/asn1js, which a boot
 * that applies no auth file and receives no authenticated write never touches.
 */
import type { AuthenticatedWrite, Authenticator, AuthResult, StoreView } from '@vmsb/efi';
import { EfiStatus } from '@vmsb/protocol';
import type { Logger } from './log.js';

export class LazyAuthenticator implements Authenticator {
  private impl: Authenticator | undefined;
  private loading: Promise<Authenticator> | undefined;
  private failure: string | undefined;

  constructor(private readonly log: Logger) {}

  /** Whether the authenticator is loaded and usable. */
  get loaded(): boolean {
    return this.impl !== undefined;
  }

  /** Loads @vmsb/auth once. Rejects (every time) with why it is unavailable. */
  load(): Promise<Authenticator> {
    this.loading ??= import('@vmsb/auth').then(
      (auth) => {
        this.impl = auth.createAuthenticator();
        this.log.debug('authenticated variables: verifier loaded');
        return this.impl;
      },
      (e: unknown) => {
        this.failure = `@vmsb/auth cannot be loaded (${(e as Error).message})`;
        throw new Error(this.failure);
      },
    );
    return this.loading;
  }

  verify(request: AuthenticatedWrite, view: StoreView): AuthResult {
    if (this.impl !== undefined) return this.impl.verify(request, view);
    // The daemon loads the verifier before dispatching any authenticated write; reaching this
    // means it could not be loaded, and an unverifiable write is refused as edk2 refuses it.
    return {
      status: EfiStatus.SECURITY_VIOLATION,
      reason: `signature verification is unavailable: ${this.failure ?? 'the verifier is not loaded'}`,
    };
  }
}
