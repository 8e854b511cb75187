import { describe, expect, it } from 'vitest';
import { createLogger, escapeForLog } from './log.js';

describe('log sink', () => {
  it('writes each message as one line with control, format and separator characters escaped', () => {
    const written: string[] = [];
    const sink = { write: (t: string) => written.push(t) };
    const log = createLogger('debug', { stdout: sink, stderr: sink });
    log.warn('a\x1b[31mb\x07c\r\nd\te\x7f\x85\u202e\u2028\ud800 é ✓ …');
    expect(written).toEqual(['warn: a\\x1b[31mb\\x07c\\r\\nd\\te\\x7f\\x85\\u202e\\u2028\\ud800 é ✓ …\n']);
  });

  it('leaves printable text as it is', () => {
    expect(escapeForLog('SetVariable "db" d719b2cb-3d3a-4596-a3bc-dad00e67656f: SUCCESS')).toBe(
      'SetVariable "db" d719b2cb-3d3a-4596-a3bc-dad00e67656f: SUCCESS',
    );
  });
});
