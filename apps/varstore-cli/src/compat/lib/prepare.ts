import type { Authenticator } from '@vmsb/efi';
import { Limits } from '@vmsb/protocol';
import type { CommandLine } from './command-line.js';
import type { ToolIo } from './io.js';
import { argumentBytes, widenName } from './names.js';
import { dropPrivileges, type NativeLoader } from './privileges.js';
import { openSession, type SessionNvram, type ToolSession } from './session.js';

export interface PrepareOptions {
  /** The tool may write time-based authenticated variables (rm, set, sb-state). */
  readonly authenticated: boolean;
  /** Replaces @vmsb/xen's loader (in-process use). */
  readonly loadNative?: NativeLoader;
  /** Replaces XAPI (in-process use). */
  readonly nvram?: SessionNvram;
}

/**
 * The C tools' start: everything that needs the caller's privileges and files is loaded, privileges
 * are dropped, then the VM's NVRAM is read. Prints why and resolves to undefined on failure.
 */
export async function openToolSession(
  commandLine: CommandLine,
  uuid: string,
  io: ToolIo,
  options: PrepareOptions,
): Promise<ToolSession | undefined> {
  let authenticator: Authenticator | undefined;
  if (options.authenticated) {
    // Loaded now: after a chroot nothing more can be loaded from disk.
    const { createAuthenticator } = await import('@vmsb/auth');
    authenticator = createAuthenticator();
  }
  const failure = await dropPrivileges(commandLine.privileges, options.loadNative);
  if (failure !== undefined) {
    io.err(`${failure}\n`);
    return undefined;
  }
  try {
    return await openSession(
      {
        uuid,
        ...(commandLine.socket !== undefined ? { socket: commandLine.socket } : {}),
        ...(authenticator !== undefined ? { authenticator } : {}),
        io,
      },
      options.nvram,
    );
  } catch (e) {
    io.err(`${e instanceof Error ? e.message : String(e)}\n`);
    return undefined;
  }
}

/** A variable name argument widened to UTF-16 as the C tools do; undefined (reported) when too long. */
export function nameArgument(text: string | Uint8Array, io: ToolIo): Uint8Array | undefined {
  const name = widenName(typeof text === 'string' ? argumentBytes(text) : text);
  if (name.length > Limits.NAME_MAX) {
    io.err(`Variable name too long: ${name.length} bytes as UTF-16 (at most ${Limits.NAME_MAX})\n`);
    return undefined;
  }
  return name;
}
