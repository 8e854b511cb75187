/**
 * The in-process target: VariableStore.dispatch() with the real authenticator, every step checked
 * against the invariants, pending changes committed or rolled back as the step says.
 */
import { createAuthenticator } from '@vmsb/auth';
import {
  VariableStore,
  type AuthenticatedWrite,
  type Authenticator,
  type AuthResult,
  type PlatformSettings,
  type StoreView,
} from '@vmsb/efi';
import { EfiStatus, Limits, statusName } from '@vmsb/protocol';
import type { Corpus } from './corpus.js';
import type { VariableRef } from './generate.js';
import {
  checkPersistable,
  checkPlainWrite,
  checkReply,
  checkReplyAgainstStore,
  checkStore,
  sameState,
  type Violation,
} from './invariants.js';

export const FUZZ_PLATFORM: PlatformSettings = { secureBoot: true, authEnforce: true };

/** One step as it can be replayed. */
export interface StepRecord {
  /** The frame, hex. */
  readonly frame: string;
  readonly kind: string;
  /** In-process: the frame was zero-filled to the 64 KiB buffer (as the transports do) or dispatched as it is. */
  readonly padded?: boolean;
  /** In-process: how a pending change was settled. */
  readonly settle?: 'commit' | 'rollback';
  readonly transport?: 'oversize' | 'truncated';
}

/**
 * Wraps the authenticator: an exception is recorded (the contract says it never throws) before the
 * store sees it, and `explain` must reach the same decision as `verify`.
 */
class CheckedAuthenticator implements Authenticator {
  readonly violations: Violation[] = [];
  private readonly inner = createAuthenticator();

  verify(request: AuthenticatedWrite, view: StoreView): AuthResult {
    let result: AuthResult;
    try {
      result = this.inner.verify(request, view);
    } catch (e) {
      this.violations.push({ invariant: 'auth-exception', detail: `verify threw: ${(e as Error).stack ?? String(e)}` });
      throw e;
    }
    try {
      const explained = this.inner.explain(request, view);
      if (explained.status !== result.status) {
        this.violations.push({
          invariant: 'auth-explain',
          detail: `verify said ${statusName(result.status)}, explain said ${statusName(explained.status)}`,
        });
      }
    } catch (e) {
      this.violations.push({
        invariant: 'auth-exception',
        detail: `explain threw: ${(e as Error).stack ?? String(e)}`,
      });
    }
    return result;
  }
}

export function zeroFilled(frame: Uint8Array): Uint8Array {
  const buffer = new Uint8Array(Limits.BUFFER_SIZE);
  buffer.set(frame.subarray(0, Limits.BUFFER_SIZE));
  return buffer;
}

export class DispatchTarget {
  private store!: VariableStore;
  private authenticator!: CheckedAuthenticator;
  private known: VariableRef[] | undefined;
  /** The EFI status of the last step's reply (statistics). */
  lastStatus: bigint | undefined;

  constructor(
    private readonly corpus: Corpus,
    private readonly platform: PlatformSettings = FUZZ_PLATFORM,
  ) {
    this.reset();
  }

  reset(): void {
    this.known = undefined;
    this.authenticator = new CheckedAuthenticator();
    this.store = VariableStore.restore(this.corpus.state, {
      platform: this.platform,
      authenticator: this.authenticator,
      resume: false,
    });
  }

  /** The variables held now (cached until the next step). */
  names(): VariableRef[] {
    this.known ??= this.store.variables().map((v) => ({ name: v.name, guid: v.guid }));
    return this.known;
  }

  get current(): VariableStore {
    return this.store;
  }

  step(frame: Uint8Array, options: { padded: boolean; settle: 'commit' | 'rollback' }): Violation[] {
    const store = this.store;
    const buffer = options.padded ? zeroFilled(frame) : frame;
    const before = store.state();
    this.known = undefined;
    this.lastStatus = undefined;
    this.authenticator.violations.length = 0;
    let outcome;
    try {
      outcome = store.dispatch(buffer);
    } catch (e) {
      return [{ invariant: 'exception', detail: `dispatch threw: ${(e as Error).stack ?? String(e)}` }];
    }
    this.lastStatus = outcome.status;
    const violations: Violation[] = [...this.authenticator.violations];
    if (outcome.reason?.startsWith('internal error'))
      violations.push({ invariant: 'store-exception', detail: outcome.reason });
    const { violations: replyViolations, decoded, response } = checkReply(buffer, outcome.response);
    violations.push(...replyViolations);
    if (response !== undefined && response.status !== outcome.status) {
      violations.push({
        invariant: 'reply-status',
        detail: `the outcome says ${statusName(outcome.status)}, the reply ${statusName(response.status)}`,
      });
    }
    violations.push(...checkReplyAgainstStore(decoded, response, store));
    violations.push(...checkPlainWrite(decoded, outcome.status, store));

    if (outcome.pending !== undefined) {
      violations.push(...checkPersistable(outcome.pending.state, this.platform));
      if (options.settle === 'commit') {
        outcome.pending.commit();
        const differs = sameState(outcome.pending.state, store.state());
        if (differs !== undefined)
          violations.push({
            invariant: 'pending-state',
            detail: `the state handed out for persistence is not the state kept: ${differs}`,
          });
      } else {
        const reply = outcome.pending.rollback();
        this.lastStatus = EfiStatus.DEVICE_ERROR;
        const status =
          reply.length === 8 ? new DataView(reply.buffer, reply.byteOffset, 8).getBigUint64(0, true) : undefined;
        if (status !== EfiStatus.DEVICE_ERROR)
          violations.push({
            invariant: 'rollback-reply',
            detail: `rollback answered ${reply.length} bytes, status ${status === undefined ? '?' : statusName(status)}`,
          });
        const differs = sameState(before, store.state());
        if (differs !== undefined)
          violations.push({ invariant: 'rollback-state', detail: `rollback did not restore the store: ${differs}` });
      }
    } else {
      const differs = sameState(before, store.state(), { nonVolatileOnly: true, ignoreMor: true });
      if (differs !== undefined)
        violations.push({
          invariant: 'nv-change-unreported',
          detail: `non-volatile state changed without a pending change: ${differs}`,
        });
    }
    violations.push(...checkStore(store, this.platform));
    return violations;
  }
}
