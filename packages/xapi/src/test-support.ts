/** Helpers shared by this package's tests (not exported from the package). */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempSocketDir(): { path(name: string): string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'vmsb-xapi-'));
  return { path: (name) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RawServer {
  /** Every connection's received bytes, in connection order. */
  readonly received: Buffer[];
  close(): Promise<void>;
}

/**
 * A bare Unix-socket server for wire-level tests: `onRequest` sees the bytes received so far on a
 * connection and the socket, and decides when and what to answer.
 */
export async function startRawServer(
  path: string,
  onData: (received: Buffer, socket: Socket) => void,
): Promise<RawServer> {
  const received: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    const index = received.push(Buffer.alloc(0)) - 1;
    socket.on('data', (chunk: Buffer) => {
      received[index] = Buffer.concat([received[index]!, chunk]);
      onData(received[index]!, socket);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/** The exact bytes the C varstored writes for an XML-RPC call: what the client must send too. */
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

/** Whether a complete request (headers and Content-Length body) has arrived. */
export function requestComplete(bytes: Buffer): boolean {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const length = /\r\nContent-Length: (\d+)\r\n/i.exec(bytes.subarray(0, end + 2).toString('latin1'));
  return bytes.length >= end + 4 + Number(length?.[1] ?? 0);
}

export const SUCCESS_NIL =
  '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member>' +
  '<member><name>Value</name><value><nil/></value></member></struct></value></param></params></methodResponse>';

export function successString(value: string): string {
  return SUCCESS_NIL.replace('<nil/>', value);
}

export function httpOk(body: string, extraHeaders = ''): Buffer {
  const bytes = Buffer.from(body, 'utf8');
  return Buffer.concat([
    Buffer.from(`HTTP/1.1 200 OK\r\n${extraHeaders}Content-Length: ${bytes.length}\r\n\r\n`, 'latin1'),
    bytes,
  ]);
}

/** A clock that moves only when told to, or when something sleeps on it. */
export class ManualClock {
  time = 1_000_000;
  readonly sleeps: number[] = [];
  /** Called when a sleep starts (before time advances), e.g. to record the order of events. */
  onSleep: ((ms: number) => void) | undefined;
  now = (): number => this.time;
  sleep = async (ms: number): Promise<void> => {
    this.sleeps.push(ms);
    this.onSleep?.(ms);
    this.time += ms;
  };
  advance(ms: number): void {
    this.time += ms;
  }
}
