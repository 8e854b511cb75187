/**
 * A test double that stands in for XAPI on its local socket (`/var/lib/xcp/xapi`), for the calls
 * the `varstore` tool makes on a whole pool. It is a real HTTP server on a real Unix socket
 * speaking XAPI's XML-RPC: every answer is the struct `Status` = "Success" with `Value`, or
 * "Failure" with `ErrorDescription` (code first, then its parameters), written as XAPI's OCaml RPC
 * library writes it (untyped string values, `<boolean>`, `<nil/>`, maps as structs, int64 fields
 * as strings, references as "OpaqueRef:<uuid>").
 *
 * The XAPI behaviour it reproduces:
 * - Sessions: `session.login_with_password(uname, pwd[, version[, originator]])` is trusted on the
 *   local socket whatever the password (XAPI pre-authenticates local Unix-socket clients as root)
 *   and returns a new session reference; `session.logout` ends it. A call with a session that
 *   is unknown or ended fails with SESSION_INVALID [session].
 * - `VM.get_all_records(s)`: every VM (templates, snapshots, control domains included) as a
 *   struct reference → record, with the fields of a real record the tools use and their
 *   neighbours (uuid, name_label, power_state, is_a_template, is_default_template, is_a_snapshot,
 *   snapshot_of, is_control_domain, domid, domain_type, HVM_boot_policy, HVM_boot_params,
 *   platform, NVRAM, resident_on, other_config, ...). `VM.get_all`, `VM.get_record`,
 *   `VM.get_by_uuid` (UUID_INVALID [VM, uuid]), `VM.get_power_state`, `VM.get_name_label`,
 *   `VM.get_NVRAM`; an unknown reference fails with HANDLE_INVALID [VM, ref].
 * - `VM.set_NVRAM_EFI_variables(s, vm, value[, update])` replaces NVRAM["EFI-variables"] and,
 *   like XAPI (which lets varstored call it on a running VM), does not check the power state.
 * - `pool.get_all`, `pool.get_uefi_certificates`, `pool.get_custom_uefi_certificates`,
 *   `pool.set_custom_uefi_certificates` (OPERATION_NOT_ALLOWED when the pool is configured
 *   without allow-custom-uefi-certs; no validation of the value, as XAPI does none).
 * - Unknown methods: MESSAGE_METHOD_UNKNOWN [method]; a wrong parameter count:
 *   MESSAGE_PARAMETER_COUNT_MISMATCH [method, expected, received]; a parameter of the wrong type:
 *   FIELD_TYPE_ERROR [parameter].
 *
 * Not modelled: RBAC, tasks and events, the allowed_operations of a VM, other classes. Tests can
 * change the pool between calls (`onCall`, `vm()`), inject failures, hang-ups and late answers
 * per method and per VM, and read every call made.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import type { VmPowerState } from './pool.js';
import { listenDouble } from './double-server.js';
import { decodeMethodCall, encodeMethodResponse, type XmlRpcValue } from './xmlrpc.js';

export interface PoolVmSpec {
  readonly uuid?: string;
  readonly nameLabel: string;
  readonly powerState?: VmPowerState;
  readonly isATemplate?: boolean;
  readonly isDefaultTemplate?: boolean;
  readonly isASnapshot?: boolean;
  readonly isControlDomain?: boolean;
  /** "hvm" (default), "pv" or "pvh". */
  readonly domainType?: 'hvm' | 'pv' | 'pvh';
  /** HVM_boot_params; a UEFI guest has `firmware: 'uefi'`. Default `{ order: 'cd', firmware: 'uefi' }` for HVM. */
  readonly hvmBootParams?: Readonly<Record<string, string>>;
  readonly platform?: Readonly<Record<string, string>>;
  /** VM.NVRAM, e.g. `{ 'EFI-variables': base64 }`; default empty (never booted). */
  readonly nvram?: Readonly<Record<string, string>>;
}

/** One VM of the double; tests may change its fields between calls. */
export interface PoolVm {
  readonly ref: string;
  readonly uuid: string;
  nameLabel: string;
  powerState: VmPowerState;
  isATemplate: boolean;
  isDefaultTemplate: boolean;
  isASnapshot: boolean;
  isControlDomain: boolean;
  domainType: 'hvm' | 'pv' | 'pvh';
  hvmBootParams: Map<string, string>;
  platform: Map<string, string>;
  readonly nvram: Map<string, string>;
}

export interface PoolDoubleOptions {
  /** Where to listen. A stale socket file there is replaced. */
  readonly socketPath: string;
  readonly vms?: readonly PoolVmSpec[];
  /** Pool.uefi_certificates (the hosts' defaults). Default "". */
  readonly uefiCertificates?: string;
  /** Pool.custom_uefi_certificates. Default "". */
  readonly customUefiCertificates?: string;
  /** xapi.conf allow-custom-uefi-certs. Default true. */
  readonly allowCustomUefiCertificates?: boolean;
  /** Requests with a larger body get HTTP 413. Default 16 MiB. */
  readonly maxRequestBytes?: number;
}

export type PoolFault =
  /** Answer an XAPI Failure and skip the call's effect. Default description: INTERNAL_ERROR. */
  | { readonly kind: 'failure'; readonly errorDescription?: readonly string[] }
  /** Close the connection without answering; the call has no effect. */
  | { readonly kind: 'close' }
  /** Perform the call at once but answer only after `delayMs`. */
  | { readonly kind: 'slow'; readonly delayMs: number };

export interface PoolFaultOptions {
  /** How many calls it applies to. Default 1. */
  readonly count?: number;
  /** Only calls of this method. Default: any. */
  readonly method?: string;
  /** Only calls about this VM (by UUID). Default: any. */
  readonly vmUuid?: string;
}

export interface PoolCall {
  readonly method: string;
  readonly params: readonly XmlRpcValue[];
  /** The VM the call is about, when its parameters name one. */
  readonly vmUuid?: string;
  readonly fault?: PoolFault['kind'];
}

export interface PoolDouble {
  readonly socketPath: string;
  readonly poolRef: string;
  /** The VMs by reference, in creation order. */
  readonly vms: ReadonlyMap<string, PoolVm>;
  /** The VM with this UUID (throws when there is none). */
  vm(uuid: string): PoolVm;
  uefiCertificates: string;
  customUefiCertificates: string;
  allowCustomUefiCertificates: boolean;
  /** Sessions currently logged in. */
  readonly sessions: ReadonlySet<string>;
  readonly calls: readonly PoolCall[];
  callsOf(method: string, vmUuid?: string): readonly PoolCall[];
  /** Runs before each well-formed call takes effect (e.g. to start a VM between two calls). */
  onCall(hook: ((call: PoolCall) => void) | undefined): void;
  inject(fault: PoolFault, options?: PoolFaultOptions): void;
  clearFaults(): void;
  close(): Promise<void>;
}

type ParamType = 'string' | 'session' | 'vm' | 'pool' | 'int';

interface MethodSpec {
  /** Required parameters, then optional ones (XAPI's versioned parameters). */
  readonly params: readonly ParamType[];
  readonly optional?: readonly ParamType[];
  readonly run: (params: readonly XmlRpcValue[]) => XmlRpcValue;
}

/** An XAPI error: the double answers it as a Failure. */
class Failure extends Error {
  constructor(readonly description: readonly string[]) {
    super(description.join(' '));
  }
}

const NULL_REF = 'OpaqueRef:NULL';

function struct(entries: Iterable<readonly [string, XmlRpcValue]>): Map<string, XmlRpcValue> {
  return new Map<string, XmlRpcValue>(entries);
}

function answer(status: 'Success', value: XmlRpcValue): string;
function answer(status: 'Failure', value: readonly string[]): string;
function answer(status: 'Success' | 'Failure', value: XmlRpcValue): string {
  return encodeMethodResponse(
    struct([
      ['Status', status],
      [status === 'Success' ? 'Value' : 'ErrorDescription', value],
    ]),
  );
}

export async function startPoolDouble(options: PoolDoubleOptions): Promise<PoolDouble> {
  const { socketPath } = options;
  const maxRequestBytes = options.maxRequestBytes ?? 16 * 1024 * 1024;
  const poolRef = `OpaqueRef:${randomUUID()}`;
  const hostRef = `OpaqueRef:${randomUUID()}`;
  const vms = new Map<string, PoolVm>();
  const byUuid = new Map<string, PoolVm>();
  const sessions = new Set<string>();
  const calls: PoolCall[] = [];
  const rules: { fault: PoolFault; method?: string; vmUuid?: string; remaining: number }[] = [];
  let hook: ((call: PoolCall) => void) | undefined;
  let closing = false;
  const state = {
    uefiCertificates: options.uefiCertificates ?? '',
    customUefiCertificates: options.customUefiCertificates ?? '',
    allowCustomUefiCertificates: options.allowCustomUefiCertificates ?? true,
  };

  let domid = 1;
  for (const spec of options.vms ?? []) {
    const uuid = (spec.uuid ?? randomUUID()).toLowerCase();
    if (byUuid.has(uuid)) throw new Error(`pool double: two VMs with UUID ${uuid}`);
    const domainType = spec.domainType ?? 'hvm';
    const vm: PoolVm = {
      ref: `OpaqueRef:${randomUUID()}`,
      uuid,
      nameLabel: spec.nameLabel,
      powerState: spec.powerState ?? 'Halted',
      isATemplate: spec.isATemplate ?? false,
      isDefaultTemplate: spec.isDefaultTemplate ?? false,
      isASnapshot: spec.isASnapshot ?? false,
      isControlDomain: spec.isControlDomain ?? false,
      domainType,
      hvmBootParams: new Map(
        Object.entries(spec.hvmBootParams ?? (domainType === 'pv' ? {} : { order: 'cd', firmware: 'uefi' })),
      ),
      platform: new Map(Object.entries(spec.platform ?? {})),
      nvram: new Map(Object.entries(spec.nvram ?? {})),
    };
    vms.set(vm.ref, vm);
    byUuid.set(uuid, vm);
  }
  const domids = new Map<string, number>();

  const record = (vm: PoolVm): Map<string, XmlRpcValue> => {
    const live = vm.powerState !== 'Halted' && vm.powerState !== 'Suspended';
    if (live && !domids.has(vm.ref)) domids.set(vm.ref, vm.isControlDomain ? 0 : domid++);
    const snapshotOf = vm.isASnapshot ? (vms.keys().next().value ?? NULL_REF) : NULL_REF;
    return struct([
      ['uuid', vm.uuid],
      ['allowed_operations', []],
      ['current_operations', struct([])],
      ['name_label', vm.nameLabel],
      ['name_description', ''],
      ['power_state', vm.powerState],
      ['user_version', '1'],
      ['is_a_template', vm.isATemplate],
      ['is_default_template', vm.isDefaultTemplate],
      ['suspend_VDI', NULL_REF],
      ['resident_on', live ? hostRef : NULL_REF],
      ['affinity', NULL_REF],
      ['memory_static_max', '2147483648'],
      ['VCPUs_max', '2'],
      ['actions_after_shutdown', 'destroy'],
      ['actions_after_reboot', 'restart'],
      ['PV_bootloader', vm.domainType === 'pv' ? 'pygrub' : ''],
      ['HVM_boot_policy', vm.domainType === 'pv' ? '' : 'BIOS order'],
      ['HVM_boot_params', struct(vm.hvmBootParams)],
      ['platform', struct(vm.platform)],
      ['other_config', struct([])],
      ['domid', live ? String(domids.get(vm.ref)) : '-1'],
      ['domain_type', vm.domainType],
      ['is_control_domain', vm.isControlDomain],
      ['is_a_snapshot', vm.isASnapshot],
      ['snapshot_of', snapshotOf],
      ['snapshots', []],
      ['tags', []],
      ['NVRAM', struct(vm.nvram)],
    ]);
  };

  const vmOf = (ref: XmlRpcValue): PoolVm => {
    const vm = typeof ref === 'string' ? vms.get(ref) : undefined;
    if (!vm) throw new Failure(['HANDLE_INVALID', 'VM', String(ref)]);
    return vm;
  };
  const checkPool = (ref: XmlRpcValue): void => {
    if (ref !== poolRef) throw new Failure(['HANDLE_INVALID', 'pool', String(ref)]);
  };

  const methods: Readonly<Record<string, MethodSpec>> = {
    'session.login_with_password': {
      params: ['string', 'string'],
      optional: ['string', 'string'],
      run: () => {
        const session = `OpaqueRef:${randomUUID()}`;
        sessions.add(session);
        return session;
      },
    },
    'session.logout': {
      params: ['session'],
      run: (p) => {
        sessions.delete(p[0] as string);
        return null;
      },
    },
    'VM.get_all': { params: ['session'], run: () => [...vms.keys()] },
    'VM.get_all_records': {
      params: ['session'],
      run: () => struct([...vms.values()].map((vm) => [vm.ref, record(vm)] as const)),
    },
    'VM.get_record': { params: ['session', 'vm'], run: (p) => record(vmOf(p[1]!)) },
    'VM.get_by_uuid': {
      params: ['session', 'string'],
      run: (p) => {
        const vm = byUuid.get(p[1] as string);
        if (!vm) throw new Failure(['UUID_INVALID', 'VM', p[1] as string]);
        return vm.ref;
      },
    },
    'VM.get_power_state': { params: ['session', 'vm'], run: (p) => vmOf(p[1]!).powerState },
    'VM.get_name_label': { params: ['session', 'vm'], run: (p) => vmOf(p[1]!).nameLabel },
    'VM.get_NVRAM': { params: ['session', 'vm'], run: (p) => struct(vmOf(p[1]!).nvram) },
    'VM.set_NVRAM_EFI_variables': {
      params: ['session', 'vm', 'string'],
      optional: ['string'],
      run: (p) => {
        const vm = vmOf(p[1]!);
        if (p[3] !== undefined && !['yes', 'no', 'unspecified'].includes(p[3] as string))
          throw new Failure(['ENUM_INVALID', 'update', String(p[3])]);
        vm.nvram.set('EFI-variables', p[2] as string);
        return null;
      },
    },
    'pool.get_all': { params: ['session'], run: () => [poolRef] },
    'pool.get_uefi_certificates': {
      params: ['session', 'pool'],
      run: (p) => {
        checkPool(p[1]!);
        return state.uefiCertificates;
      },
    },
    'pool.get_custom_uefi_certificates': {
      params: ['session', 'pool'],
      run: (p) => {
        checkPool(p[1]!);
        return state.customUefiCertificates;
      },
    },
    'pool.set_custom_uefi_certificates': {
      params: ['session', 'pool', 'string'],
      run: (p) => {
        checkPool(p[1]!);
        if (!state.allowCustomUefiCertificates)
          throw new Failure([
            'OPERATION_NOT_ALLOWED',
            'Setting UEFI certificates is not possible when allow_custom_uefi_certs is false',
          ]);
        state.customUefiCertificates = p[2] as string;
        return null;
      },
    },
  };

  /** The VM a call's parameters name (for fault filters and the call log). */
  const vmUuidOf = (method: string, params: readonly XmlRpcValue[]): string | undefined => {
    const spec = methods[method];
    const types = spec ? [...spec.params, ...(spec.optional ?? [])] : [];
    const at = types.indexOf('vm');
    if (at >= 0 && typeof params[at] === 'string') return vms.get(params[at] as string)?.uuid;
    if (method === 'VM.get_by_uuid' && typeof params[1] === 'string') return params[1];
    return undefined;
  };

  const dispatch = (method: string, params: readonly XmlRpcValue[]): string => {
    const spec = Object.hasOwn(methods, method) ? methods[method] : undefined;
    if (!spec) return answer('Failure', ['MESSAGE_METHOD_UNKNOWN', method]);
    const optional = spec.optional ?? [];
    if (params.length < spec.params.length || params.length > spec.params.length + optional.length) {
      return answer('Failure', [
        'MESSAGE_PARAMETER_COUNT_MISMATCH',
        method,
        String(spec.params.length + optional.length),
        String(params.length),
      ]);
    }
    const types = [...spec.params, ...optional];
    for (const [i, value] of params.entries()) {
      const type = types[i]!;
      const ok = type === 'int' ? typeof value === 'number' || typeof value === 'bigint' : typeof value === 'string';
      if (!ok) return answer('Failure', ['FIELD_TYPE_ERROR', `${method} parameter ${i + 1}`]);
    }
    if (types[0] === 'session' && !sessions.has(params[0] as string))
      return answer('Failure', ['SESSION_INVALID', String(params[0])]);
    try {
      return answer('Success', spec.run(params));
    } catch (error) {
      if (error instanceof Failure) return answer('Failure', error.description);
      return answer('Failure', ['INTERNAL_ERROR', (error as Error).message]);
    }
  };

  const takeFault = (method: string, vmUuid: string | undefined): PoolFault | undefined => {
    const index = rules.findIndex(
      (rule) =>
        (rule.method === undefined || rule.method === method) && (rule.vmUuid === undefined || rule.vmUuid === vmUuid),
    );
    const rule = rules[index];
    if (!rule) return undefined;
    rule.remaining -= 1;
    if (rule.remaining <= 0) rules.splice(index, 1);
    return rule.fault;
  };

  const reply = (res: ServerResponse, status: number, body: string) => {
    const bytes = Buffer.from(body, 'utf8');
    res.writeHead(status, { 'Content-Type': 'text/xml', 'Content-Length': bytes.length });
    res.end(bytes);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> => {
    if (req.method !== 'POST') {
      reply(res, 405, '');
      return;
    }
    let call: { method: string; params: readonly XmlRpcValue[] };
    try {
      call = decodeMethodCall(new TextDecoder('utf-8', { fatal: true }).decode(body));
    } catch (error) {
      reply(res, 200, answer('Failure', ['XMLRPC_UNMARSHAL_FAILURE', (error as Error).message]));
      return;
    }
    const vmUuid = vmUuidOf(call.method, call.params);
    const fault = takeFault(call.method, vmUuid);
    const entry: PoolCall = {
      method: call.method,
      params: call.params,
      ...(vmUuid !== undefined ? { vmUuid } : {}),
      ...(fault ? { fault: fault.kind } : {}),
    };
    calls.push(entry);
    if (fault?.kind === 'failure') {
      reply(res, 200, answer('Failure', [...(fault.errorDescription ?? ['INTERNAL_ERROR', 'injected failure'])]));
      return;
    }
    if (fault?.kind === 'close') {
      req.socket.destroy();
      return;
    }
    hook?.(entry);
    const text = dispatch(call.method, call.params);
    if (fault?.kind === 'slow') {
      await delay(fault.delayMs);
      if (closing || req.socket.destroyed) return;
    }
    reply(res, 200, text);
  };

  const server = await listenDouble(socketPath, maxRequestBytes, handle);

  return {
    socketPath,
    poolRef,
    vms,
    vm(uuid) {
      const vm = byUuid.get(uuid.toLowerCase());
      if (!vm) throw new Error(`pool double: no VM ${uuid}`);
      return vm;
    },
    get uefiCertificates() {
      return state.uefiCertificates;
    },
    set uefiCertificates(value: string) {
      state.uefiCertificates = value;
    },
    get customUefiCertificates() {
      return state.customUefiCertificates;
    },
    set customUefiCertificates(value: string) {
      state.customUefiCertificates = value;
    },
    get allowCustomUefiCertificates() {
      return state.allowCustomUefiCertificates;
    },
    set allowCustomUefiCertificates(value: boolean) {
      state.allowCustomUefiCertificates = value;
    },
    sessions,
    calls,
    callsOf: (method, vmUuid) =>
      calls.filter((c) => c.method === method && (vmUuid === undefined || c.vmUuid === vmUuid)),
    onCall(next) {
      hook = next;
    },
    inject(fault, faultOptions = {}) {
      const count = faultOptions.count ?? 1;
      if (!Number.isInteger(count) || count < 1) throw new RangeError('fault count must be a positive integer');
      rules.push({
        fault,
        remaining: count,
        ...(faultOptions.method !== undefined ? { method: faultOptions.method } : {}),
        ...(faultOptions.vmUuid !== undefined ? { vmUuid: faultOptions.vmUuid.toLowerCase() } : {}),
      });
    },
    clearFaults() {
      rules.length = 0;
    },
    close() {
      closing = true;
      return server.close();
    },
  };
}

/** The kinds of VM a pool holds, as `generatePool` makes them. */
export type PoolVmKind =
  | 'uefi-halted'
  | 'uefi-running'
  | 'uefi-paused'
  | 'uefi-suspended'
  | 'uefi-never-booted'
  | 'bios'
  | 'pv'
  | 'template'
  | 'snapshot'
  | 'control-domain';

const KIND_CYCLE: readonly PoolVmKind[] = [
  'uefi-halted',
  'uefi-running',
  'uefi-halted',
  'uefi-paused',
  'bios',
  'uefi-suspended',
  'uefi-halted',
  'template',
  'uefi-running',
  'snapshot',
  'pv',
  'uefi-never-booted',
  'uefi-running',
];

/**
 * Specs of a pool of `count` VMs of every kind (a control domain per `hosts`, then the kinds in
 * turn), named `<kind>-<n>`. `nvramOf` gives the NVRAM of each VM that has one (UEFI guests that
 * booted, and their templates and snapshots).
 */
export function generatePool(
  count: number,
  nvramOf: (index: number, kind: PoolVmKind) => Readonly<Record<string, string>>,
  hosts = 3,
): (PoolVmSpec & { kind: PoolVmKind })[] {
  const out: (PoolVmSpec & { kind: PoolVmKind })[] = [];
  for (let i = 0; i < count; i++) {
    const kind: PoolVmKind = i < hosts ? 'control-domain' : KIND_CYCLE[(i - hosts) % KIND_CYCLE.length]!;
    const nameLabel = kind === 'control-domain' ? `Control domain on host: host-${i}` : `${kind}-${i}`;
    const base = { nameLabel, kind };
    switch (kind) {
      case 'control-domain':
        out.push({ ...base, powerState: 'Running', isControlDomain: true, domainType: 'pv', hvmBootParams: {} });
        break;
      case 'bios':
        out.push({ ...base, powerState: 'Halted', hvmBootParams: { order: 'cd', firmware: 'bios' } });
        break;
      case 'pv':
        out.push({ ...base, powerState: 'Halted', domainType: 'pv' });
        break;
      case 'template':
        out.push({ ...base, isATemplate: true, nvram: nvramOf(i, kind) });
        break;
      case 'snapshot':
        // XAPI's snapshots are templates too.
        out.push({ ...base, isATemplate: true, isASnapshot: true, nvram: nvramOf(i, kind) });
        break;
      case 'uefi-never-booted':
        out.push({ ...base, powerState: 'Halted' });
        break;
      default: {
        const power = kind.slice('uefi-'.length);
        const powerState = (power[0]!.toUpperCase() + power.slice(1)) as VmPowerState;
        out.push({ ...base, powerState, platform: { secureboot: 'true' }, nvram: nvramOf(i, kind) });
      }
    }
  }
  return out;
}
