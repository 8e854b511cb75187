import { readFileSync } from 'node:fs';
import { EfiStatus } from '@vmsb/protocol';
import { describe, expect, it } from 'vitest';
import { LazyAuthenticator } from './authenticator.js';
import { createLogger } from './log.js';

const quiet = createLogger('error', { stdout: { write: () => true }, stderr: { write: () => true } });
const write = {
  name: Uint8Array.of(0x50, 0),
  guid: new Uint8Array(16),
  attributes: 0x27,
  append: false,
  data: new Uint8Array(40),
};
const view = { get: () => undefined, setupMode: true, authEnforce: true };

describe('LazyAuthenticator', () => {
  it('refuses every authenticated write until it is loaded, then hands them to @vmsb/auth', async () => {
    const lazy = new LazyAuthenticator(quiet);
    expect(lazy.loaded).toBe(false);
    expect(lazy.verify(write, view)).toMatchObject({ status: EfiStatus.SECURITY_VIOLATION });
    await lazy.load();
    expect(lazy.loaded).toBe(true);
    // A malformed descriptor: refused by the verifier itself, with its own reason.
    const result = lazy.verify(write, view);
    expect(result.status).not.toBe(EfiStatus.SUCCESS);
    expect(result.reason).not.toMatch(/unavailable/);
  });

  it("the daemon's bundle carries the verifier inline: loading it after --chroot reads no file", () => {
    const bundle = readFileSync(new URL('../dist/cli.js', import.meta.url), 'utf8');
    // Nothing is imported from @vmsb/auth at run time, statically or dynamically...
    expect(bundle).not.toMatch(/\bfrom\s*["']@vmsb\/auth["']|import\(\s*["']@vmsb\/auth["']\s*\)/);
    // ...because its code is in the bundle, behind the initialiser the lazy load calls.
    expect(bundle).toContain('function createAuthenticator(');
    expect(bundle).toMatch(/var AUTH_BUNDLED = true;/);
  });
});
