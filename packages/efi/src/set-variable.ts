/**
 * SetVariable: edk2 VariableServiceSetVariable → VarCheckLib → AuthVariableLib → UpdateVariable,
 * with varstored's limits; MOR (mor.ts) and the PPI variables (ppi.ts) have their own rules. Changes
 * the store's state; the caller makes it a transaction (transaction.ts).
 */
import { EfiStatus, Limits, concatBytes, copyBytes, fromUtf16le, statusName } from '@vmsb/protocol';
import { ATTRIBUTES_MASK, Attr, formatAttributes } from './attributes.js';
import { AUTHENTICATION2_AUTHINFO_OFFSET, authentication2Length } from './authentication2.js';
import { Names } from './builtins.js';
import { setMorControl, setMorLock } from './mor.js';
import { checkPpiVariables } from './ppi.js';
import { secureBootValue } from './secure-boot.js';
import {
  copyVariable,
  describe,
  fail,
  footprint,
  isBuiltin,
  isNv,
  keyOf,
  ok,
  type Key,
  type SetResult,
  type StoreCore,
} from './store-core.js';
import { laterEfiTimeBytes } from './time.js';
import type { AuthResult, StoreView } from './types.js';
import { uefiVariableCheck } from './var-check.js';
import { SIGNER_DIGEST_SIZE, makeVariable, nameProblem, variablesEqual, type Variable } from './variable.js';

/** sizeof(EFI_VARIABLE_AUTHENTICATION) of the deprecated counter-based scheme. */
const AUTHINFO_SIZE = 560;

/** A SetVariable, from the guest or from the host. */
export interface SetRequest {
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
  readonly attributes: number;
  readonly data: Uint8Array;
}

export function setVariableRules(core: StoreCore, r: SetRequest, runtime: boolean): SetResult {
  const { name, guid, data } = r;
  const attributes = r.attributes >>> 0;
  // varstored's wire limits.
  if (name.length === 0) return fail(EfiStatus.INVALID_PARAMETER, 'empty name');
  if (name.length > Limits.NAME_MAX)
    return fail(EfiStatus.DEVICE_ERROR, `name of ${name.length} bytes exceeds ${Limits.NAME_MAX}`);
  const badName = nameProblem(name);
  if (badName !== undefined) return fail(EfiStatus.INVALID_PARAMETER, badName);
  if (guid.length !== 16) return fail(EfiStatus.INVALID_PARAMETER, 'a vendor GUID is 16 bytes');
  if (data.length > Limits.BUFFER_SIZE)
    return fail(
      EfiStatus.OUT_OF_RESOURCES,
      `data of ${data.length} bytes exceeds the ${Limits.BUFFER_SIZE}-byte buffer`,
    );
  const what = describe(name, guid);

  // Attribute combinations.
  const AW = Attr.AUTHENTICATED_WRITE_ACCESS;
  const AT = Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS;
  const aw = (attributes & AW) !== 0;
  const at = (attributes & AT) !== 0;
  if ((attributes & ~(ATTRIBUTES_MASK | AW)) !== 0)
    return fail(EfiStatus.INVALID_PARAMETER, `reserved attribute bits in ${formatAttributes(attributes)}`);
  if ((attributes & (Attr.RUNTIME_ACCESS | Attr.BOOTSERVICE_ACCESS)) === Attr.RUNTIME_ACCESS) {
    return fail(aw ? EfiStatus.UNSUPPORTED : EfiStatus.INVALID_PARAMETER, 'RUNTIME_ACCESS without BOOTSERVICE_ACCESS');
  }
  if ((attributes & ATTRIBUTES_MASK) === Attr.NON_VOLATILE)
    return fail(aw ? EfiStatus.UNSUPPORTED : EfiStatus.INVALID_PARAMETER, 'NON_VOLATILE alone');
  if (!aw && !at && (attributes & Attr.HARDWARE_ERROR_RECORD) !== 0)
    return fail(EfiStatus.INVALID_PARAMETER, 'hardware error records are not supported');
  if (aw && at)
    return fail(EfiStatus.UNSUPPORTED, 'both AUTHENTICATED_WRITE_ACCESS and TIME_BASED_AUTHENTICATED_WRITE_ACCESS');

  // The payload: what would be stored.
  let payload: Uint8Array;
  if (aw) {
    if (data.length !== AUTHINFO_SIZE) return fail(EfiStatus.UNSUPPORTED, 'AUTHENTICATED_WRITE_ACCESS is deprecated');
    payload = data.subarray(data.length);
  } else if (at) {
    const dwLength = authentication2Length(data);
    if (dwLength === undefined)
      return fail(EfiStatus.SECURITY_VIOLATION, 'malformed EFI_VARIABLE_AUTHENTICATION_2 descriptor');
    payload = data.subarray(AUTHENTICATION2_AUTHINFO_OFFSET + dwLength);
  } else {
    payload = data;
  }
  if (payload.length > Limits.DATA_MAX)
    return fail(EfiStatus.OUT_OF_RESOURCES, `data of ${payload.length} bytes exceeds ${Limits.DATA_MAX}`);

  // MOR and MOR lock have their own rules (TCG Platform Reset Attack Mitigation, as varstored).
  if (isBuiltin(Names.MemoryOverwriteRequestControl, name, guid)) return setMorControl(core, attributes, payload);
  if (isBuiltin(Names.MemoryOverwriteRequestControlLock, name, guid)) return setMorLock(core, attributes, payload);

  const nameText = fromUtf16le(name);
  const check = uefiVariableCheck(nameText, guid, attributes, payload);
  if (check !== undefined) return check;

  const key = keyOf(name, guid);
  const existing = core.vars.get(key);
  if (existing !== undefined) {
    if (runtime && (existing.attributes & Attr.RUNTIME_ACCESS) === 0)
      return fail(EfiStatus.WRITE_PROTECTED, `${what} is not a runtime variable`);
    if (attributes !== 0 && (attributes & ~Attr.APPEND_WRITE) !== existing.attributes) {
      return fail(
        EfiStatus.INVALID_PARAMETER,
        `${what} has attributes ${formatAttributes(existing.attributes)}, not ${formatAttributes(attributes & ~Attr.APPEND_WRITE)}`,
      );
    }
    const ppi = checkPpiVariables(core, name, guid, payload);
    if (ppi !== undefined) return ppi;
  }

  // AuthVariableLibProcessVariable.
  const policyVariable = isPolicyVariable(name, guid);
  if (policyVariable) {
    if ((attributes & Attr.NON_VOLATILE) === 0 || !at)
      return fail(
        EfiStatus.INVALID_PARAMETER,
        `${nameText} must be written NV|BS|RT|AT with an authentication descriptor`,
      );
  } else if (aw) {
    return fail(EfiStatus.UNSUPPORTED, 'AUTHENTICATED_WRITE_ACCESS is deprecated');
  }
  if (at) return setAuthenticated(core, key, existing, { name, guid, attributes, data }, runtime);
  if (existing !== undefined && (existing.attributes & (AT | AW)) !== 0)
    return fail(EfiStatus.WRITE_PROTECTED, `${what} is authenticated: writes need a signed descriptor`);
  return update(core, key, existing, { name, guid, attributes, payload }, runtime);
}

function setAuthenticated(
  core: StoreCore,
  key: Key,
  existing: Variable | undefined,
  r: SetRequest,
  runtime: boolean,
): SetResult {
  if (core.authenticator === undefined)
    return fail(
      EfiStatus.SECURITY_VIOLATION,
      'authenticated writes cannot be verified: no authenticator is configured',
    );
  const append = (r.attributes & Attr.APPEND_WRITE) !== 0;
  const view: StoreView = {
    get: (n: Uint8Array, g: Uint8Array) => {
      const v = core.lookup(n, g);
      return v === undefined ? undefined : copyVariable(v);
    },
    setupMode: core.setupMode,
    authEnforce: core.platform.authEnforce,
  };
  let result: AuthResult;
  try {
    result = core.authenticator.verify(
      {
        name: copyBytes(r.name),
        guid: copyBytes(r.guid),
        attributes: r.attributes & ~Attr.APPEND_WRITE,
        append,
        data: copyBytes(r.data),
        ...(existing === undefined ? {} : { existing: copyVariable(existing) }),
      },
      view,
    );
  } catch (e) {
    return fail(
      EfiStatus.SECURITY_VIOLATION,
      `the authenticator failed: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (result === null || typeof result !== 'object' || typeof result.status !== 'bigint')
    return fail(EfiStatus.SECURITY_VIOLATION, 'the authenticator returned no decision');
  if (result.status !== EfiStatus.SUCCESS) {
    return fail(result.status, result.reason ?? `authenticated write refused (${statusName(result.status)})`);
  }
  // Never store what was not explicitly approved.
  if (!(result.payload instanceof Uint8Array))
    return fail(EfiStatus.SECURITY_VIOLATION, 'the authenticator approved the write without a payload');
  if (result.timestamp !== undefined && (!(result.timestamp instanceof Uint8Array) || result.timestamp.length !== 16)) {
    return fail(EfiStatus.SECURITY_VIOLATION, 'the authenticator returned a malformed timestamp');
  }
  if (
    result.signerDigest !== undefined &&
    (!(result.signerDigest instanceof Uint8Array) || result.signerDigest.length !== SIGNER_DIGEST_SIZE)
  ) {
    return fail(EfiStatus.SECURITY_VIOLATION, 'the authenticator returned a malformed signer digest');
  }
  if (result.payload.length > Limits.DATA_MAX)
    return fail(EfiStatus.OUT_OF_RESOURCES, `data of ${result.payload.length} bytes exceeds ${Limits.DATA_MAX}`);
  const wasPk = isBuiltin(Names.PK, r.name, r.guid);
  const outcome = update(
    core,
    key,
    existing,
    {
      name: r.name,
      guid: r.guid,
      attributes: r.attributes,
      payload: result.payload,
      timestamp: result.timestamp ?? new Uint8Array(16),
      ...(result.signerDigest === undefined ? {} : { signerDigest: result.signerDigest }),
    },
    runtime,
  );
  if (outcome.status === EfiStatus.SUCCESS && wasPk) refreshModes(core, runtime);
  return outcome;
}

/** edk2 UpdateVariable with varstored's limits: delete, append, replace or create. */
function update(
  core: StoreCore,
  key: Key,
  existing: Variable | undefined,
  w: {
    name: Uint8Array;
    guid: Uint8Array;
    attributes: number;
    payload: Uint8Array;
    timestamp?: Uint8Array;
    signerDigest?: Uint8Array;
  },
  runtime: boolean,
): SetResult {
  const append = (w.attributes & Attr.APPEND_WRITE) !== 0;
  const stored = w.attributes & ~Attr.APPEND_WRITE;
  const what = describe(w.name, w.guid);
  let next: Variable | undefined;
  if (existing !== undefined) {
    if (runtime && (existing.attributes & Attr.NON_VOLATILE) === 0)
      return fail(EfiStatus.WRITE_PROTECTED, `${what} is volatile: read-only at runtime`);
    if ((!append && w.payload.length === 0) || (w.attributes & (Attr.RUNTIME_ACCESS | Attr.BOOTSERVICE_ACCESS)) === 0) {
      next = undefined;
    } else {
      const data = append ? concatBytes(existing.data, w.payload) : w.payload;
      if (data.length > Limits.DATA_MAX)
        return fail(
          EfiStatus.OUT_OF_RESOURCES,
          `${what} would hold ${data.length} bytes, more than ${Limits.DATA_MAX}`,
        );
      let timestamp = existing.timestamp;
      if (w.timestamp !== undefined)
        timestamp = append ? laterEfiTimeBytes(existing.timestamp, w.timestamp) : w.timestamp;
      next = makeVariable({
        name: existing.name,
        guid: existing.guid,
        attributes: existing.attributes,
        data,
        timestamp,
        signerDigest: w.signerDigest ?? existing.signerDigest,
      });
    }
  } else {
    if (append && w.payload.length === 0) return ok();
    if (w.payload.length === 0 || (w.attributes & (Attr.RUNTIME_ACCESS | Attr.BOOTSERVICE_ACCESS)) === 0)
      return fail(EfiStatus.NOT_FOUND, `no variable ${what} to delete`);
    if (runtime && ((stored & Attr.RUNTIME_ACCESS) === 0 || (stored & Attr.NON_VOLATILE) === 0)) {
      return fail(EfiStatus.INVALID_PARAMETER, 'at runtime only NV|BS|RT variables can be created');
    }
    next = makeVariable({
      name: w.name,
      guid: w.guid,
      attributes: stored,
      data: w.payload,
      ...(w.timestamp === undefined ? {} : { timestamp: w.timestamp }),
      ...(w.signerDigest === undefined ? {} : { signerDigest: w.signerDigest }),
    });
  }
  const used = core.usedStorage;
  const after = used - footprint(existing) + footprint(next);
  if (after > Limits.TOTAL_MAX && after > used)
    return fail(EfiStatus.OUT_OF_RESOURCES, `the store would hold ${after} bytes, more than ${Limits.TOTAL_MAX}`);
  if (next === undefined) core.removeVar(key);
  else core.putVar(key, next);
  const changed = existing === undefined || next === undefined || !variablesEqual(existing, next);
  return ok(changed && (isNv(existing) || isNv(next)));
}

/** SecureBoot's value for a boot, by varstored's rule (secure-boot.ts). */
export function secureBootAtBoot(core: StoreCore, pkEnrolled: boolean): 0 | 1 {
  return secureBootValue('varstored', { pkEnrolled, platformSecureBoot: core.platform.secureBoot });
}

/** SetupMode, DeployedMode and (before runtime) SecureBoot follow PK presence. */
function refreshModes(core: StoreCore, runtime: boolean): void {
  const pk = !core.setupMode;
  const before = { setup: core.lookup(Names.SetupMode.name, Names.SetupMode.guid)?.data[0], sb: core.secureBoot };
  core.putInternal(Names.SetupMode, Uint8Array.of(pk ? 0 : 1));
  core.putInternal(Names.DeployedMode, Uint8Array.of(pk ? 1 : 0));
  // After ExitBootServices SecureBoot keeps describing the current boot (edk2).
  if (!runtime) core.putInternal(Names.SecureBoot, Uint8Array.of(secureBootAtBoot(core, pk)));
  if (before.setup !== (pk ? 0 : 1)) {
    core.log(
      'info',
      `${pk ? 'PK enrolled: user mode' : 'PK deleted: setup mode'}; SecureBoot=${core.secureBoot ? 1 : 0}`,
    );
  }
}

function isPolicyVariable(name: Uint8Array, guid: Uint8Array): boolean {
  return [Names.PK, Names.KEK, Names.db, Names.dbx, Names.dbt].some((b) => isBuiltin(b, name, guid));
}
