import { describe, expect, it } from 'vitest';
import { Attr, Attrs } from './attributes.js';
import { D, G, RecordingAuthenticator, S, V, approve, auth2, bytes, client, n, newStore } from './test-helpers.js';
import { serializeEfiTime } from './time.js';

const { NV_BS_RT_AT, BS_RT } = Attrs;
const AP = Attr.APPEND_WRITE;
const t = (second: number, year = 2024) => ({ year, month: 1, day: 1, second });

describe('the authentication seam', () => {
  it('hands the authenticator the request as sent, without APPEND in the attributes', () => {
    const auth = new RecordingAuthenticator();
    const fw = client(newStore({ authenticator: auth, platform: { secureBoot: false, authEnforce: false } }));
    const data = auth2(bytes(1, 2));
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT | AP, data)).toBe(S.SUCCESS);
    const call = auth.calls[0]!;
    expect(call.request.name).toEqual(n('X'));
    expect(call.request.guid).toEqual(V);
    expect(call.request.attributes).toBe(NV_BS_RT_AT);
    expect(call.request.append).toBe(true);
    expect(call.request.data).toEqual(data);
    expect(call.request.existing).toBeUndefined();
    expect(call.setupMode).toBe(true);
    expect(call.authEnforce).toBe(false);
  });

  it('stores the approved payload, timestamp and signer digest; GetVariable returns only the payload', () => {
    const digest = new Uint8Array(32).fill(0xab);
    const store = newStore({
      authenticator: new RecordingAuthenticator((r) => ({ ...approve(r), signerDigest: digest })),
    });
    const fw = client(store);
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT, auth2(bytes(9, 8), t(5)))).toBe(S.SUCCESS);
    expect(fw.getVariable(n('X'), V)).toEqual({ status: S.SUCCESS, attributes: NV_BS_RT_AT, data: bytes(9, 8) });
    const v = store.getVariable(n('X'), V)!;
    expect(v.timestamp).toEqual(serializeEfiTime(t(5)));
    expect(v.signerDigest).toEqual(digest);
  });

  it('passes the existing variable on update, and keeps the digest when none is returned', () => {
    const digest = new Uint8Array(32).fill(1);
    let first = true;
    const auth = new RecordingAuthenticator((r) => {
      const result = first ? { ...approve(r), signerDigest: digest } : approve(r);
      first = false;
      return result;
    });
    const store = newStore({ authenticator: auth });
    const fw = client(store);
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT, auth2(bytes(1), t(1)))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT, auth2(bytes(2), t(2)))).toBe(S.SUCCESS);
    expect(auth.calls[1]!.request.existing?.data).toEqual(bytes(1));
    expect(store.getVariable(n('X'), V)!.signerDigest).toEqual(digest);
    expect(store.getVariable(n('X'), V)!.timestamp).toEqual(serializeEfiTime(t(2)));
  });

  it('append concatenates and keeps the later timestamp (edk2 bug 415 regression)', () => {
    const store = newStore({ authenticator: new RecordingAuthenticator() });
    const fw = client(store);
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT, auth2(bytes(1), t(30)))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT | AP, auth2(bytes(2), t(10)))).toBe(S.SUCCESS);
    expect(store.getVariable(n('X'), V)!.data).toEqual(bytes(1, 2));
    expect(store.getVariable(n('X'), V)!.timestamp).toEqual(serializeEfiTime(t(30)));
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT | AP, auth2(bytes(3), t(0, 2025)))).toBe(S.SUCCESS);
    expect(store.getVariable(n('X'), V)!.timestamp).toEqual(serializeEfiTime(t(0, 2025)));
  });

  it('an empty approved payload deletes; deleting a missing variable → NOT_FOUND', () => {
    const fw = client(newStore({ authenticator: new RecordingAuthenticator() }));
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT, auth2(new Uint8Array(0)))).toBe(S.NOT_FOUND);
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT, auth2(bytes(1), t(1)))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT, auth2(new Uint8Array(0), t(2)))).toBe(S.SUCCESS);
    expect(fw.getVariable(n('X'), V).status).toBe(S.NOT_FOUND);
  });

  it('a refusal is returned as is and changes nothing', () => {
    const auth = new RecordingAuthenticator(() => ({
      status: S.SECURITY_VIOLATION,
      reason: 'signed by the wrong key',
    }));
    const store = newStore({ authenticator: auth });
    const before = store.state();
    const fw = client(store);
    expect(fw.setVariable(n('PK'), G, NV_BS_RT_AT, auth2(bytes(1)))).toBe(S.SECURITY_VIOLATION);
    expect(store.state()).toEqual(before);
  });

  it('never stores what was not explicitly approved', () => {
    const cases = [
      () => ({ status: S.SUCCESS }),
      () => ({ status: S.SUCCESS, payload: bytes(1), timestamp: bytes(1, 2) }),
      () => ({ status: S.SUCCESS, payload: bytes(1), signerDigest: bytes(1) }),
      () => {
        throw new Error('boom');
      },
      () => undefined as never,
    ];
    for (const decide of cases) {
      const store = newStore({ authenticator: new RecordingAuthenticator(decide) });
      expect(client(store).setVariable(n('X'), V, NV_BS_RT_AT, auth2(bytes(1)))).toBe(S.SECURITY_VIOLATION);
      expect(store.getVariable(n('X'), V)).toBeUndefined();
    }
  });

  it('limits apply to the approved payload after the append merge', () => {
    const fw = client(newStore({ authenticator: new RecordingAuthenticator() }));
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT, auth2(new Uint8Array(50000)))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('X'), V, NV_BS_RT_AT | AP, auth2(new Uint8Array(8000), t(2)))).toBe(S.OUT_OF_RESOURCES);
    expect(fw.getVariable(n('X'), V).data?.length).toBe(50000);
  });
});

describe('Secure Boot modes follow PK (varstored builtins, edk2 transitions)', () => {
  const mode = (fw: ReturnType<typeof client>) =>
    ['SetupMode', 'SecureBoot', 'DeployedMode', 'AuditMode'].map((name) => fw.getVariable(n(name), G).data?.[0]);

  it('enrolling PK enters user mode; SecureBoot needs the platform setting', () => {
    for (const secureBoot of [true, false]) {
      const store = newStore({
        authenticator: new RecordingAuthenticator(),
        platform: { secureBoot, authEnforce: true },
      });
      const fw = client(store);
      expect(mode(fw)).toEqual([1, 0, 0, 0]);
      expect(fw.setVariable(n('KEK'), G, NV_BS_RT_AT, auth2(bytes(1)))).toBe(S.SUCCESS);
      expect(mode(fw)).toEqual([1, 0, 0, 0]);
      expect(fw.setVariable(n('PK'), G, NV_BS_RT_AT, auth2(bytes(1)))).toBe(S.SUCCESS);
      expect(mode(fw)).toEqual([0, secureBoot ? 1 : 0, 1, 0]);
      expect(store.setupMode).toBe(false);
      expect(store.secureBoot).toBe(secureBoot);
    }
  });

  it('deleting PK returns to setup mode; KEK and db stay', () => {
    const auth = new RecordingAuthenticator();
    const fw = client(newStore({ authenticator: auth }));
    expect(fw.setVariable(n('db'), D, NV_BS_RT_AT, auth2(bytes(1)))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('PK'), G, NV_BS_RT_AT, auth2(bytes(1), t(1)))).toBe(S.SUCCESS);
    expect(auth.calls.at(-1)!.setupMode).toBe(true);
    expect(fw.setVariable(n('PK'), G, NV_BS_RT_AT, auth2(new Uint8Array(0), t(2)))).toBe(S.SUCCESS);
    expect(auth.calls.at(-1)!.setupMode).toBe(false);
    expect(mode(fw)).toEqual([1, 0, 0, 0]);
    expect(fw.getVariable(n('db'), D).status).toBe(S.SUCCESS);
  });

  it('at runtime a PK change updates SetupMode but not SecureBoot (edk2)', () => {
    const fw = client(newStore({ authenticator: new RecordingAuthenticator() }));
    expect(fw.setVariable(n('PK'), G, NV_BS_RT_AT, auth2(bytes(1), t(1)))).toBe(S.SUCCESS);
    fw.atRuntime = true;
    expect(fw.setVariable(n('PK'), G, NV_BS_RT_AT, auth2(new Uint8Array(0), t(2)))).toBe(S.SUCCESS);
    expect(mode(fw)).toEqual([1, 1, 0, 0]);
  });

  it('a failed PK write changes no mode', () => {
    const fw = client(
      newStore({ authenticator: new RecordingAuthenticator(() => ({ status: S.SECURITY_VIOLATION })) }),
    );
    expect(fw.setVariable(n('PK'), G, NV_BS_RT_AT, auth2(bytes(1)))).toBe(S.SECURITY_VIOLATION);
    expect(mode(fw)).toEqual([1, 0, 0, 0]);
  });

  it('mode variables stay read-only to the guest in every mode', () => {
    const fw = client(newStore({ authenticator: new RecordingAuthenticator() }));
    expect(fw.setVariable(n('PK'), G, NV_BS_RT_AT, auth2(bytes(1)))).toBe(S.SUCCESS);
    for (const name of ['SetupMode', 'SecureBoot', 'DeployedMode', 'AuditMode', 'VendorKeys', 'SignatureSupport']) {
      expect(fw.setVariable(n(name), G, BS_RT, bytes(1))).toBe(S.WRITE_PROTECTED);
    }
  });

  it('in-process provisioning uses the same path (dbx append, db, KEK, PK)', () => {
    const store = newStore({ authenticator: new RecordingAuthenticator() });
    for (const [name, guid, attrs] of [
      ['dbx', D, NV_BS_RT_AT | AP],
      ['db', D, NV_BS_RT_AT],
      ['KEK', G, NV_BS_RT_AT],
      ['PK', G, NV_BS_RT_AT],
    ] as const) {
      const outcome = store.setVariable(n(name), guid, attrs, auth2(bytes(1)));
      expect(outcome.status).toBe(S.SUCCESS);
      outcome.pending?.commit();
    }
    expect(store.setupMode).toBe(false);
    expect(store.secureBoot).toBe(true);
  });
});
