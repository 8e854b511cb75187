import {
  Attrs,
  fromUtf16le,
  Guids,
  guidToText,
  serializeSignatureLists,
  signatureListOfCertificate,
  signatureListOfHashes,
  utf16le,
} from '@vmsb/efi';
import { microsoftCertificates } from '@vmsb/keys';
import { EfiStatus } from '@vmsb/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCommandArgs } from './args.js';
import { databaseDiff, describeChanges, microsoftDbs, microsoftKeks, parseDbChoices, unsignedUpdate } from './edits.js';
import { CliError, ExitCode } from './errors.js';
import { parseAttributes, parseGuid, parseTimestamp, resolveName } from './names.js';
import { formatTable, Output, Progress, printable, useColour, useUnicode } from './output.js';
import { EditSession } from './session.js';
import { GLOBAL, IMAGE_SECURITY, memoryIo, SB_ATTRS, stateOf, variable } from './testing/support.js';

function usage(fn: () => unknown): CliError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CliError) return e;
    throw e;
  }
  throw new Error('expected a CliError');
}

describe('argument parsing', () => {
  const specs = { guid: { kind: 'value' }, cert: { kind: 'values' }, json: { kind: 'flag' } } as const;

  it('reads values, repeated values, flags and positionals', () => {
    const a = parseCommandArgs(
      ['store', '--guid=global', '--cert', 'a', '--cert', 'b', '--json', '--', '-odd'],
      specs,
      'x',
    );
    expect(a.positionals).toEqual(['store', '-odd']);
    expect(a.value('guid')).toBe('global');
    expect(a.values('cert')).toEqual(['a', 'b']);
    expect(a.flag('json')).toBe(true);
    expect(a.flag('help')).toBe(false);
  });

  it('refuses unknown options, a single value given twice and a missing value, as usage errors', () => {
    expect(usage(() => parseCommandArgs(['--nope'], specs, 'x')).exitCode).toBe(ExitCode.USAGE);
    expect(usage(() => parseCommandArgs(['--guid', 'a', '--guid', 'b'], specs, 'x')).message).toMatch(
      /--guid is given 2 times/,
    );
    expect(usage(() => parseCommandArgs(['--guid'], specs, 'x')).exitCode).toBe(ExitCode.USAGE);
    expect(usage(() => parseCommandArgs([], specs, 'x').required('guid')).message).toMatch(/--guid is required/);
  });
});

describe('names, GUIDs, attributes and timestamps', () => {
  it('knows the vendor GUIDs of well-known names and finds others in the store', () => {
    expect(guidToText(resolveName('db', undefined).guid)).toBe('d719b2cb-3d3a-4596-a3bc-dad00e67656f');
    expect(resolveName('PK', undefined).defaultAttributes).toBe(0x27);
    expect(guidToText(resolveName('Boot0001', undefined).guid)).toBe(guidToText(Guids.GLOBAL_VARIABLE));
    expect(guidToText(resolveName('MokList', undefined).guid)).toBe('605dab50-e046-4300-abb6-3dd810dd8b23');
    const vendor = parseGuid('11111111-2222-3333-4444-555555555555');
    const existing = [variable('Mine', vendor, 7, Uint8Array.of(1))];
    expect(guidToText(resolveName('Mine', undefined, existing).guid)).toBe('11111111-2222-3333-4444-555555555555');
    expect(usage(() => resolveName('Other', undefined, existing)).message).toMatch(/give --guid/);
    const twice = [...existing, variable('Mine', GLOBAL, 7, Uint8Array.of(1))];
    expect(usage(() => resolveName('Mine', undefined, twice)).message).toMatch(/several variables/);
    expect(guidToText(resolveName('Mine', 'global', twice).guid)).toBe(guidToText(GLOBAL));
  });

  it('parses GUIDs with braces and aliases, and refuses anything else', () => {
    expect(guidToText(parseGuid('{8BE4DF61-93CA-11D2-AA0D-00E098032B8C}'))).toBe(
      '8be4df61-93ca-11d2-aa0d-00e098032b8c',
    );
    expect(guidToText(parseGuid('microsoft'))).toBe('77fa9abd-0359-4d32-bd60-28f4e78f784b');
    expect(usage(() => parseGuid('nope')).exitCode).toBe(ExitCode.USAGE);
  });

  it('parses attributes as numbers or names', () => {
    expect(parseAttributes('0x27')).toBe(0x27);
    expect(parseAttributes('39')).toBe(39);
    expect(parseAttributes('NV|BS|RT|AT')).toBe(0x27);
    expect(parseAttributes('EFI_VARIABLE_NON_VOLATILE,bs')).toBe(3);
    expect(parseAttributes('NV | BS | RT | AT | AP')).toBe(0x67);
    expect(usage(() => parseAttributes('NV|XX')).message).toMatch(/unknown attribute "XX"/);
    expect(usage(() => parseAttributes('0x100000000')).exitCode).toBe(ExitCode.USAGE);
  });

  it('parses timestamps in UTC, efitools style and ISO, and refuses impossible dates', () => {
    const now = new Date('2026-11-22T10:20:30Z');
    expect(Buffer.from(parseTimestamp('2024-01-01 00:00:00', now)).toString('hex')).toBe(
      'e8070101000000000000000000000000',
    );
    expect(Buffer.from(parseTimestamp('2024-02-29T23:59:58Z', now)).toString('hex')).toBe(
      'e807021d173b3a000000000000000000',
    );
    expect(Buffer.from(parseTimestamp('now', now)).toString('hex')).toBe('ea070b160a141e000000000000000000');
    expect(parseTimestamp('zero', now)).toEqual(new Uint8Array(16));
    expect(usage(() => parseTimestamp('2023-02-29', now)).message).toMatch(/day 29/);
    expect(usage(() => parseTimestamp('yesterday', now)).exitCode).toBe(ExitCode.USAGE);
  });
});

describe('output', () => {
  it('aligns tables by display width', () => {
    expect(
      formatTable(
        ['A', 'BB'],
        [
          ['✓ x', '1'],
          ['longer', '22'],
        ],
        ['left', 'right'],
      ),
    ).toEqual(['A       BB', '✓ x      1', 'longer  22']);
  });

  it('falls back to ASCII glyphs when asked or when the locale is not UTF-8', () => {
    expect(useUnicode({ LANG: 'en_US.UTF-8' })).toBe(true);
    expect(useUnicode({ LANG: 'C' })).toBe(false);
    expect(useUnicode({ LC_ALL: 'POSIX', LANG: 'en_US.UTF-8' })).toBe(false);
    expect(useUnicode({ LANG: 'en_US.UTF-8', VARSTORE_ASCII: '1' })).toBe(false);
    expect(useUnicode({ LANG: 'C', VARSTORE_ASCII: '0' })).toBe(true);
    expect(useUnicode({ LANG: 'en_US.UTF-8' }, { ascii: true })).toBe(false);
    expect(new Output(memoryIo({ env: { VARSTORE_ASCII: '1' } })).glyph('ok')).toBe('+');
  });

  it('colours only a terminal, and never with NO_COLOR', () => {
    expect(useColour({ isTTY: true, write: () => true }, {})).toBe(true);
    expect(useColour({ isTTY: false, write: () => true }, {})).toBe(false);
    expect(useColour({ isTTY: true, write: () => true }, { NO_COLOR: '1' })).toBe(false);
    expect(useColour({ isTTY: true, write: () => true }, {}, { noColor: true })).toBe(false);
    const tty = memoryIo({ tty: true });
    new Output(tty).line(new Output(tty).glyph('bad'));
    expect(tty.out()).toBe('\u001b[31m✗\u001b[0m\n');
  });

  it('shows progress over several stores on a terminal only', () => {
    const tty = memoryIo({ tty: true });
    const p = new Progress(tty, 3);
    p.step(0, 'checking a');
    p.step(1, 'checking b');
    p.done();
    expect(tty.err()).toContain('[2/3] checking b');
    expect(tty.err().endsWith('\r\u001b[2K')).toBe(true);
    const pipe = memoryIo();
    new Progress(pipe, 3).step(0, 'x');
    expect(pipe.err()).toBe('');
    const single = memoryIo({ tty: true });
    new Progress(single, 1).step(0, 'x');
    expect(single.err()).toBe('');
  });

  it('makes control characters in names visible', () => {
    expect(printable('A\u0001B\u007f\ud800')).toBe('A\\x01B\\x7f\\ud800');
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => !/[\u0000-\u001f\u007f]/.test(printable(s))));
  });
});

describe("editing a store through the daemon's store code", () => {
  const VENDOR = parseGuid('11111111-2222-3333-4444-555555555555');
  const mine = variable('Mine', VENDOR, Attrs.NV_BS_RT, Uint8Array.of(1, 2, 3));
  const order = variable('BootOrder', GLOBAL, Attrs.NV_BS_RT, Uint8Array.of(0, 0));
  const hashes = serializeSignatureLists([
    signatureListOfHashes(Guids.CERT_SHA256, [new Uint8Array(32).fill(1)], new Uint8Array(16)),
  ]);

  it('keeps every other variable in place and adds no builtins', () => {
    const session = EditSession.open(stateOf([mine, order]));
    expect(
      session.set(utf16le('dbx'), IMAGE_SECURITY, SB_ATTRS, unsignedUpdate(new Uint8Array(16), hashes)).status,
    ).toBe(EfiStatus.SUCCESS);
    expect(session.set(utf16le('Mine'), VENDOR, Attrs.NV_BS_RT, Uint8Array.of(9)).status).toBe(EfiStatus.SUCCESS);
    const result = session.result();
    expect(result.variables.map((v) => fromUtf16le(v.name))).toEqual(['Mine', 'BootOrder', 'dbx']);
    expect(result.variables[0]!.data).toEqual(Uint8Array.of(9));
    expect(result.variables[1]).toBe(order);
    expect(describeChanges(session.changes())).toEqual([
      'create dbx: 0 → 76 bytes',
      `  + CERT_SHA256 ${'01'.repeat(8)}…`,
      'update Mine: 3 → 1 bytes',
    ]);
  });

  it('writes Secure Boot databases unsigned in permissive mode, but not in enforcing mode once a PK is set', () => {
    const permissive = EditSession.open(undefined);
    const pk = serializeSignatureLists([
      signatureListOfCertificate(microsoftCertificates()[0]!.der, new Uint8Array(16)),
    ]);
    expect(permissive.set(utf16le('PK'), GLOBAL, SB_ATTRS, unsignedUpdate(new Uint8Array(16), pk)).status).toBe(
      EfiStatus.SUCCESS,
    );
    expect(permissive.result().variables.map((v) => fromUtf16le(v.name))).toEqual(['PK']);
    const session = EditSession.open(stateOf([variable('PK', GLOBAL, SB_ATTRS, hashes)]), 'enforcing');
    const r = session.set(utf16le('db'), IMAGE_SECURITY, SB_ATTRS, unsignedUpdate(new Uint8Array(16), hashes));
    expect(r.status).toBe(EfiStatus.SECURITY_VIOLATION);
    expect(r.reason).toMatch(/no signature/);
  });

  it('still requires the signer of a private authenticated variable, as varstored does', () => {
    const session = EditSession.open(undefined);
    const r = session.set(
      utf16le('Private'),
      parseGuid('11111111-2222-3333-4444-555555555555'),
      SB_ATTRS,
      unsignedUpdate(new Uint8Array(16), Uint8Array.of(1)),
    );
    expect(r.status).toBe(EfiStatus.SECURITY_VIOLATION);
    expect(session.changes()).toEqual([]);
  });

  it('refuses to load a store the daemon could not load, as a store error', () => {
    const e = usage(() => EditSession.open(stateOf([variable('X', GLOBAL, 0x08, Uint8Array.of(1))])));
    expect(e.exitCode).toBe(ExitCode.STORE);
  });
});

describe('Microsoft certificate choices', () => {
  it('selects KEKs and db CAs by generation and purpose', () => {
    expect(microsoftKeks('2011').map((c) => c.id)).toEqual(['kek-2011']);
    expect(microsoftKeks('all').map((c) => c.id)).toEqual(['kek-2011', 'kek-2023']);
    expect(microsoftKeks('none')).toEqual([]);
    expect(microsoftDbs(['windows']).map((c) => c.id)).toEqual(['db-windows-2011', 'db-windows-2023']);
    expect(microsoftDbs(parseDbChoices(['uefi,oprom'])!).map((c) => c.id)).toEqual([
      'db-uefi-2011',
      'db-uefi-2023',
      'db-oprom-2023',
    ]);
    expect(microsoftDbs(['all'])).toHaveLength(5);
    expect(usage(() => parseDbChoices(['none', 'windows'])).exitCode).toBe(ExitCode.USAGE);
    expect(usage(() => parseDbChoices(['win11'])).exitCode).toBe(ExitCode.USAGE);
  });

  it('diffs databases as multisets of entries', () => {
    const a = variable(
      'db',
      IMAGE_SECURITY,
      SB_ATTRS,
      serializeSignatureLists([
        signatureListOfHashes(
          Guids.CERT_SHA256,
          [new Uint8Array(32).fill(1), new Uint8Array(32).fill(1)],
          new Uint8Array(16),
        ),
      ]),
    );
    const b = variable(
      'db',
      IMAGE_SECURITY,
      SB_ATTRS,
      serializeSignatureLists([
        signatureListOfHashes(
          Guids.CERT_SHA256,
          [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)],
          new Uint8Array(16),
        ),
      ]),
    );
    expect(databaseDiff({ name: a.name, guid: a.guid, before: a, after: b })).toEqual({
      added: [`CERT_SHA256 ${'02'.repeat(8)}…`],
      removed: [`CERT_SHA256 ${'01'.repeat(8)}…`],
    });
  });
});
