/**
 * The pool-wide XAPI calls of the `varstore` admin tool, over XAPI's own Unix socket
 * (`/var/lib/xcp/xapi`), built on the same transport as varstored's calls (XapiClient.call).
 *
 * One session for a whole run: `session.login_with_password` once, then any number of calls (in
 * parallel: each is its own connection), then `session.logout`. The VM list is one
 * `VM.get_all_records` call, whose answer carries every VM's record, NVRAM included, so a check
 * of the whole pool reads XAPI once.
 */
import { XapiClient, XapiError, type XapiClientOptions } from './client.js';
import type { XmlRpcStruct, XmlRpcValue } from './xmlrpc.js';

/** XAPI's vm_power_state values, as they travel in XML-RPC. */
export type VmPowerState = 'Halted' | 'Running' | 'Paused' | 'Suspended';

export const VM_POWER_STATES: readonly VmPowerState[] = ['Halted', 'Running', 'Paused', 'Suspended'];

/** The fields of a VM record the tools use. */
export interface VmRecord {
  /** The VM's reference ("OpaqueRef:…"). */
  readonly ref: string;
  readonly uuid: string;
  readonly nameLabel: string;
  /** One of VM_POWER_STATES (anything else XAPI might add is kept as it came). */
  readonly powerState: string;
  readonly isATemplate: boolean;
  readonly isASnapshot: boolean;
  readonly isControlDomain: boolean;
  /** HVM_boot_params; `firmware` is "uefi" for UEFI guests. */
  readonly hvmBootParams: ReadonlyMap<string, string>;
  /** VM.NVRAM; `EFI-variables` is the base64 VARS blob. */
  readonly nvram: ReadonlyMap<string, string>;
}

/** A guest that boots UEFI: not a template, snapshot or control domain, HVM_boot_params:firmware=uefi. */
export function isUefiGuest(vm: VmRecord): boolean {
  return !vm.isATemplate && !vm.isASnapshot && !vm.isControlDomain && vm.hvmBootParams.get('firmware') === 'uefi';
}

/**
 * Answers of a pool: 256 MiB and 8 million XML elements. A real VM record is ~100 fields; with
 * NVRAM (at most ~175 KiB of base64 each) a pool of 1000 VMs stays well inside.
 */
export const POOL_MAX_RESPONSE_BYTES = 256 * 1024 * 1024;
export const POOL_MAX_ELEMENTS = 8_000_000;

export type PoolClientOptions = Pick<XapiClientOptions, 'socket' | 'timeoutMs'>;

function protocolError(method: string, what: string): XapiError {
  return new XapiError('protocol', method, `${method}: ${what}`);
}

function stringOf(method: string, value: XmlRpcValue | undefined, what: string): string {
  if (typeof value !== 'string') throw protocolError(method, `${what} is not a string`);
  return value;
}

function boolOf(method: string, value: XmlRpcValue | undefined, what: string): boolean {
  if (typeof value !== 'boolean') throw protocolError(method, `${what} is not a boolean`);
  return value;
}

function stringMapOf(method: string, value: XmlRpcValue | undefined, what: string): ReadonlyMap<string, string> {
  if (!(value instanceof Map)) throw protocolError(method, `${what} is not a struct`);
  const out = new Map<string, string>();
  for (const [key, item] of value as XmlRpcStruct) {
    if (typeof item !== 'string') throw protocolError(method, `${what}["${key.slice(0, 64)}"] is not a string`);
    out.set(key, item);
  }
  return out;
}

/** A VM record from XAPI's struct (the fields used; others are ignored). */
export function vmRecordOf(method: string, ref: string, record: XmlRpcValue): VmRecord {
  if (!(record instanceof Map)) throw protocolError(method, `the record of ${ref.slice(0, 80)} is not a struct`);
  const r = record as XmlRpcStruct;
  const uuid = stringOf(method, r.get('uuid'), `${ref.slice(0, 80)}.uuid`);
  const field = `VM ${uuid.slice(0, 40)}`;
  return {
    ref,
    uuid,
    nameLabel: stringOf(method, r.get('name_label'), `${field} name_label`),
    powerState: stringOf(method, r.get('power_state'), `${field} power_state`),
    isATemplate: boolOf(method, r.get('is_a_template'), `${field} is_a_template`),
    isASnapshot: boolOf(method, r.get('is_a_snapshot'), `${field} is_a_snapshot`),
    isControlDomain: boolOf(method, r.get('is_control_domain'), `${field} is_control_domain`),
    hvmBootParams: stringMapOf(method, r.get('HVM_boot_params'), `${field} HVM_boot_params`),
    nvram: stringMapOf(method, r.get('NVRAM'), `${field} NVRAM`),
  };
}

/** Calls made within one XAPI session. */
export class PoolSession {
  constructor(
    private readonly client: XapiClient,
    readonly id: string,
  ) {}

  /** Every VM of the pool (templates, snapshots and control domains too), in XAPI's order. */
  async vmRecords(): Promise<VmRecord[]> {
    const method = 'VM.get_all_records';
    const value = await this.client.call(method, [this.id]);
    if (!(value instanceof Map)) throw protocolError(method, 'result is not a struct');
    return [...(value as XmlRpcStruct)].map(([ref, record]) => vmRecordOf(method, ref, record));
  }

  async vmByUuid(uuid: string): Promise<string> {
    return stringOf('VM.get_by_uuid', await this.client.call('VM.get_by_uuid', [this.id, uuid]), 'result');
  }

  async vmRecord(ref: string): Promise<VmRecord> {
    return vmRecordOf('VM.get_record', ref, await this.client.call('VM.get_record', [this.id, ref]));
  }

  async powerState(ref: string): Promise<string> {
    return stringOf('VM.get_power_state', await this.client.call('VM.get_power_state', [this.id, ref]), 'result');
  }

  async nvram(ref: string): Promise<ReadonlyMap<string, string>> {
    return stringMapOf('VM.get_NVRAM', await this.client.call('VM.get_NVRAM', [this.id, ref]), 'result');
  }

  /** VM.set_NVRAM_EFI_variables: XAPI replaces NVRAM["EFI-variables"]; it does not check the power state. */
  async setNvramEfiVariables(ref: string, base64: string): Promise<void> {
    await this.client.call('VM.set_NVRAM_EFI_variables', [this.id, ref, base64]);
  }

  /** The pool's reference (a pool has exactly one). */
  async pool(): Promise<string> {
    const method = 'pool.get_all';
    const value = await this.client.call(method, [this.id]);
    if (!Array.isArray(value) || value.length !== 1 || typeof value[0] !== 'string')
      throw protocolError(method, 'result is not a list of one pool reference');
    return value[0];
  }

  /** Pool.custom_uefi_certificates: base64 of a tar of `<name>.auth` files, or "" (the defaults apply). */
  async customUefiCertificates(pool: string): Promise<string> {
    const method = 'pool.get_custom_uefi_certificates';
    return stringOf(method, await this.client.call(method, [this.id, pool]), 'result');
  }

  /** Pool.uefi_certificates: the hosts' default auth files (read-only, the same form). */
  async uefiCertificates(pool: string): Promise<string> {
    const method = 'pool.get_uefi_certificates';
    return stringOf(method, await this.client.call(method, [this.id, pool]), 'result');
  }

  /** XAPI writes the files to every host's /var/lib/varstored; "" goes back to the defaults. */
  async setCustomUefiCertificates(pool: string, value: string): Promise<void> {
    await this.client.call('pool.set_custom_uefi_certificates', [this.id, pool, value]);
  }
}

/** XAPI's pool API on a socket. */
export class PoolClient {
  readonly client: XapiClient;

  constructor(options: PoolClientOptions = {}) {
    this.client = new XapiClient({
      ...options,
      maxResponseBytes: POOL_MAX_RESPONSE_BYTES,
      maxElements: POOL_MAX_ELEMENTS,
    });
  }

  get socket(): string {
    return this.client.socket;
  }

  /**
   * Logs in (as root over the local socket, as the C tools do), runs `work`, and logs out whatever
   * happened; a failing logout after successful work is not an error (the session expires).
   */
  async withSession<T>(work: (session: PoolSession) => Promise<T>): Promise<T> {
    const id = await this.client.login();
    let result: T;
    try {
      result = await work(new PoolSession(this.client, id));
    } catch (error) {
      await this.client.logout(id).catch(() => undefined);
      throw error;
    }
    await this.client.logout(id).catch(() => undefined);
    return result;
  }
}
