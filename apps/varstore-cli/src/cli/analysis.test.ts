import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  guidFromText,
  serializeSignatureLists,
  signatureListOfCertificate,
  signatureListOfHashes,
  Guids,
  type Variable,
  VariableStore,
} from '@vmsb/efi';
import { microsoftCertificates } from '@vmsb/keys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeStore, missing2023, readinessOf } from './analysis.js';
import { GLOBAL, IMAGE_SECURITY, makeCert, readBytes, SB_ATTRS, stateOf, variable } from './testing/support.js';

const MS_OWNER = guidFromText('77fa9abd-0359-4d32-bd60-28f4e78f784b')!;
const ms = (id: string): Uint8Array => microsoftCertificates().find((c) => c.id === id)!.der;
const lists = (...ders: Uint8Array[]): Uint8Array =>
  serializeSignatureLists(ders.map((d) => signatureListOfCertificate(d, MS_OWNER)));

let dir: string;
let own: Uint8Array;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'varstore-analysis-'));
  own = readBytes(makeCert(dir, 'pk', 'Own PK').der);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function store(parts: { pk?: boolean; kek?: Uint8Array; db?: Uint8Array; dbx?: Uint8Array; extra?: Variable[] }) {
  const vars: Variable[] = [];
  if (parts.pk === true)
    vars.push(
      variable('PK', GLOBAL, SB_ATTRS, serializeSignatureLists([signatureListOfCertificate(own, new Uint8Array(16))])),
    );
  if (parts.kek !== undefined) vars.push(variable('KEK', GLOBAL, SB_ATTRS, parts.kek));
  if (parts.db !== undefined) vars.push(variable('db', IMAGE_SECURITY, SB_ATTRS, parts.db));
  if (parts.dbx !== undefined) vars.push(variable('dbx', IMAGE_SECURITY, SB_ATTRS, parts.dbx));
  return stateOf([...vars, ...(parts.extra ?? [])]);
}

const NOW = new Date('2026-11-22T00:00:00Z');
const sha = (text: string): Uint8Array => new Uint8Array(createHash('sha256').update(text).digest());

describe('readiness in XAPI words', () => {
  it('follows the presence of PK, KEK, db and dbx', () => {
    const dbx = serializeSignatureLists([signatureListOfHashes(Guids.CERT_SHA256, [sha('x')], MS_OWNER)]);
    expect(readinessOf(undefined)).toBe('first_boot');
    expect(readinessOf(store({}))).toBe('setup_mode');
    expect(readinessOf(store({ kek: lists(ms('kek-2011')), db: lists(ms('db-windows-2011')) }))).toBe('setup_mode');
    expect(readinessOf(store({ pk: true }))).toBe('certs_incomplete');
    expect(readinessOf(store({ pk: true, kek: lists(ms('kek-2011')) }))).toBe('certs_incomplete');
    expect(readinessOf(store({ pk: true, kek: lists(ms('kek-2011')), db: lists(ms('db-windows-2011')) }))).toBe(
      'ready_no_dbx',
    );
    expect(readinessOf(store({ pk: true, kek: lists(ms('kek-2011')), db: lists(ms('db-windows-2011')), dbx }))).toBe(
      'ready',
    );
  });
});

describe('Microsoft generations and the 2023 rollover', () => {
  it('names each Microsoft CA and what a 2011-only store lacks', () => {
    const r = analyzeStore(
      store({ pk: true, kek: lists(ms('kek-2011')), db: lists(ms('db-windows-2011'), ms('db-uefi-2011')) }),
      { store: 's', format: 'vars', now: NOW },
    );
    expect(r.kek.certificates.map((c) => [c.microsoftId, c.generation, c.expired])).toEqual([
      ['kek-2011', '2011', true],
    ]);
    expect(r.db.certificates.map((c) => c.generation)).toEqual(['2011', '2011']);
    expect(r.certificates).toBe('update_required');
    expect(r.missing2023).toEqual(['kek-2023', 'db-windows-2023', 'db-uefi-2023', 'db-oprom-2023']);
    expect(r.pk).toMatchObject({ commonName: 'Own PK', generation: 'other', microsoftId: null, problem: null });
  });

  it('is satisfied once every 2011 CA has its successor, and by stores without Microsoft CAs', () => {
    const full = store({
      pk: true,
      kek: lists(ms('kek-2011'), ms('kek-2023')),
      db: lists(
        ms('db-windows-2011'),
        ms('db-windows-2023'),
        ms('db-uefi-2011'),
        ms('db-uefi-2023'),
        ms('db-oprom-2023'),
      ),
    });
    expect(analyzeStore(full, { store: 's', format: null, now: NOW }).certificates).toBe('update_ok');
    expect(
      analyzeStore(store({ pk: true, kek: lists(own), db: lists(own) }), { store: 's', format: null, now: NOW })
        .certificates,
    ).toBe('update_ok');
    expect(analyzeStore(undefined, { store: 's', format: null, now: NOW }).certificates).toBe('unknown');
    // The UEFI CA 2011 needs both of its successors.
    const half = analyzeStore(store({ pk: true, db: lists(ms('db-uefi-2011'), ms('db-uefi-2023')) }), {
      store: 's',
      format: null,
      now: NOW,
    });
    expect(half.missing2023).toEqual(['db-oprom-2023']);
    expect(missing2023(half.kek, half.db)).toEqual(['db-oprom-2023']);
  });

  it('judges expiry by the clock it is given', () => {
    const kek = lists(ms('kek-2011'));
    expect(
      analyzeStore(store({ pk: true, kek }), { store: 's', format: null, now: new Date('2026-06-23T00:00:00Z') }).kek
        .certificates[0]!.expired,
    ).toBe(false);
    expect(
      analyzeStore(store({ pk: true, kek }), { store: 's', format: null, now: new Date('2026-06-25T00:00:00Z') }).kek
        .certificates[0]!.expired,
    ).toBe(true);
  });
});

describe('store problems an administrator should see', () => {
  it('reports a placeholder dbx, a missing dbx, a PK with two entries and lists that do not parse', () => {
    const placeholder = serializeSignatureLists([
      signatureListOfHashes(Guids.CERT_SHA256, [sha('')], guidFromText('a0baa8a3-041d-48a8-bc87-c36d121b5e3d')!),
    ]);
    const r = analyzeStore(store({ pk: true, kek: lists(own), db: lists(own), dbx: placeholder }), {
      store: 's',
      format: null,
      now: NOW,
    });
    expect(r.dbx.placeholderOnly).toBe(true);
    expect(r.dbx.headroom).toBe(57344 - placeholder.length);
    expect(r.warnings.join('\n')).toMatch(/placeholder/);
    expect(
      analyzeStore(store({ pk: true, kek: lists(own), db: lists(own) }), {
        store: 's',
        format: null,
        now: NOW,
      }).warnings.join('\n'),
    ).toMatch(/no dbx/);

    const twoPk = stateOf([variable('PK', GLOBAL, SB_ATTRS, lists(own, own))]);
    expect(analyzeStore(twoPk, { store: 's', format: null, now: NOW }).pk).toEqual({
      problem: expect.stringMatching(/exactly one/),
    });
    const broken = stateOf([variable('KEK', GLOBAL, SB_ATTRS, Uint8Array.of(1, 2, 3))]);
    expect(analyzeStore(broken, { store: 's', format: null, now: NOW }).kek.problem).toMatch(
      /shorter than a list header/,
    );
  });

  const sbEnable = (value: number) =>
    store({
      pk: true,
      kek: lists(own),
      db: lists(own),
      extra: [variable('SecureBootEnable', Guids.SECURE_BOOT_ENABLE_DISABLE, 3, Uint8Array.of(value))],
    });

  it("decides a VARS blob's SecureBoot as varstored does: SecureBootEnable=0 is not consulted under Xen", () => {
    for (const format of ['vars', 'vars-base64', null] as const) {
      const r = analyzeStore(sbEnable(0), { store: 's', format, now: NOW });
      expect(r.secureBoot).toMatchObject({ enforceable: true, rule: 'varstored', secureBootEnable: false });
      expect(r.secureBoot.detail).toMatch(/varstored's rule.*SecureBootEnable is not consulted/);
    }
    // The daemon serving the same NVRAM with platform:secureboot=true answers SecureBoot=1.
    const daemon = VariableStore.restore(sbEnable(0), {
      platform: { secureBoot: true, authEnforce: true },
      resume: false,
    });
    expect(daemon.secureBoot).toBe(true);
    expect(analyzeStore(store({}), { store: 's', format: 'vars', now: NOW }).secureBoot.enforceable).toBe(false);
  });

  it("decides an .fd or JSON store's SecureBoot with edk2's SecureBootEnable rule", () => {
    for (const format of ['ovmf-fd', 'json'] as const) {
      const off = analyzeStore(sbEnable(0), { store: 's', format, now: NOW });
      expect(off.secureBoot).toMatchObject({ enforceable: false, rule: 'edk2', secureBootEnable: false });
      expect(off.secureBoot.detail).toMatch(/edk2's rule.*SecureBootEnable is not 1/);
      expect(analyzeStore(sbEnable(1), { store: 's', format, now: NOW }).secureBoot.enforceable).toBe(true);
      // Absent: AuthVariableLib creates it enabled in user mode.
      expect(analyzeStore(store({ pk: true }), { store: 's', format, now: NOW }).secureBoot).toMatchObject({
        enforceable: true,
        secureBootEnable: null,
      });
      expect(analyzeStore(store({}), { store: 's', format, now: NOW }).secureBoot.enforceable).toBe(false);
    }
  });
});
