/**
 * EFI_STATUS values as the C tools print them on stderr (one line, no prefix), so scripts and
 * XAPI see the same text from these tools.
 */
const ERROR_BIT = 0x8000_0000_0000_0000n;

const ERRORS: ReadonlyMap<bigint, string> = new Map([
  [1n, 'Load Error'],
  [2n, 'Invalid Parameter'],
  [3n, 'Unsupported'],
  [4n, 'Bad Buffer Size'],
  [5n, 'Buffer Too Small'],
  [6n, 'Not Ready'],
  [7n, 'Device Error'],
  [8n, 'Write Protected'],
  [9n, 'Out of Resources'],
  [10n, 'Volume Corrupt'],
  [11n, 'Volume Full'],
  [12n, 'No Media'],
  [13n, 'Media Changed'],
  [14n, 'Not Found'],
  [15n, 'Access Denied'],
  [16n, 'No Response'],
  [17n, 'No mapping'],
  [18n, 'Time out'],
  [19n, 'Not started'],
  [20n, 'Already started'],
  [21n, 'Aborted'],
  [22n, 'ICMP Error'],
  [23n, 'TFTP Error'],
  [24n, 'Protocol Error'],
  [25n, 'Incompatible Version'],
  [26n, 'Security Violation'],
  [27n, 'CRC Error'],
  [28n, 'End of Media'],
  [31n, 'End of File'],
  [32n, 'Invalid Language'],
  [33n, 'Compromised Data'],
]);

const WARNINGS: ReadonlyMap<bigint, string> = new Map([
  [1n, 'Warning Unknown Glyph'],
  [2n, 'Warning Delete Failure'],
  [3n, 'Warning Write Failure'],
  [4n, 'Warning Buffer Too Small'],
  [5n, 'Warning Stale Data'],
]);

/** The text for an EFI_STATUS (without the newline). */
export function efiStatusText(status: bigint): string {
  const s = BigInt.asUintN(64, status);
  if (s === 0n) return 'Success';
  const text = (s & ERROR_BIT) !== 0n ? ERRORS.get(s & ~ERROR_BIT) : WARNINGS.get(s);
  return text ?? `Unknown error: 0x${s.toString(16).padStart(16, '0')}`;
}
