import { createHash } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { access, constants, realpath, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import { replaceFile } from '@vmsb/nvram';

/**
 * The pidfile: locked for the daemon's whole life so that a second daemon on the same file
 * refuses to start, and written (`<pid>\n`) only once the daemon is ready.
 *
 * Node has no fcntl/flock, so the lock is a Linux abstract-namespace socket named after the
 * pidfile's real path: binding it is exclusive and the kernel releases it when the process dies,
 * even by SIGKILL — the same lifetime as the C daemon's lockf() lock.
 */
export interface PidfileLock {
  readonly path: string;
  /** Writes `<pid>\n` atomically: the file appears whole, and only now. Once only; later calls do nothing. */
  publish(): Promise<void>;
  readonly published: boolean;
  /** Removes the pidfile if it is still ours and drops the lock (synchronous: used at exit). */
  release(): void;
}

export class PidfileLocked extends Error {}

export async function lockPidfile(path: string): Promise<PidfileLock> {
  const absolute = resolve(path);
  let directory: string;
  try {
    directory = await realpath(dirname(absolute));
    await access(directory, constants.W_OK);
  } catch (e) {
    throw new Error(`Could not open pidfile '${path}': ${(e as Error).message}`);
  }
  const canonical = `${directory}/${basename(absolute)}`;
  const lockName = `\0vmsb-varstored-pidfile-${createHash('sha256').update(canonical).digest('hex').slice(0, 48)}`;

  const server = createServer((socket) => {
    // Whoever probes the lock learns who holds it.
    socket.on('error', () => undefined);
    socket.end(`${process.pid}\n`);
  });
  try {
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(lockName, () => {
        server.off('error', fail);
        ok();
      });
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      const holder = await lockHolder(lockName);
      throw new PidfileLocked(
        `Failed to lock pidfile '${path}': it is held by another varstored${holder ? ` (pid ${holder})` : ''}`,
      );
    }
    throw new Error(`Failed to lock pidfile '${path}': ${(e as Error).message}`);
  }
  server.on('error', () => undefined);

  // We hold the lock, so any file there is left over from a daemon that died: it must not
  // signal readiness for this one.
  await rm(canonical, { force: true });

  let published = false;
  return {
    path,
    publish: async () => {
      if (published) return;
      await replaceFile(canonical, new TextEncoder().encode(`${process.pid}\n`));
      published = true;
    },
    get published() {
      return published;
    },
    release: () => {
      if (published) {
        try {
          if (readFileSync(canonical, 'utf8') === `${process.pid}\n`) unlinkSync(canonical);
        } catch {
          // Already gone: nothing to release.
        }
      }
      server.close();
    },
  };
}

function lockHolder(name: string): Promise<string | undefined> {
  return new Promise((done) => {
    let text = '';
    const socket = createConnection(name);
    const finish = (): void => {
      socket.destroy();
      const pid = text.trim();
      done(/^\d+$/.test(pid) ? pid : undefined);
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > 32) finish();
    });
    socket.on('end', finish);
    socket.on('error', () => done(undefined));
    socket.setTimeout(1000, finish);
  });
}
