import { lstatSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** The HTTP side shared by the test doubles: XAPI's HTTP server on a Unix socket. */
export interface DoubleServer {
  /** Stops accepting and drops every open connection. */
  close(): Promise<void>;
}

/**
 * Listens on `socketPath` (a stale socket there is replaced) and hands each request's whole body to
 * `handle`. A body over `maxRequestBytes` gets 413 and the connection is closed, as XAPI refuses an
 * oversized request; a handler that throws closes its connection.
 */
export async function listenDouble(
  socketPath: string,
  maxRequestBytes: number,
  handle: (req: IncomingMessage, res: ServerResponse, body: Buffer) => Promise<void>,
): Promise<DoubleServer> {
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    res.on('error', () => undefined);
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxRequestBytes) {
        if (!tooLarge) {
          tooLarge = true;
          res.writeHead(413, { Connection: 'close', 'Content-Length': 0 });
          res.end();
          req.socket.end();
        }
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) return;
      handle(req, res, Buffer.concat(chunks)).catch(() => req.socket.destroy());
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  try {
    if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath);
  } catch {
    // nothing there
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
