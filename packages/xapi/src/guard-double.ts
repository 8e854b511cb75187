/**
 * A test double that stands in for xapi-guard's per-VM varstored socket and the XAPI behind it.
 *
 * In production xenopsd starts the daemon with `--arg socket:/xapi-depriv-socket`; xapi-guard
 * serves XML-RPC over HTTP on that Unix socket, allows only the methods below, binds every call to
 * the one VM the socket belongs to, and ignores session and VM reference arguments:
 *
 * | method | params | result |
 * |---|---|---|
 * | session.login_with_password | 4 strings | "DUMMYSESSION" |
 * | session.logout | session | nil |
 * | VM.get_by_uuid | session, uuid | "DUMMYVM" |
 * | VM.get_NVRAM | session, vm | the VM's NVRAM string map |
 * | VM.set_NVRAM_EFI_variables | session, vm, value | nil; NVRAM["EFI-variables"] = value |
 * | VM.set_NVRAM_EFI_variables_v2 | session, vm, value, update | nil; as above; update "yes" marks the certificates state "ok" |
 * | VM.get_secureboot_certificates_state | session, vm | "ok" / "update_available" / "update_on_boot" |
 * | message.create | session, name, priority (int), class, uuid, body | nil; name/class/uuid forced to VM_SECURE_BOOT_FAILED/VM/this VM |
 *
 * Any other method answers the XAPI failure MESSAGE_METHOD_UNKNOWN; a wrong number of parameters
 * MESSAGE_PARAMETER_COUNT_MISMATCH; a parameter of the wrong type FIELD_TYPE_ERROR; a non-POST
 * request HTTP 405. Answers are written as XAPI's OCaml RPC library writes them (untyped string
 * values, `<nil/>` for unit). This is a real HTTP server on a real Unix socket (node:http); it
 * records every call and can be told to fail, hang up, answer garbage or answer late.
 * Not modelled: XAPI recomputing the certificates state after an unqualified NVRAM write.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { listenDouble } from './double-server.js';
import { decodeMethodCall, encodeMethodResponse, type XmlRpcValue } from './xmlrpc.js';

export type CertificatesState = 'ok' | 'update_available' | 'update_on_boot';

export interface GuardDoubleOptions {
  /** Where to listen. A stale socket file there is replaced. */
  readonly socketPath: string;
  /** The VM this socket belongs to (messages are raised against it). Default: a random UUID. */
  readonly vmUuid?: string;
  /** The VM's NVRAM map at start (e.g. `{ 'EFI-variables': base64 }`). Default: empty (first boot). */
  readonly nvram?: Readonly<Record<string, string>>;
  readonly certificatesState?: CertificatesState;
  /** Requests with a larger body get HTTP 413. Default 1 MiB. */
  readonly maxRequestBytes?: number;
}

export type GuardFault =
  /** Answer an XAPI Failure and skip the call's effect. Default description: INTERNAL_ERROR. */
  | { readonly kind: 'failure'; readonly errorDescription?: readonly string[] }
  /** Close the connection without answering; the call has no effect. */
  | { readonly kind: 'close' }
  /** Answer something that is not XML-RPC: `raw` bytes as the whole reply, or else an HTTP 200 with a non-XML body. No effect. */
  | { readonly kind: 'garbage'; readonly raw?: Uint8Array }
  /** Answer with this HTTP status and no XML-RPC body. No effect. */
  | { readonly kind: 'http-status'; readonly status: number }
  /** Perform the call at once but answer only after `delayMs` (the answer is dropped if the double closes first). */
  | { readonly kind: 'slow'; readonly delayMs: number };

export interface FaultOptions {
  /** How many calls it applies to. Default 1. */
  readonly count?: number;
  /** Only calls of this method (e.g. "VM.set_NVRAM_EFI_variables"). Default: any. */
  readonly method?: string;
}

export interface GuardCall {
  readonly httpMethod: string;
  readonly path: string;
  /** Raw header lines as received, name and value. */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
  /** The XML-RPC method, or undefined when the body did not parse. */
  readonly method?: string;
  readonly params: readonly XmlRpcValue[];
  /** The fault applied to this call, if any. */
  readonly fault?: GuardFault['kind'];
}

export interface GuardMessage {
  readonly name: string;
  readonly priority: number | bigint;
  readonly cls: string;
  readonly objUuid: string;
  readonly body: string;
}

export interface GuardDouble {
  readonly socketPath: string;
  readonly vmUuid: string;
  /** Every request received, in order. */
  readonly calls: readonly GuardCall[];
  /** Messages created through message.create. */
  readonly messages: readonly GuardMessage[];
  /** The VM's NVRAM map; tests may read and change it. */
  readonly nvram: Map<string, string>;
  certificatesState: CertificatesState;
  /** Calls of one method (convenience over `calls`). */
  callsOf(method: string): readonly GuardCall[];
  inject(fault: GuardFault, options?: FaultOptions): void;
  clearFaults(): void;
  close(): Promise<void>;
}

interface FaultRule {
  readonly fault: GuardFault;
  readonly method?: string;
  remaining: number;
}

type ParamType = 'string' | 'int';

interface MethodSpec {
  readonly params: readonly ParamType[];
  readonly run: (params: readonly XmlRpcValue[]) => XmlRpcValue;
}

const EFI_VARIABLES = 'EFI-variables';

function success(value: XmlRpcValue): string {
  return encodeMethodResponse(
    new Map<string, XmlRpcValue>([
      ['Status', 'Success'],
      ['Value', value],
    ]),
  );
}

function failure(description: XmlRpcValue): string {
  return encodeMethodResponse(
    new Map<string, XmlRpcValue>([
      ['Status', 'Failure'],
      ['ErrorDescription', description],
    ]),
  );
}

export async function startGuardDouble(options: GuardDoubleOptions): Promise<GuardDouble> {
  const { socketPath } = options;
  const vmUuid = options.vmUuid ?? randomUUID();
  const maxRequestBytes = options.maxRequestBytes ?? 1024 * 1024;
  const nvram = new Map<string, string>(Object.entries(options.nvram ?? {}));
  const calls: GuardCall[] = [];
  const messages: GuardMessage[] = [];
  const rules: FaultRule[] = [];
  let closing = false;

  const state = { certificatesState: options.certificatesState ?? ('ok' as CertificatesState) };

  const methods: Readonly<Record<string, MethodSpec>> = {
    'session.login_with_password': { params: ['string', 'string', 'string', 'string'], run: () => 'DUMMYSESSION' },
    'session.logout': { params: ['string'], run: () => null },
    'VM.get_by_uuid': { params: ['string', 'string'], run: () => 'DUMMYVM' },
    'VM.get_NVRAM': { params: ['string', 'string'], run: () => new Map<string, XmlRpcValue>(nvram) },
    'VM.set_NVRAM_EFI_variables': {
      params: ['string', 'string', 'string'],
      run: (p) => {
        nvram.set(EFI_VARIABLES, p[2] as string);
        return null;
      },
    },
    'VM.set_NVRAM_EFI_variables_v2': {
      params: ['string', 'string', 'string', 'string'],
      run: (p) => {
        nvram.set(EFI_VARIABLES, p[2] as string);
        if (p[3] === 'yes') state.certificatesState = 'ok';
        return null;
      },
    },
    'VM.get_secureboot_certificates_state': { params: ['string', 'string'], run: () => state.certificatesState },
    'message.create': {
      params: ['string', 'string', 'int', 'string', 'string', 'string'],
      run: (p) => {
        messages.push({
          name: 'VM_SECURE_BOOT_FAILED',
          priority: p[2] as number | bigint,
          cls: 'VM',
          objUuid: vmUuid,
          body: p[5] as string,
        });
        return null;
      },
    },
  };

  /** The XML-RPC answer for a call (and its effect), as xapi-guard would give it. */
  const dispatch = (method: string, params: readonly XmlRpcValue[]): string => {
    const spec = Object.hasOwn(methods, method) ? methods[method] : undefined;
    if (!spec) return failure(['MESSAGE_METHOD_UNKNOWN', method]);
    if (params.length !== spec.params.length) {
      return failure(['MESSAGE_PARAMETER_COUNT_MISMATCH', method, String(spec.params.length), String(params.length)]);
    }
    for (const [i, type] of spec.params.entries()) {
      const value = params[i];
      const ok = type === 'string' ? typeof value === 'string' : typeof value === 'number' || typeof value === 'bigint';
      if (!ok) return failure(['FIELD_TYPE_ERROR', `${method} parameter ${i + 1}: expected ${type}`]);
    }
    return success(spec.run(params));
  };

  const takeFault = (method: string | undefined): GuardFault | undefined => {
    const index = rules.findIndex((rule) => rule.method === undefined || rule.method === method);
    const rule = rules[index];
    if (!rule) return undefined;
    rule.remaining -= 1;
    if (rule.remaining <= 0) rules.splice(index, 1);
    return rule.fault;
  };

  const reply = (res: ServerResponse, status: number, body: string) => {
    const bytes = Buffer.from(body, 'utf8');
    res.writeHead(status, { 'Content-Length': bytes.length });
    res.end(bytes);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> => {
    const headers: [string, string][] = [];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
    const record = { httpMethod: req.method ?? '', path: req.url ?? '', headers, body: body.toString('utf8') };
    if (req.method !== 'POST') {
      calls.push({ ...record, params: [] });
      reply(res, 405, failure('Not allowed'));
      return;
    }
    let call: { method: string; params: readonly XmlRpcValue[] } | undefined;
    let parseError: string | undefined;
    try {
      call = decodeMethodCall(new TextDecoder('utf-8', { fatal: true }).decode(body));
    } catch (error) {
      parseError = (error as Error).message;
    }
    const fault = takeFault(call?.method);
    const params = call?.params ?? [];
    calls.push(
      call
        ? { ...record, method: call.method, params, ...(fault ? { fault: fault.kind } : {}) }
        : { ...record, params, ...(fault ? { fault: fault.kind } : {}) },
    );

    switch (fault?.kind) {
      case 'failure':
        reply(res, 200, failure([...(fault.errorDescription ?? ['INTERNAL_ERROR', 'injected failure'])]));
        return;
      case 'close':
        req.socket.destroy();
        return;
      case 'garbage':
        if (fault.raw) req.socket.end(Buffer.from(fault.raw));
        else reply(res, 200, '\u0000garbage: this is not XML-RPC <');
        return;
      case 'http-status':
        reply(res, fault.status, '');
        return;
      default:
        break;
    }
    const answer = call
      ? dispatch(call.method, call.params)
      : failure(['INTERNAL_ERROR', `unreadable request: ${parseError ?? ''}`]);
    if (fault?.kind === 'slow') {
      await delay(fault.delayMs);
      if (closing || req.socket.destroyed) return;
    }
    reply(res, 200, answer);
  };

  const server = await listenDouble(socketPath, maxRequestBytes, handle);

  return {
    socketPath,
    vmUuid,
    calls,
    messages,
    nvram,
    get certificatesState() {
      return state.certificatesState;
    },
    set certificatesState(value: CertificatesState) {
      state.certificatesState = value;
    },
    callsOf: (method) => calls.filter((call) => call.method === method),
    inject(fault, faultOptions = {}) {
      const count = faultOptions.count ?? 1;
      if (!Number.isInteger(count) || count < 1) throw new RangeError('fault count must be a positive integer');
      rules.push({
        fault,
        remaining: count,
        ...(faultOptions.method !== undefined ? { method: faultOptions.method } : {}),
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
