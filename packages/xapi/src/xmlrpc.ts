/**
 * XML-RPC as XAPI speaks it: the subset of https://xmlrpc.com/spec.md plus `<nil/>` and `<i8>`.
 *
 * Encoding is written here (not with an XML builder) because the requests must be byte-for-byte
 * what the C varstored sends. Decoding uses the `sax` parser in strict mode with only the five
 * predefined entities; a DOCTYPE is refused, so no entity declared by the peer is ever expanded.
 */
import sax from 'sax';

export type XmlRpcValue =
  | string
  | number
  | bigint
  | boolean
  | null
  | Uint8Array
  | readonly XmlRpcValue[]
  | XmlRpcStruct;

/** A struct; a Map so that member names such as `__proto__` are plain data. */
export type XmlRpcStruct = ReadonlyMap<string, XmlRpcValue>;

/**
 * How strings are written. `typed` is `<value><string>s</string></value>` (the C varstored's
 * requests); `bare` is `<value>s</value>` (what XAPI and xapi-guard send back).
 */
export type StringStyle = 'typed' | 'bare';

export class XmlRpcError extends Error {
  override readonly name = 'XmlRpcError';
}

/** Nesting limit for decoded values; XAPI answers nest a handful of levels at most. */
export const MAX_VALUE_DEPTH = 32;
/** Elements of any kind in one document. */
export const MAX_ELEMENTS = 100_000;

// Characters XML 1.0 cannot carry at all (also lone surrogates).
const NOT_XML_CHAR =
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/u;

/** Escape text content. `\r` is written as a character reference so it survives end-of-line handling. */
export function escapeXmlText(text: string): string {
  if (NOT_XML_CHAR.test(text)) {
    throw new XmlRpcError('string contains a character XML cannot represent');
  }
  return text.replace(/[&<>\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#13;'));
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

export function encodeValue(value: XmlRpcValue, style: StringStyle, depth = 0): string {
  if (depth > MAX_VALUE_DEPTH) throw new XmlRpcError('value nests too deeply');
  return `<value>${encodeInner(value, style, depth)}</value>`;
}

function encodeInner(value: XmlRpcValue, style: StringStyle, depth: number): string {
  if (typeof value === 'string') {
    return style === 'typed' ? `<string>${escapeXmlText(value)}</string>` : escapeXmlText(value);
  }
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX) return `<int>${value}</int>`;
    if (!Number.isFinite(value)) throw new XmlRpcError('XML-RPC cannot carry a non-finite double');
    return `<double>${formatDouble(value)}</double>`;
  }
  if (typeof value === 'bigint') {
    if (value < INT64_MIN || value > INT64_MAX) throw new XmlRpcError('integer outside the 64-bit range');
    return `<i8>${value}</i8>`;
  }
  if (typeof value === 'boolean') return `<boolean>${value ? 1 : 0}</boolean>`;
  if (value === null) return '<nil/>';
  if (value instanceof Uint8Array)
    return `<base64>${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')}</base64>`;
  if (value instanceof Map) {
    let out = '<struct>';
    for (const [name, member] of value) {
      out += `<member><name>${escapeXmlText(name)}</name>${encodeValue(member, style, depth + 1)}</member>`;
    }
    return `${out}</struct>`;
  }
  if (Array.isArray(value)) {
    let out = '<array><data>';
    for (const item of value as readonly XmlRpcValue[]) out += encodeValue(item, style, depth + 1);
    return `${out}</data></array>`;
  }
  throw new XmlRpcError('not an XML-RPC value');
}

// A double in the spec's form: digits and a point, no exponent. JavaScript's shortest
// round-trip digits are kept; only the exponent is written out as zeros.
function formatDouble(value: number): string {
  const text = String(value);
  const match = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!match) return text.includes('.') ? text : `${text}.0`;
  const [, sign, lead, fraction = '', exponentText] = match;
  const digits = `${lead}${fraction}`;
  const point = 1 + Number(exponentText); // position of the decimal point within `digits`
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}.0`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/**
 * A methodCall document. With the `typed` style and string/int parameters this is exactly the C
 * varstored's request text (single-quoted XML declaration, no whitespace between elements).
 */
export function encodeMethodCall(method: string, params: readonly XmlRpcValue[], style: StringStyle = 'typed'): string {
  let out = `<?xml version='1.0'?><methodCall><methodName>${escapeXmlText(method)}</methodName><params>`;
  for (const param of params) out += `<param>${encodeValue(param, style)}</param>`;
  return `${out}</params></methodCall>`;
}

/** A methodResponse document carrying one value, in the form XAPI's OCaml RPC library writes. */
export function encodeMethodResponse(value: XmlRpcValue, style: StringStyle = 'bare'): string {
  return `<?xml version="1.0"?><methodResponse><params><param>${encodeValue(value, style)}</param></params></methodResponse>`;
}

/** A standard XML-RPC fault document. */
export function encodeFault(code: number, message: string): string {
  const fault = new Map<string, XmlRpcValue>([
    ['faultCode', code],
    ['faultString', message],
  ]);
  return `<?xml version="1.0"?><methodResponse><fault>${encodeValue(fault, 'typed')}</fault></methodResponse>`;
}

// ---------------------------------------------------------------------------------------------
// Decoding: XML text -> a small element tree (bounded) -> XML-RPC values.

interface Element {
  readonly name: string;
  readonly children: (Element | string)[];
}

type SaxOptions = sax.SAXOptions & { strictEntities?: boolean };

/** Bounds on a document, for answers larger than varstored's (a pool's VM records). */
export interface DecodeLimits {
  /** Elements of any kind in one document. Default MAX_ELEMENTS. */
  readonly maxElements?: number;
}

/** Parse a whole document into an element tree. Throws XmlRpcError on anything malformed. */
function parseDocument(text: string, limits: DecodeLimits = {}): Element {
  const maxElements = limits.maxElements ?? MAX_ELEMENTS;
  // strictEntities: only &lt; &gt; &amp; &apos; &quot; and character references.
  const parser = sax.parser(true, {
    trim: false,
    normalize: false,
    position: true,
    strictEntities: true,
  } as SaxOptions);
  const stack: Element[] = [];
  let root: Element | undefined;
  let elements = 0;
  parser.onerror = (error: Error) => {
    throw new XmlRpcError(`malformed XML: ${error.message.split('\n')[0] ?? ''}`);
  };
  parser.ondoctype = () => {
    throw new XmlRpcError('a DOCTYPE is not allowed in XML-RPC');
  };
  parser.onopentag = (tag) => {
    elements += 1;
    if (elements > maxElements) throw new XmlRpcError('too many elements');
    // Values nest as value/struct/member/value...: three elements per level plus the envelope.
    if (stack.length > MAX_VALUE_DEPTH * 3 + 8) throw new XmlRpcError('document nests too deeply');
    const element: Element = { name: tag.name, children: [] };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(element);
    else root = element;
    stack.push(element);
  };
  parser.onclosetag = () => {
    stack.pop();
  };
  const onText = (chunk: string) => {
    const parent = stack[stack.length - 1];
    if (!parent) return; // whitespace around the root; sax rejects anything else in strict mode
    const last = parent.children[parent.children.length - 1];
    if (typeof last === 'string') parent.children[parent.children.length - 1] = last + chunk;
    else parent.children.push(chunk);
  };
  parser.ontext = onText;
  parser.oncdata = onText;
  try {
    parser.write(text).close();
  } catch (error) {
    if (error instanceof XmlRpcError) throw error;
    throw new XmlRpcError(`malformed XML: ${(error as Error).message.split('\n')[0] ?? ''}`);
  }
  if (!root) throw new XmlRpcError('empty document');
  return root;
}

function childElements(element: Element): Element[] {
  const out: Element[] = [];
  for (const child of element.children) {
    if (typeof child === 'string') {
      if (!/^[ \t\r\n]*$/.test(child)) throw new XmlRpcError(`unexpected text inside <${element.name}>`);
    } else {
      out.push(child);
    }
  }
  return out;
}

function onlyChild(element: Element, name: string): Element {
  const children = childElements(element);
  const [first] = children;
  if (children.length !== 1 || !first || first.name !== name) {
    throw new XmlRpcError(`<${element.name}> must contain exactly one <${name}>`);
  }
  return first;
}

function textOf(element: Element): string {
  let out = '';
  for (const child of element.children) {
    if (typeof child !== 'string') throw new XmlRpcError(`<${element.name}> must contain only text`);
    out += child;
  }
  return out;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard base64 with padding; whitespace is not allowed. Returns undefined when invalid. */
export function decodeBase64Strict(text: string): Uint8Array | undefined {
  if (!BASE64.test(text)) return undefined;
  return new Uint8Array(Buffer.from(text, 'base64'));
}

function decodeValue(element: Element, depth: number): XmlRpcValue {
  if (element.name !== 'value') throw new XmlRpcError(`expected <value>, found <${element.name}>`);
  if (depth > MAX_VALUE_DEPTH) throw new XmlRpcError('value nests too deeply');
  const children = element.children.filter((c): c is Element => typeof c !== 'string');
  if (children.length === 0) return textOf(element); // untyped value = string
  const typed = onlyChild(element, children[0]!.name);
  switch (typed.name) {
    case 'string':
      return textOf(typed);
    case 'int':
    case 'i4': {
      const text = textOf(typed).trim();
      if (!/^[+-]?[0-9]{1,10}$/.test(text)) throw new XmlRpcError(`bad <${typed.name}> "${text.slice(0, 32)}"`);
      const n = Number(text);
      if (n < INT32_MIN || n > INT32_MAX) throw new XmlRpcError(`<${typed.name}> out of range`);
      return n;
    }
    case 'i8': {
      const text = textOf(typed).trim();
      if (!/^[+-]?[0-9]{1,19}$/.test(text)) throw new XmlRpcError(`bad <i8> "${text.slice(0, 32)}"`);
      const n = BigInt(text);
      if (n < INT64_MIN || n > INT64_MAX) throw new XmlRpcError('<i8> out of range');
      return n;
    }
    case 'boolean': {
      const text = textOf(typed).trim();
      if (text !== '0' && text !== '1') throw new XmlRpcError(`bad <boolean> "${text.slice(0, 32)}"`);
      return text === '1';
    }
    case 'double': {
      const text = textOf(typed).trim();
      // 330 digits covers every double written out in full (5e-324 and 1.8e308).
      if (!/^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/.test(text) || text.length > 400) {
        throw new XmlRpcError(`bad <double> "${text.slice(0, 32)}"`);
      }
      return Number(text);
    }
    case 'base64': {
      const bytes = decodeBase64Strict(textOf(typed).replace(/[ \t\r\n]/g, ''));
      if (!bytes) throw new XmlRpcError('bad <base64>');
      return bytes;
    }
    case 'dateTime.iso8601':
      return textOf(typed);
    case 'nil':
      if (typed.children.length !== 0) throw new XmlRpcError('<nil/> must be empty');
      return null;
    case 'struct': {
      const members = new Map<string, XmlRpcValue>();
      for (const member of childElements(typed)) {
        if (member.name !== 'member') throw new XmlRpcError(`unexpected <${member.name}> in <struct>`);
        const parts = childElements(member);
        const nameElement = parts.find((p) => p.name === 'name');
        const valueElement = parts.find((p) => p.name === 'value');
        if (parts.length !== 2 || !nameElement || !valueElement) {
          throw new XmlRpcError('<member> must contain one <name> and one <value>');
        }
        const name = textOf(nameElement);
        if (members.has(name)) throw new XmlRpcError(`duplicate struct member "${name.slice(0, 64)}"`);
        members.set(name, decodeValue(valueElement, depth + 1));
      }
      return members;
    }
    case 'array': {
      const data = onlyChild(typed, 'data');
      return childElements(data).map((item) => decodeValue(item, depth + 1));
    }
    default:
      throw new XmlRpcError(`unknown XML-RPC type <${typed.name.slice(0, 64)}>`);
  }
}

function decodeParams(element: Element): XmlRpcValue[] {
  return childElements(element).map((param) => {
    if (param.name !== 'param') throw new XmlRpcError(`unexpected <${param.name}> in <params>`);
    return decodeValue(onlyChild(param, 'value'), 0);
  });
}

export interface MethodCall {
  readonly method: string;
  readonly params: readonly XmlRpcValue[];
}

export function decodeMethodCall(text: string): MethodCall {
  const root = parseDocument(text);
  if (root.name !== 'methodCall') throw new XmlRpcError(`expected <methodCall>, found <${root.name}>`);
  const parts = childElements(root);
  const nameElement = parts[0];
  if (nameElement?.name !== 'methodName') throw new XmlRpcError('<methodCall> must start with <methodName>');
  const method = textOf(nameElement).trim();
  if (parts.length > 2) throw new XmlRpcError('<methodCall> has unexpected elements');
  const paramsElement = parts[1];
  if (paramsElement && paramsElement.name !== 'params')
    throw new XmlRpcError(`unexpected <${paramsElement.name}> in <methodCall>`);
  return { method, params: paramsElement ? decodeParams(paramsElement) : [] };
}

export type MethodResponse =
  | { readonly kind: 'result'; readonly value: XmlRpcValue }
  | { readonly kind: 'fault'; readonly code: XmlRpcValue; readonly message: string };

export function decodeMethodResponse(text: string, limits: DecodeLimits = {}): MethodResponse {
  const root = parseDocument(text, limits);
  if (root.name !== 'methodResponse') throw new XmlRpcError(`expected <methodResponse>, found <${root.name}>`);
  const [only, ...rest] = childElements(root);
  if (!only || rest.length > 0) throw new XmlRpcError('<methodResponse> must contain one <params> or <fault>');
  if (only.name === 'fault') {
    const fault = decodeValue(onlyChild(only, 'value'), 0);
    if (!(fault instanceof Map)) throw new XmlRpcError('<fault> must carry a struct');
    const message = fault.get('faultString');
    return { kind: 'fault', code: fault.get('faultCode') ?? null, message: typeof message === 'string' ? message : '' };
  }
  if (only.name !== 'params') throw new XmlRpcError(`unexpected <${only.name}> in <methodResponse>`);
  const params = decodeParams(only);
  if (params.length !== 1) throw new XmlRpcError('<methodResponse> must carry exactly one <param>');
  return { kind: 'result', value: params[0]! };
}
