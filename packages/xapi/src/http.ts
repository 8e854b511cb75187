/**
 * One HTTP/1.1 POST over a Unix stream socket with node:http, with the C varstored's headers in its
 * order and a bounded response. One connection per call (`Connection: close`), as varstored does.
 */
import { request as httpRequest } from 'node:http';

/** varstored accepts responses up to 256 KiB (headers and body together). */
export const MAX_RESPONSE_BYTES = 256 * 1024;
/** Header block limit inside the response. */
const MAX_HEADER_BYTES = 16 * 1024;

export interface HttpResponse {
  readonly status: number;
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

export interface PostOptions {
  readonly socketPath: string;
  readonly body: string;
  /** Give up (and close the connection) after this long without a complete answer. */
  readonly timeoutMs: number;
  readonly maxResponseBytes?: number;
}

/**
 * POST `body` and read the whole answer: to Content-Length when there is one, otherwise to the end
 * of the stream. Rejects with HttpExchangeError. An answer over the limit (status line, headers and
 * body) is refused as soon as it is known to be, and the connection dropped: it is never buffered.
 */
export function postXmlRpc(options: PostOptions): Promise<HttpResponse> {
  const limit = options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
  const content = Buffer.from(options.body, 'utf8');
  return new Promise<HttpResponse>((resolve, reject) => {
    let settled = false;
    const settle = (outcome: { ok: true; response: HttpResponse } | { ok: false; failure: HttpFailure }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      if (outcome.ok) resolve(outcome.response);
      else reject(new HttpExchangeError(outcome.failure));
    };
    const fail = (kind: HttpFailure['kind'], reason: string) => settle({ ok: false, failure: { kind, reason } });

    const request = httpRequest({
      socketPath: options.socketPath,
      method: 'POST',
      path: '/',
      // varstored's header lines, in its order; node:http adds none when these are given.
      headers: {
        Host: '_var_lib_xcp_xapi',
        'Accept-Encoding': 'identity',
        'User-Agent': 'varstored/0.1',
        Connection: 'close',
        'Content-Type': 'text/xml',
        'Content-Length': content.length,
      },
      agent: false,
      maxHeaderSize: MAX_HEADER_BYTES,
    });
    const timer = setTimeout(
      () => fail('transport', `no complete answer within ${options.timeoutMs} ms`),
      options.timeoutMs,
    );

    request.on('error', (error: NodeJS.ErrnoException & { reason?: string }) => {
      if (error.code === 'HPE_HEADER_OVERFLOW') fail('protocol', 'response header block too large');
      else if (error.code?.startsWith('HPE_'))
        fail('protocol', `not an HTTP response: ${printable(error.reason ?? error.message)}`);
      // node:http's name for a connection that ended before a whole response head.
      else if (error.code === 'ECONNRESET' && error.message === 'socket hang up') {
        if ((request.socket?.bytesRead ?? 0) === 0) fail('transport', 'connection closed without an answer');
        else fail('protocol', 'connection closed inside the response header');
      } else fail('transport', error.code ? `${error.code} (${error.message})` : error.message);
    });

    request.on('response', (response) => {
      const transferEncoding = response.headers['transfer-encoding'];
      if (transferEncoding !== undefined && transferEncoding.toLowerCase() !== 'identity') {
        // XAPI and xapi-guard send a Content-Length; varstored cannot read chunked bodies either.
        return fail('protocol', `unsupported Transfer-Encoding "${printable(transferEncoding)}"`);
      }
      let size = `HTTP/${response.httpVersion} ${response.statusCode} ${response.statusMessage}\r\n\r\n`.length;
      for (let i = 0; i + 1 < response.rawHeaders.length; i += 2)
        size += response.rawHeaders[i]!.length + response.rawHeaders[i + 1]!.length + 4;
      const declared = response.headers['content-length'];
      if (declared !== undefined && size + Number(declared) > limit)
        return fail('protocol', `response larger than ${limit} bytes`);
      const chunks: Buffer[] = [];
      let bodyBytes = 0;
      response.on('data', (chunk: Buffer) => {
        bodyBytes += chunk.length;
        if (size + bodyBytes > limit) fail('protocol', `response larger than ${limit} bytes`);
        else chunks.push(chunk);
      });
      response.on('end', () =>
        settle({ ok: true, response: { status: response.statusCode ?? 0, body: Buffer.concat(chunks) } }),
      );
      // The peer hung up inside the body (node:http then reports "aborted").
      response.on('error', () => undefined);
      response.on('close', () => {
        if (!response.complete)
          fail('protocol', `response body truncated (${bodyBytes} of ${declared ?? 'unknown'} bytes)`);
      });
    });

    // No half-close after the request: varstored keeps its side open and reads until EOF.
    request.end(content);
  });
}

function printable(text: string): string {
  return text.slice(0, 80).replace(/[^\x20-\x7e]/g, '?');
}
