import { describe, expect, it } from 'vitest';
import type { GuestHandler } from '@vmsb/protocol';
import { createLogger } from '../log.js';
import { resolvePlatform } from '../main.js';
import { DeferredHandler, startXenTransport, type XenModule, XenUnavailable } from './xen-glue.js';

const quiet = createLogger('error', { stdout: { write: () => true }, stderr: { write: () => true } });

/** Stands in for @vmsb/xen's API (the real one needs a Xen host; packages/xen tests it on a fake hypervisor). */
function fakeXen(options: { available?: boolean; xenstore?: Record<string, string> } = {}) {
  const writes: [string, string][] = [];
  const started: { domid: number; handler: GuestHandler }[] = [];
  let closed = 0;
  const xen = {
    xenAvailability: () =>
      options.available === false
        ? { ok: false as const, reason: '/dev/xen/privcmd is missing' }
        : { ok: true as const },
    startIoreqServer: async ({ domid, handler }: { domid: number; handler: GuestHandler }) => {
      started.push({ domid, handler });
      return { vcpus: 2, close: async () => void closed++ };
    },
    xenstoreRead: (path: string) => options.xenstore?.[path],
    xenstoreWrite: (path: string, value: string) => void writes.push([path, value]),
    dropPrivileges: () => undefined,
  } as unknown as XenModule;
  return { xen, writes, started, closed: () => closed };
}

describe('Xen glue', () => {
  it('refuses with the reason @vmsb/xen gives when Xen is unavailable', async () => {
    const f = fakeXen({ available: false });
    await expect(startXenTransport(3, quiet, async () => f.xen)).rejects.toThrow(
      new XenUnavailable('/dev/xen/privcmd is missing'),
    );
    expect(f.started).toHaveLength(0);
  });

  it('serves the domain, reads platform keys and announces readiness under /local/domain/<domid>', async () => {
    const f = fakeXen({ xenstore: { '/local/domain/3/platform/secureboot': 'true' } });
    const t = await startXenTransport(3, quiet, async () => f.xen);
    expect(f.started[0]!.domid).toBe(3);
    expect(t.readPlatform('secureboot')).toBe('true');
    expect(t.readPlatform('auth-enforce')).toBeUndefined();
    expect(f.writes).toEqual([]);
    t.announceReady();
    expect(f.writes).toEqual([['/local/domain/3/varstored-pid', String(process.pid)]]);
    await t.close();
    expect(f.closed()).toBe(1);
  });

  it('holds guest requests until the daemon is initialised, then hands them over', async () => {
    const deferred = new DeferredHandler();
    const early = deferred.handleCommand(Uint8Array.of(1));
    const ppi = deferred.ppiWrite(0x100, 1, 5);
    expect(deferred.ppiRead(0x100, 1)).toBe(0);
    const seen: string[] = [];
    deferred.attach({
      handleCommand: async (r) => {
        seen.push(`command ${r[0]}`);
        return Uint8Array.of(9);
      },
      ppiRead: (i) => i,
      ppiWrite: async (i, _s, v) => void seen.push(`ppi ${i}=${v}`),
    });
    expect([...(await early)]).toEqual([9]);
    await ppi;
    expect(seen).toEqual(['command 1', 'ppi 256=5']);
    expect(deferred.ppiRead(7, 1)).toBe(7);
  });
});

describe('platform settings', () => {
  it('takes xenstore over --platform, exactly as the C daemon reads it', () => {
    const xs = (values: Record<string, string>) => (key: string) => values[key];
    expect(resolvePlatform({}, undefined)).toEqual({ secureBoot: false, authEnforce: true });
    expect(resolvePlatform({ secureboot: true, authEnforce: false })).toEqual({ secureBoot: true, authEnforce: false });
    expect(
      resolvePlatform({ secureboot: true, authEnforce: false }, xs({ secureboot: 'false', 'auth-enforce': 'true' })),
    ).toEqual({ secureBoot: false, authEnforce: true });
    expect(resolvePlatform({}, xs({ secureboot: 'TRUE', 'auth-enforce': '0' }))).toEqual({
      secureBoot: false,
      authEnforce: true,
    });
    expect(resolvePlatform({}, xs({ secureboot: 'true', 'auth-enforce': 'false' }))).toEqual({
      secureBoot: true,
      authEnforce: false,
    });
    expect(resolvePlatform({ secureboot: true }, xs({}))).toEqual({ secureBoot: true, authEnforce: true });
  });
});
