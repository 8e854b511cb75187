/**
 * XAPI calls over a Unix socket, one connection per call, as the C varstored makes them.
 * XAPI wraps every result in a struct: `Status` = "Success" with `Value`, or "Failure" with
 * `ErrorDescription` (an array whose first element names the error).
 */
import { HttpExchangeError, postXmlRpc } from './http.js';
import { XmlRpcError, decodeMethodResponse, encodeMethodCall, type XmlRpcValue } from './xmlrpc.js';

/** Where varstored looks for XAPI when no `socket:` argument is given. */
export const DEFAULT_XAPI_SOCKET = '/var/lib/xcp/xapi';
/** Per-call limit; xapi-guard itself gives up on XAPI after 120 s. */
export const DEFAULT_CALL_TIMEOUT_MS = 180_000;

export type XapiErrorKind =
  /** The socket could not be reached, the connection dropped, or no answer came in time. */
  | 'transport'
  /** The answer was not HTTP 200. */
  | 'http'
  /** The answer was not a readable XAPI response. */
  | 'protocol'
  /** XAPI answered Failure; `errorDescription` holds its error. */
  | 'failure';

export class XapiError extends Error {
  override readonly name = 'XapiError';
  constructor(
    readonly kind: XapiErrorKind,
    /** The XML-RPC method that failed. */
    readonly method: string,
    message: string,
    /** XAPI's ErrorDescription, flattened to strings (empty unless kind is 'failure'). */
    readonly errorDescription: readonly string[] = [],
  ) {
    super(message);
  }
}

export interface XapiClientOptions {
  /** Path of the Unix socket (xapi-guard's per-VM socket, or XAPI's own). */
  readonly socket?: string;
  readonly timeoutMs?: number;
  /** Largest answer read (headers and body); default MAX_RESPONSE_BYTES, varstored's limit. */
  readonly maxResponseBytes?: number;
  /** Most XML elements in one answer; default the XML-RPC decoder's MAX_ELEMENTS. */
  readonly maxElements?: number;
}

export type XmlRpcParam = XmlRpcValue;

export class XapiClient {
  readonly socket: string;
  readonly timeoutMs: number;
  private readonly maxResponseBytes: number | undefined;
  private readonly maxElements: number | undefined;

  constructor(options: XapiClientOptions = {}) {
    this.socket = options.socket ?? DEFAULT_XAPI_SOCKET;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.maxResponseBytes = options.maxResponseBytes;
    this.maxElements = options.maxElements;
  }

  /** One XAPI call; resolves to the `Value` of a Success, rejects with XapiError otherwise. */
  async call(method: string, params: readonly XmlRpcParam[]): Promise<XmlRpcValue> {
    const body = encodeMethodCall(method, params, 'typed');
    let response;
    try {
      response = await postXmlRpc({
        socketPath: this.socket,
        body,
        timeoutMs: this.timeoutMs,
        ...(this.maxResponseBytes !== undefined ? { maxResponseBytes: this.maxResponseBytes } : {}),
      });
    } catch (error) {
      if (error instanceof HttpExchangeError) {
        const where = error.failure.kind === 'transport' ? `XAPI socket ${this.socket}` : `answer from ${this.socket}`;
        throw new XapiError(error.failure.kind, method, `${method}: ${where}: ${error.failure.reason}`);
      }
      throw error;
    }
    if (response.status !== 200) {
      throw new XapiError('http', method, `${method}: XAPI answered HTTP ${response.status}`);
    }
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(response.body);
    } catch {
      throw new XapiError('protocol', method, `${method}: XAPI answer is not UTF-8`);
    }
    let decoded;
    try {
      decoded = decodeMethodResponse(text, this.maxElements !== undefined ? { maxElements: this.maxElements } : {});
    } catch (error) {
      if (error instanceof XmlRpcError)
        throw new XapiError('protocol', method, `${method}: unreadable XAPI answer: ${error.message}`);
      throw error;
    }
    if (decoded.kind === 'fault') {
      const description = ['XMLRPC_FAULT', String(decoded.code), decoded.message];
      throw new XapiError('failure', method, `${method}: XAPI error ${describe(description)}`, description);
    }
    const result = decoded.value;
    if (!(result instanceof Map))
      throw new XapiError('protocol', method, `${method}: XAPI answer is not a Status struct`);
    const status = result.get('Status');
    if (status === 'Success') return result.get('Value') ?? null;
    if (status === 'Failure') {
      const description = flatten(result.get('ErrorDescription') ?? null);
      throw new XapiError('failure', method, `${method}: XAPI error ${describe(description)}`, description);
    }
    throw new XapiError('protocol', method, `${method}: XAPI answer has no Success/Failure Status`);
  }

  /** session.login_with_password("root", "", "", ""): what varstored sends; the guard ignores it. */
  async login(): Promise<string> {
    return expectString(
      'session.login_with_password',
      await this.call('session.login_with_password', ['root', '', '', '']),
    );
  }

  async logout(session: string): Promise<void> {
    await this.call('session.logout', [session]);
  }

  async vmByUuid(session: string, uuid: string): Promise<string> {
    return expectString('VM.get_by_uuid', await this.call('VM.get_by_uuid', [session, uuid]));
  }

  /** VM.NVRAM as a string map. */
  async getNvram(session: string, vm: string): Promise<ReadonlyMap<string, string>> {
    const value = await this.call('VM.get_NVRAM', [session, vm]);
    if (!(value instanceof Map))
      throw new XapiError('protocol', 'VM.get_NVRAM', 'VM.get_NVRAM: result is not a struct');
    const out = new Map<string, string>();
    for (const [key, item] of value) {
      if (typeof item !== 'string')
        throw new XapiError('protocol', 'VM.get_NVRAM', `VM.get_NVRAM: NVRAM["${key.slice(0, 64)}"] is not a string`);
      out.set(key, item);
    }
    return out;
  }

  async setNvramEfiVariables(session: string, vm: string, base64: string): Promise<void> {
    await this.call('VM.set_NVRAM_EFI_variables', [session, vm, base64]);
  }

  /** message.create(session, name, priority, class, object uuid, body); the priority is an `<int>`. */
  async createMessage(
    session: string,
    name: string,
    priority: number,
    cls: string,
    objUuid: string,
    body: string,
  ): Promise<void> {
    await this.call('message.create', [session, name, priority, cls, objUuid, body]);
  }
}

function expectString(method: string, value: XmlRpcValue): string {
  if (typeof value !== 'string') throw new XapiError('protocol', method, `${method}: result is not a string`);
  return value;
}

/** ErrorDescription is normally a string array; nested arrays (OCaml variants) are flattened. */
function flatten(value: XmlRpcValue): string[] {
  if (Array.isArray(value)) return (value as readonly XmlRpcValue[]).flatMap((item) => flatten(item));
  if (value instanceof Map) return [...value].flatMap(([k, v]) => [k, ...flatten(v)]);
  if (value instanceof Uint8Array) return ['<binary>'];
  if (value === null) return [];
  return [String(value)];
}

function describe(description: readonly string[]): string {
  const [code, ...rest] = description;
  const text = rest.length > 0 ? `${code ?? ''} (${rest.join(', ')})` : (code ?? 'without a description');
  // An error description could be long or binary-ish; log a bounded, printable form.
  return text.slice(0, 300).replace(/[\x00-\x1f\x7f]/g, '?');
}
