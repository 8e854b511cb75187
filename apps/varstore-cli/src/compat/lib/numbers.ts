/**
 * Numbers on the command line, read as C's strtol/strtoul with base 0 read them: optional
 * leading white space and sign, then `0x` hexadecimal, `0` octal or decimal.
 */

const SPACE = new Set([' ', '\t', '\n', '\v', '\f', '\r']);

export interface CNumber {
  /** The value read (sign applied); 0 when no digits were found. */
  readonly value: bigint;
  /** Where reading stopped; 0 when there were no digits (strtol's end pointer is the start then). */
  readonly end: number;
  readonly negative: boolean;
}

function digitValue(c: string): number {
  const code = c.charCodeAt(0);
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  if (code >= 65 && code <= 70) return code - 55;
  return 99;
}

/** strtol(text, &end, 0) without range clamping. */
export function readCNumber(text: string): CNumber {
  let i = 0;
  while (i < text.length && SPACE.has(text[i]!)) i++;
  let negative = false;
  if (text[i] === '+' || text[i] === '-') {
    negative = text[i] === '-';
    i++;
  }
  let base = 10;
  if (text[i] === '0') {
    if ((text[i + 1] === 'x' || text[i + 1] === 'X') && i + 2 < text.length && digitValue(text[i + 2]!) < 16) {
      base = 16;
      i += 2;
    } else {
      base = 8;
    }
  }
  const start = i;
  let value = 0n;
  while (i < text.length && digitValue(text[i]!) < base) {
    value = value * BigInt(base) + BigInt(digitValue(text[i]!));
    i++;
  }
  if (i === start) return { value: 0n, end: 0, negative: false };
  return { value: negative ? -value : value, end: i, negative };
}

/**
 * A uid or gid argument (`-u`, `-g`): the whole text must be a number, as the C tools require.
 * Empty text is 0 (unchanged), as strtol makes it. Negative or out-of-range ids, which C would wrap
 * into other ids, are refused.
 */
export function parseIdArgument(text: string): number | undefined {
  if (text === '') return 0;
  const n = readCNumber(text);
  if (n.end !== text.length || n.end === 0 || n.negative) return undefined;
  return n.value <= 0xfffffffen ? Number(n.value) : undefined;
}

/**
 * varstore-set's attributes: a number in C syntax (`7`, `0x27`, `047`) that must fill the whole
 * argument and fit 32 bits. (C's strtoul would take a numeric prefix and read a word such as
 * `append` as 0 — which deletes the variable — so such arguments are refused here.)
 */
export function parseAttributesArgument(text: string): number | undefined {
  const n = readCNumber(text);
  if (n.end === 0 || n.end !== text.length || n.negative) return undefined;
  return n.value <= 0xffffffffn ? Number(n.value) : undefined;
}
