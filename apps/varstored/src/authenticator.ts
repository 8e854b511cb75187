/**
 * The authenticator is loaded on first use: a boot that applies no auth file and receives no
 * authenticated write never needs the verifier (@vmsb/auth), so neither a start on xenopsd's path
 * nor an idle daemon's heap pays for evaluating it.
 *
 * It works under --chroot, which xenopsd always passes and after which no file outside the root can
 * be read: the daemon's build inlines @vmsb/auth into its one bundle (apps/varstored/tsup.config.ts;
 * the package's bundle is made from it and may import nothing but Node's own modules), where this
 * dynamic import is a call to the inlined module's initialiser and reads no file. Run unbundled (the
 * TypeScript sources), main.ts loads it before entering the chroot instead. Loading is asynchronous
 * and verify() is not: the service loads it when the first authenticated write was refused for want
 * of it, then dispatches that write again (apps/varstored/src/service.ts).
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
