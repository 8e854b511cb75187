import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

let sequence = 0;

/** A failure of `replaceFile`; `replaced` says whether the new content may already be in place. */
export class ReplaceError extends Error {
  constructor(
    message: string,
    readonly replaced: boolean,
  ) {
    super(message);
  }
}

/** The error without the path Node appends: it would name our temporary file, not the caller's. */
function reason(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.replace(/, \w+ '[^']*'(?: -> '[^']*')?$/, '');
}

/**
 * Replaces `path` with `bytes` so that a crash at any point leaves either the old or the new
 * content, and the new one is on disk when it returns: write a temporary file in the same
 * directory, fsync it, rename it over `path`, fsync the directory. Synchronous, as the C daemon
 * writes: each step of the asynchronous API is a round trip through libuv's thread pool, which
 * cost a third of a write's time (BENCHMARKS.md, durable-write), while the daemon has nothing else
 * to do during the write (the guest's vCPU waits for the answer).
 */
export function replaceFileSync(path: string, bytes: Uint8Array): void {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${++sequence}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temp, 'wx', 0o600);
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
    const closing = fd;
    fd = undefined;
    closeSync(closing);
    renameSync(temp, path);
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // Reporting the first failure.
      }
    }
    try {
      rmSync(temp, { force: true });
    } catch {
      // A leftover temporary file is harmless; the write's own failure is the one to report.
    }
    throw new ReplaceError(`${path}: cannot write: ${reason(e)}`, false);
  }
  // The rename is durable only once the directory entry is.
  try {
    const d = openSync(dir, 'r');
    try {
      fsyncSync(d);
    } finally {
      closeSync(d);
    }
  } catch (e) {
    throw new ReplaceError(`${path}: written but its directory could not be synced: ${reason(e)}`, true);
  }
}

/** `replaceFileSync` for callers that await; it settles once the new content is on disk. */
export async function replaceFile(path: string, bytes: Uint8Array): Promise<void> {
  replaceFileSync(path, bytes);
}

/**
 * Reads a whole file of at most `maxSize` bytes. Resolves undefined when it does not exist; any
 * other failure rejects with an Error naming the file.
 */
export async function readBoundedFile(path: string, maxSize: number): Promise<Uint8Array | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${path}: cannot open: ${reason(e)}`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error(`${path}: not a regular file`);
    if (stat.size > maxSize)
      throw new Error(`${path}: ${stat.size} bytes is larger than any valid VARS blob (${maxSize})`);
    // Read at most maxSize + 1 so a file that grows under us is still caught.
    const buffer = new Uint8Array(Math.min(stat.size, maxSize) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) throw new Error(`${path}: grew while being read`);
    }
    return buffer.subarray(0, length);
  } catch (e) {
    if (e instanceof Error && e.message.startsWith(`${path}:`)) throw e;
    throw new Error(`${path}: cannot read: ${reason(e)}`);
  } finally {
    await handle.close().catch(() => undefined);
  }
}
