/**
 * The .auth files this package makes, applied to the project's own variable store (@vmsb/efi's
 * VariableStore with @vmsb/auth's authenticator): the Secure Boot enrolment sequence a host runs.
 */
import { createAuthenticator } from '@vmsb/auth';
import { Guids, utf16le, VariableStore, type SetOutcome } from '@vmsb/efi';
import { EfiStatus } from '@vmsb/protocol';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  bundledDbxUpdate,
  createAuthenticatedVariable,
  createKeySet,
  microsoftSignatureList,
  type KeySet,
} from './index.js';

let set: KeySet;
beforeAll(async () => {
  set = await createKeySet({
    cn: 'Enrolment',
    timestamp: new Date('2025-02-03T04:05:06Z'),
    extra: { KEK: microsoftSignatureList({ role: 'KEK' }) },
  });
});

const G = Guids.GLOBAL_VARIABLE;
const D = Guids.IMAGE_SECURITY_DATABASE;

function apply(store: VariableStore, name: string, guid: Uint8Array, attributes: number, data: Uint8Array): SetOutcome {
  const outcome = store.setVariable(utf16le(name), guid, attributes, data);
  outcome.pending?.commit();
  return outcome;
}

function setupMode(store: VariableStore): number | undefined {
  return store.getVariable(utf16le('SetupMode'), G)?.data[0];
}

describe('enrolling a key set in the variable store', () => {
  it('PK, KEK, db in order; out-of-order and foreign signatures refused; Microsoft dbx update accepted; PK deleted', () => {
    const store = VariableStore.create({
      platform: { secureBoot: true, authEnforce: true },
      authenticator: createAuthenticator(),
    });
    expect(setupMode(store)).toBe(1);

    expect(apply(store, 'PK', G, 0x27, set.PK.auth).status).toBe(EfiStatus.SUCCESS);
    expect(setupMode(store)).toBe(0);

    // db is signed by KEK, which is not enrolled yet.
    expect(apply(store, 'db', D, 0x27, set.db.auth).status).toBe(EfiStatus.SECURITY_VIOLATION);
    expect(apply(store, 'KEK', G, 0x27, set.KEK.auth).status).toBe(EfiStatus.SUCCESS);
    expect(apply(store, 'db', D, 0x27, set.db.auth).status).toBe(EfiStatus.SUCCESS);
    expect(store.getVariable(utf16le('db'), D)?.data).toEqual(set.db.signatureList);

    // Replaying an update (same timestamp) is refused; a KEK signed by the db key is refused.
    expect(apply(store, 'db', D, 0x27, set.db.auth).status).toBe(EfiStatus.SECURITY_VIOLATION);
    const rogue = createAuthenticatedVariable({
      name: 'KEK',
      payload: set.db.signatureList,
      timestamp: new Date('2030-01-01T00:00:00Z'),
      key: set.db.privateKey,
      certificate: set.db.certificate.der,
    });
    expect(apply(store, 'KEK', G, 0x27, rogue).status).toBe(EfiStatus.SECURITY_VIOLATION);

    // Microsoft's dbx update verifies against the Microsoft KEK CA 2011 enrolled next to ours.
    const dbx = bundledDbxUpdate();
    expect(apply(store, 'dbx', D, dbx.attributes, dbx.bytes).status).toBe(EfiStatus.SUCCESS);
    expect(store.getVariable(utf16le('dbx'), D)?.data).toEqual(dbx.payload);

    expect(apply(store, 'PK', G, 0x27, set.noPK).status).toBe(EfiStatus.SUCCESS);
    expect(store.getVariable(utf16le('PK'), G)).toBeUndefined();
    expect(setupMode(store)).toBe(1);
  });
});
