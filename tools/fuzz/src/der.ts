/**
 * Just enough BER to mutate PKCS#7 structurally: a tolerant TLV tree parser and an encoder whose
 * length encoding can be made hostile per node (indefinite, non-minimal, huge, off by one).
 */
import { concatBytes as concat } from '@vmsb/protocol';

export type LengthForm = 'minimal' | 'indefinite' | 'long4' | 'huge' | 'plus1' | 'minus1';

export interface DerNode {
  /** Identifier octets (one for low tag numbers). */
  tag: Uint8Array;
  /** Children of a constructed node; undefined for a primitive one. */
  children?: DerNode[];
  /** Content of a primitive node. */
  content?: Uint8Array;
  /** How the length is written back. */
  form?: LengthForm;
  /** Already-encoded bytes written as they are (instead of tag, length and content). */
  raw?: Uint8Array;
}

const MAX_DEPTH = 96;

/** Parses definite-length BER; undefined when `bytes` is not one well-framed element. */
export function parseDer(bytes: Uint8Array): DerNode | undefined {
  const r = parseAt(bytes, 0, bytes.length, 0);
  return r !== undefined && r.end === bytes.length ? r.node : undefined;
}

function parseAt(
  bytes: Uint8Array,
  start: number,
  limit: number,
  depth: number,
): { node: DerNode; end: number } | undefined {
  if (depth > MAX_DEPTH || start >= limit) return undefined;
  let p = start;
  const first = bytes[p++]!;
  if ((first & 0x1f) === 0x1f) {
    while (p < limit && (bytes[p]! & 0x80) !== 0) p++;
    p++;
  }
  if (p >= limit) return undefined;
  const tag = bytes.slice(start, p);
  let len = bytes[p++]!;
  if (len === 0x80) return undefined;
  if (len > 0x80) {
    const n = len & 0x7f;
    if (n > 4 || p + n > limit) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + bytes[p++]!;
  }
  if (len > limit - p) return undefined;
  const end = p + len;
  if ((first & 0x20) !== 0) {
    const children: DerNode[] = [];
    let q = p;
    while (q < end) {
      const child = parseAt(bytes, q, end, depth + 1);
      if (child === undefined) return { node: { tag, content: bytes.slice(p, end) }, end };
      children.push(child.node);
      q = child.end;
    }
    return { node: { tag, children }, end };
  }
  return { node: { tag, content: bytes.slice(p, end) }, end };
}

/** Encodes the tree, honouring each node's length form. */
export function encodeDer(node: DerNode): Uint8Array {
  const parts: Uint8Array[] = [];
  write(node, parts);
  return concat(...parts);
}

function contentOf(node: DerNode): Uint8Array {
  if (node.children === undefined) return node.content ?? new Uint8Array(0);
  return concat(...node.children.map(encodeDer));
}

function write(node: DerNode, parts: Uint8Array[]): void {
  if (node.raw !== undefined) {
    parts.push(node.raw);
    return;
  }
  const body = contentOf(node);
  parts.push(node.tag);
  const form = node.form ?? 'minimal';
  switch (form) {
    case 'indefinite':
      parts.push(Uint8Array.of(0x80), body, Uint8Array.of(0, 0));
      return;
    case 'long4':
      parts.push(
        Uint8Array.of(
          0x84,
          (body.length >>> 24) & 0xff,
          (body.length >>> 16) & 0xff,
          (body.length >>> 8) & 0xff,
          body.length & 0xff,
        ),
        body,
      );
      return;
    case 'huge':
      parts.push(Uint8Array.of(0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0), body);
      return;
    case 'plus1':
      parts.push(lengthOctets(body.length + 1), body);
      return;
    case 'minus1':
      parts.push(lengthOctets(Math.max(0, body.length - 1)), body);
      return;
    default:
      parts.push(lengthOctets(body.length), body);
  }
}

export function lengthOctets(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** A TLV with a minimal length. */
export function tlv(tag: number, content: Uint8Array): Uint8Array {
  const len = lengthOctets(content.length);
  const out = new Uint8Array(1 + len.length + content.length);
  out[0] = tag;
  out.set(len, 1);
  out.set(content, 1 + len.length);
  return out;
}

/** Every node of the tree with its parent (the root's parent is undefined). */
export function allNodes(root: DerNode): { node: DerNode; parent: DerNode | undefined; depth: number }[] {
  const out: { node: DerNode; parent: DerNode | undefined; depth: number }[] = [];
  const walk = (node: DerNode, parent: DerNode | undefined, depth: number): void => {
    out.push({ node, parent, depth });
    for (const c of node.children ?? []) walk(c, node, depth + 1);
  };
  walk(root, undefined, 0);
  return out;
}

export function cloneNode(node: DerNode): DerNode {
  return {
    tag: node.tag.slice(),
    ...(node.raw !== undefined ? { raw: node.raw } : {}),
    ...(node.children !== undefined ? { children: node.children.map(cloneNode) } : {}),
    ...(node.content !== undefined ? { content: node.content.slice() } : {}),
    ...(node.form !== undefined ? { form: node.form } : {}),
  };
}

/**
 * `inner` wrapped in `depth` constructed elements of `tag`, stopping before the result would exceed
 * `limit` bytes. Built in one pass (headers computed inside out), whatever the depth.
 */
export function nest(inner: Uint8Array, depth: number, tag: number, limit: number): Uint8Array {
  const headers: Uint8Array[] = [];
  let size = inner.length;
  for (let d = 0; d < depth; d++) {
    const len = lengthOctets(size);
    if (size + 1 + len.length > limit) break;
    const header = new Uint8Array(1 + len.length);
    header[0] = tag;
    header.set(len, 1);
    headers.push(header);
    size += header.length;
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (let i = headers.length - 1; i >= 0; i--) {
    out.set(headers[i]!, o);
    o += headers[i]!.length;
  }
  out.set(inner, o);
  return out;
}
