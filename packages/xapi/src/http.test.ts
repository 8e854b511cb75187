import { createServer as createHttpServer } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HttpExchangeError, postXmlRpc } from './http.js';
import {
  frameRequest,
  httpOk,
  requestComplete,
  startRawServer,
  tempSocketDir,
  type RawServer,
} from './test-support.js';

let dir: ReturnType<typeof tempSocketDir>;
let server: RawServer | undefined;
beforeEach(() => {
  dir = tempSocketDir();
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  dir.remove();
});

async function failureOf(promise: Promise<unknown>): Promise<HttpExchangeError['failure']> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(HttpExchangeError);
    return (error as HttpExchangeError).failure;
  }
  throw new Error('expected a rejection');
}

describe('postXmlRpc over a Unix socket', () => {
  it('sends the framed request and reads a Content-Length answer without waiting for EOF', async () => {
    const path = dir.path('s');
    server = await startRawServer(path, (bytes, socket) => {
      if (requestComplete(bytes)) socket.write(httpOk('<answer/>')); // connection deliberately left open
    });
    const response = await postXmlRpc({ socketPath: path, body: '<call>é</call>', timeoutMs: 10_000 });
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe('<answer/>');
    // Byte for byte what the C varstored sends: its header lines, in its order, and nothing more.
    expect(server.received[0]!.toString('latin1')).toBe(
      'POST / HTTP/1.1\r\nHost: _var_lib_xcp_xapi\r\nAccept-Encoding: identity\r\nUser-Agent: varstored/0.1\r\n' +
        'Connection: close\r\nContent-Type: text/xml\r\nContent-Length: 15\r\n\r\n<call>\xc3\xa9</call>',
    );
    expect(server.received[0]).toEqual(frameRequest('<call>é</call>'));
  });

  it('reads to end of stream when there is no Content-Length', async () => {
    const path = dir.path('s');
    server = await startRawServer(path, (bytes, socket) => {
      if (requestComplete(bytes)) socket.end('HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n<a>');
    });
    const response = await postXmlRpc({ socketPath: path, body: 'x', timeoutMs: 10_000 });
    expect(response.body.toString()).toBe('<a>');
  });

  it('reports the status of a non-200 answer', async () => {
    const path = dir.path('s');
    server = await startRawServer(path, (bytes, socket) => {
      if (requestComplete(bytes)) socket.end('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n');
    });
    expect((await postXmlRpc({ socketPath: path, body: 'x', timeoutMs: 10_000 })).status).toBe(500);
  });

  it('works against an independent HTTP server (node:http)', async () => {
    const path = dir.path('h');
    const seen: { method?: string; headers?: Record<string, string | string[] | undefined>; body?: string } = {};
    const http = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        Object.assign(seen, { method: req.method, headers: req.headers, body });
        res.end('<ok/>');
      });
    });
    await new Promise<void>((resolve) => http.listen(path, resolve));
    try {
      const response = await postXmlRpc({ socketPath: path, body: '<call>é</call>', timeoutMs: 10_000 });
      expect(response.status).toBe(200);
      expect(response.body.toString()).toBe('<ok/>');
      expect(seen.method).toBe('POST');
      expect(seen.body).toBe('<call>é</call>');
      expect(seen.headers).toMatchObject({
        host: '_var_lib_xcp_xapi',
        'content-type': 'text/xml',
        connection: 'close',
        'content-length': '15',
      });
    } finally {
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });

  it('fails with a transport error when nothing listens', async () => {
    const failure = await failureOf(postXmlRpc({ socketPath: dir.path('absent'), body: 'x', timeoutMs: 10_000 }));
    expect(failure).toMatchObject({ kind: 'transport' });
    expect(failure.reason).toMatch(/ENOENT/);
  });

  it('fails with a transport error when the peer hangs up without answering', async () => {
    const path = dir.path('s');
    server = await startRawServer(path, (bytes, socket) => {
      if (requestComplete(bytes)) socket.end();
    });
    expect(await failureOf(postXmlRpc({ socketPath: path, body: 'x', timeoutMs: 10_000 }))).toEqual({
      kind: 'transport',
      reason: 'connection closed without an answer',
    });
  });

  it('gives up after the timeout when no answer comes', async () => {
    const path = dir.path('s');
    server = await startRawServer(path, () => undefined);
    const failure = await failureOf(postXmlRpc({ socketPath: path, body: 'x', timeoutMs: 100 }));
    expect(failure).toEqual({ kind: 'transport', reason: 'no complete answer within 100 ms' });
  });

  it('refuses answers over the size limit', async () => {
    const path = dir.path('s');
    server = await startRawServer(path, (bytes, socket) => {
      if (requestComplete(bytes)) socket.end(httpOk('x'.repeat(300 * 1024)));
    });
    const failure = await failureOf(postXmlRpc({ socketPath: path, body: 'x', timeoutMs: 10_000 }));
    expect(failure.kind).toBe('protocol');
    expect(failure.reason).toMatch(/larger than 262144 bytes/);
  });

  it('refuses an unbounded stream over the size limit', async () => {
    const path = dir.path('s');
    server = await startRawServer(path, (bytes, socket) => {
      if (requestComplete(bytes))
        socket.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), Buffer.alloc(300 * 1024, 0x41)]));
    });
    const failure = await failureOf(postXmlRpc({ socketPath: path, body: 'x', timeoutMs: 10_000 }));
    expect(failure.reason).toMatch(/larger than/);
  });

  it('reports a truncated body', async () => {
    const path = dir.path('s');
    server = await startRawServer(path, (bytes, socket) => {
      if (requestComplete(bytes)) socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    });
    expect(await failureOf(postXmlRpc({ socketPath: path, body: 'x', timeoutMs: 10_000 }))).toEqual({
      kind: 'protocol',
      reason: 'response body truncated (3 of 10 bytes)',
    });
  });

  it('reports garbage instead of HTTP', async () => {
    const path = dir.path('s');
    server = await startRawServer(path, (bytes, socket) => {
      if (requestComplete(bytes)) socket.end('\x00\x01garbage\r\n\r\n');
    });
    const failure = await failureOf(postXmlRpc({ socketPath: path, body: 'x', timeoutMs: 10_000 }));
    expect(failure.kind).toBe('protocol');
    expect(failure.reason).toMatch(/^not an HTTP response/);
  });
});

describe('postXmlRpc refuses what varstored cannot read', () => {
  async function answer(text: string | Buffer) {
    const path = dir.path('s');
    server = await startRawServer(path, (bytes, socket) => {
      if (requestComplete(bytes)) socket.end(text);
    });
    return failureOf(postXmlRpc({ socketPath: path, body: 'x', timeoutMs: 10_000 }));
  }

  it.each([
    [
      'a chunked body',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
      /^unsupported Transfer-Encoding "chunked"$/,
    ],
    ['a bad Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /^not an HTTP response: /],
    [
      'conflicting Content-Lengths',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
      /^not an HTTP response: /,
    ],
    ['a malformed header', 'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', /^not an HTTP response: /],
    ['a bad status line', 'HTTP/2 200\r\n\r\n', /^not an HTTP response: /],
    ['a header cut short', 'HTTP/1.1 200 OK\r\nContent-Le', /^connection closed inside the response header$/],
    [
      'an oversized header block',
      `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`,
      /^response header block too large$/,
    ],
  ])('refuses %s', async (_what, text, reason) => {
    const failure = await answer(text);
    expect(failure.kind).toBe('protocol');
    expect(failure.reason).toMatch(reason);
  });

  it('counts the status line and headers against the limit, and drops the connection without reading on', async () => {
    const path = dir.path('s');
    let sentWhenClosed: Promise<number> | undefined;
    server = await startRawServer(path, (bytes, socket) => {
      if (!requestComplete(bytes) || sentWhenClosed) return;
      let sent = 0;
      sentWhenClosed = new Promise((resolve) => socket.on('close', () => resolve(sent)));
      // The body alone would fit the limit; with the 44 bytes of status line and header it does not.
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n');
      const slice = Buffer.alloc(16 * 1024, 0x41);
      const more = (): void => {
        if (socket.destroyed || sent >= 1_000_000) return;
        sent += slice.length;
        socket.write(slice, () => setTimeout(more, 1));
      };
      more();
    });
    const failure = await failureOf(
      postXmlRpc({ socketPath: path, body: 'x', timeoutMs: 10_000, maxResponseBytes: 1_000_043 }),
    );
    expect(failure).toEqual({ kind: 'protocol', reason: 'response larger than 1000043 bytes' });
    expect(await sentWhenClosed).toBeLessThan(1_000_000);
  });
});
