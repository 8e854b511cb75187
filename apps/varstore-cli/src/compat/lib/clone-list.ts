/**
 * The remove-on-clone lists `varstore-rm -c` applies: every file in /etc/xapi.d/efi-clone/
 * (VARSTORE_EFI_CLONE_DIR overrides the directory). Each line is `<GUID><blanks><name>`; empty
 * lines and lines starting with '#' are skipped; any other line that is not of that form makes
 * the whole run fail before XAPI is contacted.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ToolIo } from './io.js';
import { parseGuidArgument } from './names.js';

export const CLONE_LIST_DIR = '/etc/xapi.d/efi-clone';
export const CLONE_LIST_DIR_ENV = 'VARSTORE_EFI_CLONE_DIR';
/** Lists are a few lines; anything larger is not one. */
const MAX_LIST_BYTES = 1024 * 1024;

export interface CloneListEntry {
  /** The GUID as written in the file. */
  readonly guidText: string;
  readonly guid: Uint8Array;
  /** The name's bytes as written in the file. */
  readonly name: Uint8Array;
}

export type CloneListResult =
  | { readonly ok: true; readonly entries: readonly CloneListEntry[] }
  | { readonly ok: false; readonly message: string };

const isBlank = (b: number): boolean => b === 0x20 || b === 0x09;

/** Parses one list file's bytes (`path` names it in messages). */
export function parseCloneList(bytes: Uint8Array, path: string): CloneListResult {
  const entries: CloneListEntry[] = [];
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let start = 0;
  let lineNumber = 0;
  while (start < buffer.length) {
    let end = buffer.indexOf(0x0a, start);
    if (end < 0) end = buffer.length;
    lineNumber++;
    let stop = end;
    while (stop > start && (buffer[stop - 1] === 0x0d || buffer[stop - 1] === 0x0a)) stop--;
    const line = buffer.subarray(start, stop);
    start = end + 1;
    if (line.length === 0 || line[0] === 0x23 /* # */) continue;
    let nameStart = 36;
    while (nameStart < line.length && isBlank(line[nameStart]!)) nameStart++;
    const guidText = line.subarray(0, Math.min(36, line.length)).toString('latin1');
    const guid = nameStart > 36 ? parseGuidArgument(guidText) : undefined;
    if (guid === undefined || nameStart >= line.length) {
      return { ok: false, message: `Failed to parse line ${lineNumber} in '${path}'.` };
    }
    entries.push({ guidText, guid, name: new Uint8Array(line.subarray(nameStart)) });
  }
  return { ok: true, entries };
}

/**
 * Reads every file of the directory, in name order. A missing directory is an empty list, as in C.
 * Subdirectories are skipped.
 */
export async function readCloneLists(io: ToolIo): Promise<CloneListResult> {
  const dir = io.env[CLONE_LIST_DIR_ENV] || CLONE_LIST_DIR;
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch {
    return { ok: true, entries: [] };
  }
  const entries: CloneListEntry[] = [];
  for (const name of names) {
    const path = join(dir, name);
    let bytes: Uint8Array;
    try {
      const info = await stat(path);
      if (info.isDirectory()) continue;
      if (info.size > MAX_LIST_BYTES)
        return { ok: false, message: `Could not open '${path}': larger than ${MAX_LIST_BYTES} bytes` };
      bytes = await readFile(path);
    } catch (e) {
      const error = e as NodeJS.ErrnoException;
      return {
        ok: false,
        message: `Could not open '${path}': ${error.code ?? ''}${error.code ? ', ' : ''}${error.message}`,
      };
    }
    const parsed = parseCloneList(bytes, path);
    if (!parsed.ok) return parsed;
    entries.push(...parsed.entries);
  }
  return { ok: true, entries };
}
