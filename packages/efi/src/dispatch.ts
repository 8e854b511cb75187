/**
 * The wire side of the store: one guest request decoded, routed and answered. GetVariable,
 * GetNextVariableName, QueryVariableInfo and NotifySBFailure are answered here; SetVariable's rules
 * are in set-variable.ts, and its change is made a transaction (transaction.ts).
 */
import {
  EfiStatus,
  Limits,
  decodeRequest,
  encodeResponse,
  encodeStatus,
  encodedResponseSize,
  type GetNextVariableNameRequest,
  type GetVariableRequest,
  type NotifySBFailureRequest,
  type QueryVariableInfoRequest,
  type Request,
  type Response,
} from '@vmsb/protocol';
import { ATTRIBUTES_MASK, Attr } from './attributes.js';
import { setVariableRules } from './set-variable.js';
import { describe, keyOf, type StoreCore } from './store-core.js';
import { openPending, restoreSnapshot, snapshot } from './transaction.js';
import type { DispatchOutcome } from './types.js';
import type { Variable } from './variable.js';

/**
 * Handles one request from the guest buffer and returns the bytes to copy back; never throws.
 * `request` must be the private copy of guest memory the transport made (docs/architecture.md §1:
 * guest memory is copied once, by the transport), unchanged during the call. It is decoded in place, at most
 * its first 64 KiB, and nothing of it is kept: what the store keeps, it copies.
 */
export function dispatchRequest(core: StoreCore, request: Uint8Array): DispatchOutcome {
  if (!(request instanceof Uint8Array)) return statusOutcome(EfiStatus.DEVICE_ERROR, 'the request is not a byte array');
  if (core.pendingOpen)
    return statusOutcome(EfiStatus.DEVICE_ERROR, 'a previous change is still waiting for commit or rollback');
  const decoded = decodeRequest(request);
  if (!decoded.ok) return statusOutcome(decoded.status, decoded.reason);
  const r = decoded.request;
  // Only SetVariable changes variables; reads need no undo point.
  const before = r.command === 'SetVariable' ? snapshot(core) : undefined;
  try {
    switch (r.command) {
      case 'GetVariable':
        return respond(r, handleGetVariable(core, r));
      case 'GetNextVariableName':
        return respond(r, handleGetNext(core, r));
      case 'QueryVariableInfo':
        return respond(r, handleQuery(core, r));
      case 'NotifySBFailure':
        return handleNotify(core, r);
      case 'SetVariable': {
        if (r.atRuntime) core.runtime = true;
        const result = setVariableRules(core, r, core.runtime);
        const response = encode({ command: 'SetVariable', status: result.status });
        if (result.persist !== true)
          return withReason({ response, command: 'SetVariable', status: result.status, request: r }, result.reason);
        const pending = openPending(core, before!, () =>
          encode({ command: 'SetVariable', status: EfiStatus.DEVICE_ERROR }),
        );
        return withReason(
          { response, command: 'SetVariable', status: result.status, request: r, pending },
          result.reason,
        );
      }
    }
  } catch (e) {
    // Nothing a guest sends should get here; if it does, leave the store as it was.
    if (before !== undefined) restoreSnapshot(core, before);
    return {
      ...statusOutcome(EfiStatus.DEVICE_ERROR, `internal error: ${e instanceof Error ? e.message : String(e)}`),
      command: r.command,
      request: r,
    };
  }
}

function handleGetVariable(core: StoreCore, r: GetVariableRequest): { response: Response; reason?: string } {
  if (r.atRuntime) core.runtime = true;
  const status = (s: bigint, reason: string) => ({
    response: { command: 'GetVariable' as const, status: s },
    reason,
  });
  if (r.name.length === 0) return status(EfiStatus.NOT_FOUND, 'empty name');
  if (r.name.length > Limits.NAME_MAX)
    return status(EfiStatus.DEVICE_ERROR, `name of ${r.name.length} bytes exceeds ${Limits.NAME_MAX}`);
  const v = core.lookup(r.name, r.guid);
  if (v === undefined || (core.runtime && (v.attributes & Attr.RUNTIME_ACCESS) === 0)) {
    // Probing for variables is most of a boot: a constant reason (the request names the variable).
    return status(EfiStatus.NOT_FOUND, v === undefined ? 'no such variable' : 'the variable is not visible at runtime');
  }
  if (r.dataSize < v.data.length) {
    return { response: { command: 'GetVariable', status: EfiStatus.BUFFER_TOO_SMALL, requiredSize: v.data.length } };
  }
  return { response: { command: 'GetVariable', status: EfiStatus.SUCCESS, attributes: v.attributes, data: v.data } };
}

function handleGetNext(core: StoreCore, r: GetNextVariableNameRequest): { response: Response; reason?: string } {
  if (r.atRuntime) core.runtime = true;
  const status = (s: bigint, reason: string) => ({
    response: { command: 'GetNextVariableName' as const, status: s },
    reason,
  });
  if (r.name.length > Limits.NAME_MAX)
    return status(EfiStatus.DEVICE_ERROR, `name of ${r.name.length} bytes exceeds ${Limits.NAME_MAX}`);
  // The caller's buffer must hold the previous name and its terminator (edk2: NUL within VariableNameSize).
  if (r.nameSize < r.name.length + 2)
    return status(EfiStatus.INVALID_PARAMETER, `name buffer of ${r.nameSize} bytes cannot hold the previous name`);
  const visible = (v: Variable): boolean => !core.runtime || (v.attributes & Attr.RUNTIME_ACCESS) !== 0;
  const vars = core.vars;
  let next: Variable | undefined;
  if (r.name.length === 0) {
    for (const v of vars.values()) {
      if (visible(v)) {
        next = v;
        break;
      }
    }
  } else {
    const key = keyOf(r.name, r.guid);
    const prev = vars.get(key);
    if (prev === undefined || !visible(prev))
      return status(EfiStatus.INVALID_PARAMETER, `previous variable ${describe(r.name, r.guid)} does not exist`);
    // An enumeration is n calls: finding the previous name by position keeps each one O(1).
    const { keys, at } = core.enumeration();
    for (let i = at.get(key)! + 1; i < keys.length; i++) {
      const v = vars.get(keys[i]!)!;
      if (visible(v)) {
        next = v;
        break;
      }
    }
  }
  if (next === undefined) return status(EfiStatus.NOT_FOUND, 'end of the enumeration');
  if (r.nameSize < next.name.length + 2) {
    return {
      response: {
        command: 'GetNextVariableName',
        status: EfiStatus.BUFFER_TOO_SMALL,
        requiredSize: next.name.length + 2,
      },
    };
  }
  return {
    response: { command: 'GetNextVariableName', status: EfiStatus.SUCCESS, name: next.name, guid: next.guid },
  };
}

function handleQuery(core: StoreCore, r: QueryVariableInfoRequest): { response: Response; reason?: string } {
  const a = r.attributes >>> 0;
  const status = (s: bigint, reason: string) => ({
    response: { command: 'QueryVariableInfo' as const, status: s },
    reason,
  });
  // edk2 VariableServiceQueryVariableInfo, in its order.
  if (a === 0) return status(EfiStatus.INVALID_PARAMETER, 'no attributes');
  if ((a & Attr.AUTHENTICATED_WRITE_ACCESS) !== 0)
    return status(EfiStatus.UNSUPPORTED, 'AUTHENTICATED_WRITE_ACCESS is deprecated');
  if ((a & ATTRIBUTES_MASK) === 0) return status(EfiStatus.UNSUPPORTED, 'no supported attribute');
  if ((a & ATTRIBUTES_MASK) === Attr.NON_VOLATILE) return status(EfiStatus.INVALID_PARAMETER, 'NON_VOLATILE alone');
  if ((a & (Attr.RUNTIME_ACCESS | Attr.BOOTSERVICE_ACCESS)) === Attr.RUNTIME_ACCESS)
    return status(EfiStatus.INVALID_PARAMETER, 'RUNTIME_ACCESS without BOOTSERVICE_ACCESS');
  if (core.runtime && (a & Attr.RUNTIME_ACCESS) === 0)
    return status(EfiStatus.INVALID_PARAMETER, 'at runtime RUNTIME_ACCESS is required');
  if ((a & (Attr.NON_VOLATILE | Attr.HARDWARE_ERROR_RECORD)) === Attr.HARDWARE_ERROR_RECORD)
    return status(EfiStatus.INVALID_PARAMETER, 'HARDWARE_ERROR_RECORD without NON_VOLATILE');
  // No hardware error record storage (OVMF's PcdHwErrStorageSize = 0), whatever else is set.
  if ((a & Attr.HARDWARE_ERROR_RECORD) !== 0) return status(EfiStatus.UNSUPPORTED, 'no hardware error record storage');
  const used = core.usedStorage;
  return {
    response: {
      command: 'QueryVariableInfo',
      status: EfiStatus.SUCCESS,
      maximumStorageSize: Limits.TOTAL_MAX,
      remainingStorageSize: Math.max(0, Limits.TOTAL_MAX - used),
      maximumVariableSize: Limits.DATA_MAX,
    },
  };
}

/**
 * The guest failed Secure Boot verification. One alert per store, as varstored raises one per daemon:
 * a guest must not flood the toolstack. Raising it is the owner's I/O (raiseSecureBootFailureAlert).
 */
function handleNotify(core: StoreCore, r: NotifySBFailureRequest): DispatchOutcome {
  if (core.sbFailureNotified) {
    return {
      ...respond(r, { response: { command: 'NotifySBFailure', status: EfiStatus.ACCESS_DENIED } }),
      reason: 'the Secure Boot failure alert was already raised',
    };
  }
  core.sbFailureNotified = true;
  return {
    ...respond(r, { response: { command: 'NotifySBFailure', status: EfiStatus.SUCCESS } }),
    raiseSecureBootFailureAlert: true,
  };
}

export function encode(response: Response): Uint8Array {
  const out = new Uint8Array(encodedResponseSize(response));
  encodeResponse(response, out);
  return out;
}

function respond(request: Request, r: { response: Response; reason?: string }): DispatchOutcome {
  return withReason(
    { response: encode(r.response), command: r.response.command, status: r.response.status, request },
    r.reason,
  );
}

function withReason(outcome: DispatchOutcome, reason: string | undefined): DispatchOutcome {
  return reason === undefined || outcome.status === EfiStatus.SUCCESS ? outcome : { ...outcome, reason };
}

function statusOutcome(status: bigint, reason: string): DispatchOutcome {
  const response = new Uint8Array(8);
  encodeStatus(status, response);
  return { response, status, reason };
}
