/**
 * What must hold after every step, whatever the guest sent: the reply is a well-formed answer to
 * the request (or to its decode error) and fits the buffer; what it says agrees with the store;
 * the store's own invariants hold (names, sizes, totals, attributes, modes, signature databases);
 * and a change handed out for persistence round-trips through the VARS blob and restores.
 */
import {
  Attr,
  Guids,
  MorLockState,
  Names,
  VariableStore,
  bytesEqual,
  nameProblem,
  parseSignatureLists,
  variablesEqual,
  type PlatformSettings,
  type StoreState,
  type Variable,
} from '@vmsb/efi';
import { decodeVarsBlob, encodeVarsBlob } from '@vmsb/nvram';
import {
  EfiStatus,
  Limits,
  decodeRequest,
  decodeResponse,
  encodedResponseSize,
  fromUtf16le,
  guidToText,
  statusName,
  type DecodedRequest,
  type Response,
} from '@vmsb/protocol';

export interface Violation {
  /** Which invariant (stable identifier). */
  readonly invariant: string;
  readonly detail: string;
}

const KNOWN_STATUSES = new Set<bigint>(Object.values(EfiStatus));
const STORABLE =
  Attr.NON_VOLATILE | Attr.BOOTSERVICE_ACCESS | Attr.RUNTIME_ACCESS | Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS;
const POLICY_NAMES: readonly { name: string; guid: Uint8Array }[] = [
  { name: 'PK', guid: Guids.GLOBAL_VARIABLE },
  { name: 'KEK', guid: Guids.GLOBAL_VARIABLE },
  { name: 'db', guid: Guids.IMAGE_SECURITY_DATABASE },
  { name: 'dbx', guid: Guids.IMAGE_SECURITY_DATABASE },
  { name: 'dbt', guid: Guids.IMAGE_SECURITY_DATABASE },
];

function label(name: Uint8Array, guid: Uint8Array): string {
  const text = fromUtf16le(name.subarray(0, 96)).replace(/[^\x20-\x7e]/g, '?');
  return `${guid.length === 16 ? guidToText(guid) : `guid(${guid.length})`}:${JSON.stringify(text)}${name.length > 96 ? '…' : ''}`;
}

function readStatus(reply: Uint8Array): bigint | undefined {
  if (reply.length < 8) return undefined;
  return new DataView(reply.buffer, reply.byteOffset, 8).getBigUint64(0, true);
}

/**
 * The reply alone: its size, its status, and that it decodes as an answer to the request with no
 * byte missing or left over. Returns the decoded request and response for further checks.
 */
export function checkReply(
  request: Uint8Array,
  reply: Uint8Array,
): { violations: Violation[]; decoded: DecodedRequest; response?: Response } {
  const violations: Violation[] = [];
  const decoded = decodeRequest(request);
  if (!(reply instanceof Uint8Array))
    return { violations: [{ invariant: 'reply-type', detail: 'the reply is not bytes' }], decoded };
  if (reply.length > Limits.BUFFER_SIZE)
    violations.push({
      invariant: 'reply-size',
      detail: `${reply.length} bytes exceed the ${Limits.BUFFER_SIZE}-byte buffer`,
    });
  const status = readStatus(reply);
  if (status === undefined) {
    violations.push({ invariant: 'reply-size', detail: `a ${reply.length}-byte reply has no status` });
    return { violations, decoded };
  }
  if (!KNOWN_STATUSES.has(status))
    violations.push({ invariant: 'reply-status', detail: `unknown status ${statusName(status)}` });
  if (!decoded.ok) {
    if (reply.length !== 8)
      violations.push({
        invariant: 'reply-framing',
        detail: `an undecodable request got ${reply.length} bytes, not its status alone`,
      });
    if (status !== decoded.status) {
      violations.push({
        invariant: 'reply-decode-status',
        detail: `undecodable request (${decoded.reason}) answered ${statusName(status)}, expected ${statusName(decoded.status)}`,
      });
    }
    return { violations, decoded };
  }
  const r = decoded.request;
  const parsed = decodeResponse(r.command, reply);
  if (!parsed.ok) {
    violations.push({
      invariant: 'reply-framing',
      detail: `the reply to ${r.command} does not decode: ${parsed.reason}`,
    });
    return { violations, decoded };
  }
  const response = parsed.response;
  let expectedSize: number | undefined;
  try {
    expectedSize = encodedResponseSize(response);
  } catch (e) {
    violations.push({
      invariant: 'reply-framing',
      detail: `the reply to ${r.command} is incomplete: ${(e as Error).message}`,
    });
  }
  if (expectedSize !== undefined && expectedSize !== reply.length) {
    violations.push({
      invariant: 'reply-framing',
      detail: `the reply to ${r.command} is ${reply.length} bytes, its content ${expectedSize}`,
    });
  }
  const s = response.status;
  switch (response.command) {
    case 'GetVariable': {
      if (r.command !== 'GetVariable') break;
      if (s === EfiStatus.SUCCESS) {
        const data = response.data!;
        if (data.length === 0 || data.length > Limits.DATA_MAX)
          violations.push({ invariant: 'get-size', detail: `GetVariable returned ${data.length} bytes` });
        if (data.length > r.dataSize)
          violations.push({
            invariant: 'get-capacity',
            detail: `GetVariable returned ${data.length} bytes into a ${r.dataSize}-byte buffer`,
          });
        if ((response.attributes! & ~STORABLE) !== 0)
          violations.push({
            invariant: 'get-attributes',
            detail: `GetVariable returned attributes 0x${response.attributes!.toString(16)}`,
          });
      } else if (s === EfiStatus.BUFFER_TOO_SMALL) {
        const needed = response.requiredSize!;
        if (needed <= r.dataSize || needed > Limits.DATA_MAX)
          violations.push({
            invariant: 'get-capacity',
            detail: `BUFFER_TOO_SMALL asks for ${needed} bytes, the buffer has ${r.dataSize}`,
          });
      }
      break;
    }
    case 'GetNextVariableName': {
      if (r.command !== 'GetNextVariableName') break;
      if (s === EfiStatus.SUCCESS) {
        const name = response.name!;
        const problem = nameProblem(name);
        if (problem !== undefined || name.length > Limits.NAME_MAX)
          violations.push({
            invariant: 'getnext-name',
            detail: `GetNextVariableName returned a bad name: ${problem ?? `${name.length} bytes`}`,
          });
        if (name.length + 2 > r.nameSize)
          violations.push({
            invariant: 'getnext-capacity',
            detail: `a ${name.length}-byte name (plus NUL) does not fit ${r.nameSize} bytes`,
          });
      } else if (s === EfiStatus.BUFFER_TOO_SMALL) {
        const needed = response.requiredSize!;
        if (needed <= r.nameSize || needed > Limits.NAME_MAX + 2)
          violations.push({
            invariant: 'getnext-capacity',
            detail: `BUFFER_TOO_SMALL asks for ${needed} bytes, the buffer has ${r.nameSize}`,
          });
      }
      break;
    }
    case 'QueryVariableInfo': {
      if (s === EfiStatus.SUCCESS) {
        if (
          response.maximumStorageSize !== Limits.TOTAL_MAX ||
          response.maximumVariableSize !== Limits.DATA_MAX ||
          response.remainingStorageSize! > Limits.TOTAL_MAX
        ) {
          violations.push({
            invariant: 'query-values',
            detail: `QueryVariableInfo: ${response.maximumStorageSize}/${response.remainingStorageSize}/${response.maximumVariableSize}`,
          });
        }
      }
      break;
    }
    default:
      break;
  }
  return { violations, decoded, response };
}

/** The reply agrees with the store it came from (checked right after the request). */
export function checkReplyAgainstStore(
  decoded: DecodedRequest,
  response: Response | undefined,
  store: VariableStore,
): Violation[] {
  if (!decoded.ok || response === undefined) return [];
  const r = decoded.request;
  const out: Violation[] = [];
  const visible = (v: Variable | undefined): v is Variable =>
    v !== undefined && (!store.atRuntime || (v.attributes & Attr.RUNTIME_ACCESS) !== 0);
  if (r.command === 'GetVariable' && response.command === 'GetVariable') {
    const stored = r.guid.length === 16 ? store.getVariable(r.name, r.guid) : undefined;
    if (response.status === EfiStatus.SUCCESS) {
      if (!visible(stored) || !bytesEqual(stored.data, response.data!) || stored.attributes !== response.attributes) {
        out.push({
          invariant: 'get-consistent',
          detail: `GetVariable ${label(r.name, r.guid)} returned what the store does not hold`,
        });
      }
    } else if (response.status === EfiStatus.NOT_FOUND) {
      if (visible(stored) && r.name.length > 0)
        out.push({
          invariant: 'get-consistent',
          detail: `GetVariable ${label(r.name, r.guid)}: NOT_FOUND for a visible variable`,
        });
    } else if (response.status === EfiStatus.BUFFER_TOO_SMALL) {
      if (!visible(stored) || stored.data.length !== response.requiredSize)
        out.push({
          invariant: 'get-consistent',
          detail: `GetVariable ${label(r.name, r.guid)}: BUFFER_TOO_SMALL with the wrong size`,
        });
    }
  }
  if (
    r.command === 'GetNextVariableName' &&
    response.command === 'GetNextVariableName' &&
    response.status === EfiStatus.SUCCESS
  ) {
    if (!visible(store.getVariable(response.name!, response.guid!))) {
      out.push({
        invariant: 'getnext-consistent',
        detail: `GetNextVariableName returned ${label(response.name!, response.guid!)}, which the store does not show`,
      });
    }
  }
  if (
    r.command === 'QueryVariableInfo' &&
    response.command === 'QueryVariableInfo' &&
    response.status === EfiStatus.SUCCESS
  ) {
    const expected = Math.max(0, Limits.TOTAL_MAX - store.usedStorage);
    if (response.remainingStorageSize !== expected)
      out.push({
        invariant: 'query-values',
        detail: `remaining ${response.remainingStorageSize}, the store has ${expected} free`,
      });
  }
  return out;
}

/**
 * A plain (unauthenticated) SetVariable answered SUCCESS did what it says: the value is stored, or
 * the variable is gone. Checked right after the request, before the change is settled.
 */
export function checkPlainWrite(decoded: DecodedRequest, status: bigint, store: VariableStore): Violation[] {
  if (!decoded.ok || decoded.request.command !== 'SetVariable' || status !== EfiStatus.SUCCESS) return [];
  const r = decoded.request;
  const a = r.attributes >>> 0;
  if ((a & (Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS | Attr.AUTHENTICATED_WRITE_ACCESS)) !== 0) return [];
  // The MOR lock stores its state, not the bytes written.
  if (
    bytesEqual(r.name, Names.MemoryOverwriteRequestControlLock.name) &&
    bytesEqual(r.guid, Names.MemoryOverwriteRequestControlLock.guid)
  )
    return [];
  const stored = store.getVariable(r.name, r.guid);
  const append = (a & Attr.APPEND_WRITE) !== 0;
  const deletes = (!append && r.data.length === 0) || (a & (Attr.BOOTSERVICE_ACCESS | Attr.RUNTIME_ACCESS)) === 0;
  const what = label(r.name, r.guid);
  // Appending nothing changes nothing (and creates nothing), as in edk2.
  if (append && r.data.length === 0) return [];
  if (deletes) {
    return stored === undefined || append
      ? []
      : [
          {
            invariant: 'set-effect',
            detail: `SetVariable ${what} deleted with SUCCESS but the variable is still there`,
          },
        ];
  }
  if (stored === undefined)
    return [{ invariant: 'set-effect', detail: `SetVariable ${what} answered SUCCESS but nothing is stored` }];
  const tail = stored.data.subarray(stored.data.length - r.data.length);
  if (append ? !bytesEqual(tail, r.data) : !bytesEqual(stored.data, r.data)) {
    return [{ invariant: 'set-effect', detail: `SetVariable ${what} answered SUCCESS but the stored value differs` }];
  }
  if (stored.attributes !== (a & ~Attr.APPEND_WRITE))
    return [
      {
        invariant: 'set-effect',
        detail: `SetVariable ${what} stored attributes 0x${stored.attributes.toString(16)}, asked 0x${a.toString(16)}`,
      },
    ];
  return [];
}

/** The store's invariants: every variable storable, the totals, the modes, the policy databases. */
export function checkStore(store: VariableStore, platform: PlatformSettings): Violation[] {
  const out: Violation[] = [];
  const vars = store.variables();
  const seen = new Set<string>();
  let used = 0;
  for (const v of vars) {
    const what = (): string => label(v.name, v.guid);
    const problem = nameProblem(v.name);
    if (problem !== undefined || v.name.length > Limits.NAME_MAX)
      out.push({ invariant: 'store-name', detail: `${what()}: ${problem ?? `name of ${v.name.length} bytes`}` });
    if (v.guid.length !== 16)
      out.push({ invariant: 'store-guid', detail: `${what()}: GUID of ${v.guid.length} bytes` });
    if (v.data.length === 0 || v.data.length > Limits.DATA_MAX)
      out.push({ invariant: 'store-size', detail: `${what()}: ${v.data.length} bytes of data` });
    if ((v.attributes & ~STORABLE) !== 0 || (v.attributes & Attr.BOOTSERVICE_ACCESS) === 0)
      out.push({ invariant: 'store-attributes', detail: `${what()}: attributes 0x${v.attributes.toString(16)}` });
    if (v.timestamp.length !== 16 || v.signerDigest.length !== 32)
      out.push({ invariant: 'store-fields', detail: `${what()}: timestamp/digest sizes` });
    const key = Buffer.from(v.guid).toString('latin1') + Buffer.from(v.name).toString('latin1');
    if (seen.has(key)) out.push({ invariant: 'store-duplicate', detail: `${what()} appears twice` });
    seen.add(key);
    used += v.name.length + v.data.length + Limits.OVERHEAD;
  }
  if (used > Limits.TOTAL_MAX)
    out.push({ invariant: 'store-total', detail: `${used} bytes stored, more than ${Limits.TOTAL_MAX}` });
  if (used !== store.usedStorage)
    out.push({ invariant: 'store-total', detail: `usedStorage ${store.usedStorage}, variables add up to ${used}` });

  const get = (b: { name: Uint8Array; guid: Uint8Array }): Variable | undefined =>
    vars.find((v) => bytesEqual(v.name, b.name) && bytesEqual(v.guid, b.guid));
  const pk = get(Names.PK) !== undefined;
  const byte = (b: { name: Uint8Array; guid: Uint8Array }): number | undefined => {
    const v = get(b);
    return v !== undefined && v.data.length === 1 ? v.data[0] : undefined;
  };
  if (byte(Names.SetupMode) !== (pk ? 0 : 1))
    out.push({
      invariant: 'store-modes',
      detail: `SetupMode ${byte(Names.SetupMode)} with PK ${pk ? 'enrolled' : 'absent'}`,
    });
  if (byte(Names.DeployedMode) !== (pk ? 1 : 0))
    out.push({
      invariant: 'store-modes',
      detail: `DeployedMode ${byte(Names.DeployedMode)} with PK ${pk ? 'enrolled' : 'absent'}`,
    });
  if (byte(Names.AuditMode) !== 0) out.push({ invariant: 'store-modes', detail: `AuditMode ${byte(Names.AuditMode)}` });
  if (!store.atRuntime && byte(Names.SecureBoot) !== (pk && platform.secureBoot ? 1 : 0)) {
    out.push({
      invariant: 'store-modes',
      detail: `SecureBoot ${byte(Names.SecureBoot)} with PK ${pk ? 'enrolled' : 'absent'}, platform secureboot ${platform.secureBoot}`,
    });
  }
  const lock = byte(Names.MemoryOverwriteRequestControlLock);
  if (lock === undefined || lock > MorLockState.LOCKED_WITH_KEY)
    out.push({ invariant: 'store-mor', detail: `MemoryOverwriteRequestControlLock is ${lock}` });
  for (const p of POLICY_NAMES) {
    const v = vars.find((x) => fromUtf16le(x.name) === p.name && bytesEqual(x.guid, p.guid));
    if (v === undefined) continue;
    if (v.attributes !== 0x27)
      out.push({ invariant: 'store-policy', detail: `${p.name} has attributes 0x${v.attributes.toString(16)}` });
    const parsed = parseSignatureLists(v.data);
    if (!parsed.ok)
      out.push({ invariant: 'store-policy', detail: `${p.name} holds no valid signature list: ${parsed.reason}` });
  }
  return out;
}

/** Whether two states hold the same variables (in order), MOR key and PPI data. */
export function sameState(
  a: StoreState,
  b: StoreState,
  options: { nonVolatileOnly?: boolean; ignoreMor?: boolean } = {},
): string | undefined {
  const filter = (vars: readonly Variable[]): Variable[] =>
    vars.filter(
      (v) =>
        (options.nonVolatileOnly !== true || (v.attributes & Attr.NON_VOLATILE) !== 0) &&
        (options.ignoreMor !== true ||
          !(
            bytesEqual(v.guid, Guids.MEMORY_OVERWRITE_CONTROL) ||
            bytesEqual(v.guid, Guids.MEMORY_OVERWRITE_CONTROL_LOCK)
          )),
    );
  const va = filter(a.variables);
  const vb = filter(b.variables);
  if (va.length !== vb.length) return `${va.length} variables against ${vb.length}`;
  for (let i = 0; i < va.length; i++) {
    if (!variablesEqual(va[i]!, vb[i]!))
      return `variable #${i} differs: ${label(va[i]!.name, va[i]!.guid)} against ${label(vb[i]!.name, vb[i]!.guid)}`;
  }
  if (options.nonVolatileOnly !== true && options.ignoreMor !== true) {
    if (!bytesEqual(a.morKey, b.morKey)) return 'the MOR key differs';
    if (a.ppi.index !== b.ppi.index || !bytesEqual(a.ppi.func, b.ppi.func)) return 'the PPI data differs';
  }
  return undefined;
}

/**
 * A state handed out for persistence: it encodes as the VARS blob the file store would write, that
 * blob decodes to the same non-volatile variables, and a store restarts from it.
 */
export function checkPersistable(state: StoreState, platform: PlatformSettings): Violation[] {
  let blob: Uint8Array;
  try {
    blob = encodeVarsBlob(state, { nonVolatileOnly: true });
  } catch (e) {
    return [{ invariant: 'persist-encode', detail: `the state cannot be written: ${(e as Error).message}` }];
  }
  const decoded = decodeVarsBlob(blob);
  if (!decoded.ok) return [{ invariant: 'persist-decode', detail: `the written blob does not load: ${decoded.error}` }];
  const differs = sameState(decoded.state, state, { nonVolatileOnly: true });
  if (differs !== undefined) return [{ invariant: 'persist-roundtrip', detail: differs }];
  try {
    VariableStore.restore(decoded.state, { platform, resume: false });
  } catch (e) {
    return [
      { invariant: 'persist-restore', detail: `a store cannot start from the written blob: ${(e as Error).message}` },
    ];
  }
  return [];
}
