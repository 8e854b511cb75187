/**
 * One HTTP/1.1 POST over a Unix stream socket, framed exactly as the C varstored frames it, with a
 * bounded response reader. One connection per call (`Connection: close`), as varstored does.
 */
import { createConnection } from 'node:net';

/** varstored accepts responses up to 256 KiB (headers and body together). */
export const MAX_RESPONSE_BYTES = 256 * 1024;
/** Header block limit inside the response. */
const MAX_HEADER_BYTES = 16 * 1024;

/** The exact request bytes varstored writes for an XML-RPC body. */
export function frameRequest(body: string): Buffer {
  const content = Buffer.from(body, 'utf8');
  const head =
    'POST / HTTP/1.1\r\n' +
    'Host: _var_lib_xcp_xapi\r\n' +
    'Accept-Encoding: identity\r\n' +
    'User-Agent: varstored/0.1\r\n' +
    'Connection: close\r\n' +
    'Content-Type: text/xml\r\n' +
    `Content-Length: ${content.length}\r\n` +
    '\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), content]);
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer;
}

export type HttpFailure =
  | { readonly kind: 'transport'; readonly reason: string }
  | { readonly kind: 'protocol'; readonly reason: string };

export class HttpExchangeError extends Error {
  override readonly name = 'HttpExchangeError';
  constructor(readonly failure: HttpFailure) {
    super(failure.reason);
  }
}

type HeadParse =
  | { readonly state: 'incomplete' }
  | { readonly state: 'error'; readonly reason: string }
  | {
      readonly state: 'ok';
      readonly status: number;
      readonly headers: Map<string, string>;
      readonly bodyOffset: number;
      readonly contentLength?: number;
    };

/** Parse the status line and headers once the blank line has arrived. */
export function parseResponseHead(bytes: Buffer): HeadParse {
  const end = bytes.indexOf('\r\n\r\n', 0, 'latin1');
  if (end < 0) {
    return bytes.length > MAX_HEADER_BYTES
      ? { state: 'error', reason: 'response header block too large' }
      : { state: 'incomplete' };
  }
  if (end > MAX_HEADER_BYTES) return { state: 'error', reason: 'response header block too large' };
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const statusLine = /^HTTP\/1\.[01] ([0-9]{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!statusLine) return { state: 'error', reason: `not an HTTP response: "${printable(lines[0] ?? '')}"` };
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const match = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (!match) return { state: 'error', reason: `malformed response header "${printable(line)}"` };
    const name = match[1]!.toLowerCase();
    const value = match[2]!;
    const previous = headers.get(name);
    if (previous !== undefined && name === 'content-length' && previous !== value) {
      return { state: 'error', reason: 'conflicting Content-Length headers' };
    }
    headers.set(name, previous !== undefined && name !== 'content-length' ? `${previous}, ${value}` : value);
  }
  const transferEncoding = headers.get('transfer-encoding');
  if (transferEncoding !== undefined && transferEncoding.toLowerCase() !== 'identity') {
    // XAPI and xapi-guard send a Content-Length; varstored cannot read chunked bodies either.
    return { state: 'error', reason: `unsupported Transfer-Encoding "${printable(transferEncoding)}"` };
  }
  const lengthText = headers.get('content-length');
  let contentLength: number | undefined;
  if (lengthText !== undefined) {
    if (!/^[0-9]{1,9}$/.test(lengthText))
      return { state: 'error', reason: `bad Content-Length "${printable(lengthText)}"` };
    contentLength = Number(lengthText);
  }
  const status = Number(statusLine[1]);
  const bodyOffset = end + 4;
  return contentLength === undefined
    ? { state: 'ok', status, headers, bodyOffset }
    : { state: 'ok', status, headers, bodyOffset, contentLength };
}

function printable(text: string): string {
  return text.slice(0, 80).replace(/[^\x20-\x7e]/g, '?');
}

export interface PostOptions {
  readonly socketPath: string;
  readonly body: string;
  /** Give up (and close the connection) after this long without a complete answer. */
  readonly timeoutMs: number;
  readonly maxResponseBytes?: number;
}

/**
 * POST `body` and read the whole answer. The response ends at Content-Length when there is one,
 * otherwise at end of stream. Rejects with HttpExchangeError; never reads more than the limit.
 */
export function postXmlRpc(options: PostOptions): Promise<HttpResponse> {
  const limit = options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
  const request = frameRequest(options.body);
  return new Promise<HttpResponse>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    let head: Extract<HeadParse, { state: 'ok' }> | undefined;
    const socket = createConnection({ path: options.socketPath });

    const finish = (outcome: { ok: true; response: HttpResponse } | { ok: false; failure: HttpFailure }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (outcome.ok) resolve(outcome.response);
      else reject(new HttpExchangeError(outcome.failure));
    };
    const timer = setTimeout(() => {
      finish({
        ok: false,
        failure: { kind: 'transport', reason: `no complete answer within ${options.timeoutMs} ms` },
      });
    }, options.timeoutMs);

    const tryComplete = (atEnd: boolean) => {
      // Large answers (a pool's VM records) arrive in many chunks: join them only once all are in.
      if (!atEnd && head?.contentLength !== undefined && received < head.bodyOffset + head.contentLength) return;
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      if (chunks.length > 1) chunks.splice(0, chunks.length, all);
      if (!head) {
        const parsed = parseResponseHead(all);
        if (parsed.state === 'error')
          return finish({ ok: false, failure: { kind: 'protocol', reason: parsed.reason } });
        if (parsed.state === 'incomplete') {
          if (atEnd) {
            const reason =
              all.length === 0 ? 'connection closed without an answer' : 'connection closed inside the response header';
            finish({ ok: false, failure: { kind: all.length === 0 ? 'transport' : 'protocol', reason } });
          }
          return;
        }
        head = parsed;
      }
      const available = all.length - head.bodyOffset;
      if (head.contentLength !== undefined) {
        if (head.bodyOffset + head.contentLength > limit) {
          return finish({ ok: false, failure: { kind: 'protocol', reason: `response larger than ${limit} bytes` } });
        }
        if (available >= head.contentLength) {
          const body = all.subarray(head.bodyOffset, head.bodyOffset + head.contentLength);
          return finish({ ok: true, response: { status: head.status, headers: head.headers, body } });
        }
        if (atEnd) {
          finish({
            ok: false,
            failure: {
              kind: 'protocol',
              reason: `response body truncated (${available} of ${head.contentLength} bytes)`,
            },
          });
        }
        return;
      }
      if (atEnd)
        finish({
          ok: true,
          response: { status: head.status, headers: head.headers, body: all.subarray(head.bodyOffset) },
        });
    };

    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) {
        finish({ ok: false, failure: { kind: 'protocol', reason: `response larger than ${limit} bytes` } });
        return;
      }
      chunks.push(chunk);
      tryComplete(false);
    });
    socket.on('end', () => tryComplete(true));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      finish({
        ok: false,
        failure: { kind: 'transport', reason: error.code ? `${error.code} (${error.message})` : error.message },
      });
    });
    socket.on('close', () => tryComplete(true));
    socket.on('connect', () => {
      // No half-close after the request: varstored keeps its side open and reads until EOF.
      socket.write(request);
    });
  });
}
