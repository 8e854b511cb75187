/**
 * Fixtures for the pool tests, made at run time: key sets whose KEK and db carry Microsoft's 2011
 * CAs (and, for an up-to-date pool, the 2023 ones), and the NVRAM a VM has after its first boot
 * with them (made by the daemon's own first-boot code).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createKeySet, microsoftSignatureList, type KeySet } from '@vmsb/keys';
import { encodeVarsBlob } from '@vmsb/nvram';
import { simulateFirstBoot } from '../pool/certs.js';

export interface PoolFixtures {
  /** PK/KEK/db with Microsoft's 2011 KEK and db CAs: VMs booted with it need the 2023 update. */
  readonly set2011: KeySet;
  /** The same with the 2023 CAs as well. */
  readonly set2023: KeySet;
  /** base64 VARS blobs (NVRAM["EFI-variables"]) after a first boot with each set. */
  readonly needsUpdate: string;
  readonly upToDate: string;
}

async function nvramAfterFirstBoot(set: KeySet): Promise<string> {
  const boot = await simulateFirstBoot(
    new Map([
      ['PK', set.PK.auth],
      ['KEK', set.KEK.auth],
      ['db', set.db.auth],
    ]),
  );
  if (!boot.ok) throw new Error(boot.reason);
  return Buffer.from(encodeVarsBlob(boot.state, { nonVolatileOnly: true })).toString('base64');
}

export async function poolFixtures(): Promise<PoolFixtures> {
  const timestamp = new Date('2026-01-02T03:04:05Z');
  const [set2011, set2023] = await Promise.all([
    createKeySet({
      cn: 'Pool 2011',
      timestamp,
      extra: {
        KEK: microsoftSignatureList({ role: 'KEK', generation: 2011 }),
        db: microsoftSignatureList({ role: 'db', generation: 2011 }),
      },
    }),
    createKeySet({
      cn: 'Pool 2023',
      timestamp,
      extra: { KEK: microsoftSignatureList({ role: 'KEK' }), db: microsoftSignatureList({ role: 'db' }) },
    }),
  ]);
  return {
    set2011,
    set2023,
    needsUpdate: await nvramAfterFirstBoot(set2011),
    upToDate: await nvramAfterFirstBoot(set2023),
  };
}

/** Writes a set's PK.auth, KEK.auth, db.auth and PK.key into `dir`; returns the .auth paths. */
export function writeAuthFiles(set: KeySet, dir: string): { auth: string[]; pkKey: string } {
  mkdirSync(dir, { recursive: true });
  const auth = (['PK', 'KEK', 'db'] as const).map((name) => {
    const path = join(dir, `${name}.auth`);
    writeFileSync(path, set[name].auth);
    return path;
  });
  const pkKey = join(dir, 'PK.key');
  writeFileSync(pkKey, set.PK.keyPem, { mode: 0o600 });
  return { auth, pkKey };
}
