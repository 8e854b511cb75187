import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeBase64Strict,
  decodeMethodCall,
  decodeMethodResponse,
  encodeFault,
  encodeMethodCall,
  encodeMethodResponse,
  XmlRpcError,
  type XmlRpcValue,
} from './xmlrpc.js';

const xmlSafeString = fc
  .string({ unit: 'binary', maxLength: 40 })
  .filter((s) => !/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/.test(s));

const { value: valueArb } = fc.letrec<{ value: XmlRpcValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    xmlSafeString,
    fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).filter((n) => !Object.is(n, -0)),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
    fc.boolean(),
    fc.constant(null),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc
      .uniqueArray(fc.tuple(xmlSafeString, tie('value')), { maxLength: 4, selector: ([k]) => k })
      .map((entries) => new Map(entries)),
  ),
}));

describe('XML-RPC encoding', () => {
  it('writes the login call byte for byte as varstored does', () => {
    expect(encodeMethodCall('session.login_with_password', ['root', '', '', ''])).toBe(
      "<?xml version='1.0'?><methodCall><methodName>session.login_with_password</methodName><params>" +
        '<param><value><string>root</string></value></param>' +
        '<param><value><string></string></value></param>' +
        '<param><value><string></string></value></param>' +
        '<param><value><string></string></value></param>' +
        '</params></methodCall>',
    );
  });

  it('writes message.create with the priority as <int>', () => {
    const text = encodeMethodCall('message.create', ['S', 'VM_SECURE_BOOT_FAILED', 5, 'VM', 'u', 'b']);
    expect(text).toContain(
      '<param><value><string>VM_SECURE_BOOT_FAILED</string></value></param><param><value><int>5</int></value></param>',
    );
  });

  it('escapes markup characters and carriage returns', () => {
    const text = encodeMethodCall('m', ['a<b>&c\r\n']);
    expect(text).toContain('<string>a&lt;b&gt;&amp;c&#13;\n</string>');
    expect(decodeMethodCall(text).params).toEqual(['a<b>&c\r\n']);
  });

  it('refuses strings XML cannot carry', () => {
    expect(() => encodeMethodCall('m', ['a\u0000b'])).toThrow(XmlRpcError);
    expect(() => encodeMethodCall('m', ['\ud800'])).toThrow(XmlRpcError);
    expect(() => encodeMethodCall('m', [Number.POSITIVE_INFINITY])).toThrow(XmlRpcError);
  });

  it('round-trips any value through a response, in both string styles', () => {
    fc.assert(
      fc.property(valueArb, fc.constantFrom('typed' as const, 'bare' as const), (value, style) => {
        const decoded = decodeMethodResponse(encodeMethodResponse(value, style));
        expect(decoded).toEqual({ kind: 'result', value });
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips method calls', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z_.]{1,30}$/), fc.array(valueArb, { maxLength: 6 }), (method, params) => {
        expect(decodeMethodCall(encodeMethodCall(method, params))).toEqual({ method, params });
      }),
      { numRuns: 200 },
    );
  });
});

describe('XML-RPC decoding of what XAPI and xapi-guard send', () => {
  const envelope = (inner: string) =>
    `<?xml version="1.0"?><methodResponse><params><param><value><struct>${inner}</struct></value></param></params></methodResponse>`;

  it('reads untyped string values and <nil/>', () => {
    const text = envelope(
      '<member><name>Status</name><value>Success</value></member><member><name>Value</name><value><nil/></value></member>',
    );
    expect(decodeMethodResponse(text)).toEqual({
      kind: 'result',
      value: new Map<string, XmlRpcValue>([
        ['Status', 'Success'],
        ['Value', null],
      ]),
    });
  });

  it('reads a Failure with a nested ErrorDescription', () => {
    const text = envelope(
      '<member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data>' +
        '<value>Does_not_exist</value><value><array><data><value>vm</value><value>x</value></data></array></value></data></array></value></member>',
    );
    const decoded = decodeMethodResponse(text);
    expect(decoded.kind).toBe('result');
    expect(decoded.kind === 'result' && decoded.value instanceof Map && decoded.value.get('ErrorDescription')).toEqual([
      'Does_not_exist',
      ['vm', 'x'],
    ]);
  });

  it('tolerates whitespace between elements and keeps it inside strings', () => {
    const text = `<?xml version="1.0"?>\n<methodResponse>\n <params>\n  <param>\n   <value>\n    <struct>\n     <member>\n      <name>Status</name>\n      <value><string> Success </string></value>\n     </member>\n    </struct>\n   </value>\n  </param>\n </params>\n</methodResponse>\n`;
    const decoded = decodeMethodResponse(text);
    expect(decoded).toEqual({ kind: 'result', value: new Map([['Status', ' Success ']]) });
  });

  it('reads <i4>, <boolean>, <double>, <base64>, CDATA and character references', () => {
    const text =
      '<methodResponse><params><param><value><array><data>' +
      '<value><i4>-7</i4></value><value><boolean>1</boolean></value><value><double>-1.5</double></value>' +
      '<value><base64>AAEC\n/w==</base64></value><value><![CDATA[<x>]]></value><value>&#x41;&#66;&apos;</value>' +
      '</data></array></value></param></params></methodResponse>';
    expect(decodeMethodResponse(text)).toEqual({
      kind: 'result',
      value: [-7, true, -1.5, Uint8Array.of(0, 1, 2, 255), '<x>', "AB'"],
    });
  });

  it('reads a standard fault', () => {
    expect(decodeMethodResponse(encodeFault(4, 'Too many parameters'))).toEqual({
      kind: 'fault',
      code: 4,
      message: 'Too many parameters',
    });
  });

  it('keeps a struct member named __proto__ as data', () => {
    const decoded = decodeMethodResponse(envelope('<member><name>__proto__</name><value>x</value></member>'));
    expect(decoded.kind === 'result' && decoded.value instanceof Map && decoded.value.get('__proto__')).toBe('x');
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});

describe('XML-RPC decoding of hostile input', () => {
  const refused = [
    ['a DOCTYPE', '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "x">]><methodResponse/>'],
    [
      'entity expansion',
      '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]><methodResponse><params><param><value>&lol2;</value></param></params></methodResponse>',
    ],
    ['an undeclared entity', '<methodResponse><params><param><value>&nbsp;</value></param></params></methodResponse>'],
    [
      'an external entity reference',
      '<methodResponse><params><param><value>&xxe;</value></param></params></methodResponse>',
    ],
    ['unclosed elements', '<methodResponse><params>'],
    ['mismatched tags', '<methodResponse><params></param></methodResponse>'],
    ['text after the root', '<methodResponse><params><param><value>x</value></param></params></methodResponse>junk'],
    [
      'mixed content',
      '<methodResponse><params><param><value>x<string>y</string></value></param></params></methodResponse>',
    ],
    [
      'two values in a param',
      '<methodResponse><params><param><value>x</value><value>y</value></param></params></methodResponse>',
    ],
    [
      'an unknown type',
      '<methodResponse><params><param><value><object>x</object></value></param></params></methodResponse>',
    ],
    [
      'an int out of range',
      '<methodResponse><params><param><value><int>2147483648</int></value></param></params></methodResponse>',
    ],
    [
      'a non-numeric int',
      '<methodResponse><params><param><value><int>0x10</int></value></param></params></methodResponse>',
    ],
    [
      'a bad boolean',
      '<methodResponse><params><param><value><boolean>true</boolean></value></param></params></methodResponse>',
    ],
    [
      'bad base64',
      '<methodResponse><params><param><value><base64>A===</base64></value></param></params></methodResponse>',
    ],
    [
      'a duplicate struct member',
      '<methodResponse><params><param><value><struct><member><name>a</name><value>1</value></member><member><name>a</name><value>2</value></member></struct></value></param></params></methodResponse>',
    ],
    [
      'a member without a value',
      '<methodResponse><params><param><value><struct><member><name>a</name></member></struct></value></param></params></methodResponse>',
    ],
    [
      'two params',
      '<methodResponse><params><param><value>a</value></param><param><value>b</value></param></params></methodResponse>',
    ],
    ['the wrong root', '<methodCall><methodName>x</methodName></methodCall>'],
    ['an empty document', ''],
  ] as const;

  it.each(refused)('refuses %s', (_what, text) => {
    expect(() => decodeMethodResponse(text)).toThrow(XmlRpcError);
  });

  it('refuses values nested beyond the limit', () => {
    const depth = 40;
    const text = `<methodResponse><params><param>${'<value><array><data>'.repeat(depth)}${'</data></array></value>'.repeat(depth)}</param></params></methodResponse>`;
    expect(() => decodeMethodResponse(text)).toThrow(/deep/);
  });

  it('never fails with anything but XmlRpcError on arbitrary text', () => {
    const fragments = fc.constantFrom(
      '<methodResponse>',
      '</methodResponse>',
      '<params>',
      '</params>',
      '<param>',
      '</param>',
      '<value>',
      '</value>',
      '<struct>',
      '</struct>',
      '<member>',
      '</member>',
      '<name>',
      '</name>',
      '<array>',
      '<data>',
      '</data>',
      '</array>',
      '<int>',
      '</int>',
      '<nil/>',
      '&amp;',
      '&',
      '<![CDATA[',
      ']]>',
      '<!--',
      '-->',
      '<?xml version="1.0"?>',
      '<!DOCTYPE x>',
      'x',
      ' ',
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(fragments, fc.string({ maxLength: 4 })), { maxLength: 30 }), (parts) => {
        try {
          decodeMethodResponse(parts.join(''));
        } catch (error) {
          expect(error).toBeInstanceOf(XmlRpcError);
        }
        try {
          decodeMethodCall(parts.join(''));
        } catch (error) {
          expect(error).toBeInstanceOf(XmlRpcError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('decodeBase64Strict', () => {
  it('accepts standard padded base64 and nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        expect(decodeBase64Strict(Buffer.from(bytes).toString('base64'))).toEqual(bytes);
      }),
    );
    expect(decodeBase64Strict('QUJD\n')).toBeUndefined();
    expect(decodeBase64Strict('QUJ')).toBeUndefined();
    expect(decodeBase64Strict('QU-_')).toBeUndefined();
    expect(decodeBase64Strict('Q===')).toBeUndefined();
  });
});
