/**
 * EFI_TIME: 16 packed little-endian bytes
 * `u16 Year, u8 Month, Day, Hour, Minute, Second, Pad1, u32 Nanosecond, i16 TimeZone, u8 Daylight, Pad2`.
 */
export interface EfiTime {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly pad1: number;
  readonly nanosecond: number;
  /** Minutes from UTC, or 2047 (EFI_UNSPECIFIED_TIMEZONE). */
  readonly timeZone: number;
  readonly daylight: number;
  readonly pad2: number;
}

export const EFI_TIME_SIZE = 16;
export const EFI_UNSPECIFIED_TIMEZONE = 0x07ff;

/** The all-zero EFI_TIME a variable carries when it has no timestamp. */
export function zeroEfiTime(): Uint8Array {
  return new Uint8Array(EFI_TIME_SIZE);
}

/** Parses the first 16 bytes; undefined when fewer are given. */
export function parseEfiTime(bytes: Uint8Array): EfiTime | undefined {
  if (bytes.length < EFI_TIME_SIZE) return undefined;
  const v = new DataView(bytes.buffer, bytes.byteOffset, EFI_TIME_SIZE);
  return {
    year: v.getUint16(0, true),
    month: v.getUint8(2),
    day: v.getUint8(3),
    hour: v.getUint8(4),
    minute: v.getUint8(5),
    second: v.getUint8(6),
    pad1: v.getUint8(7),
    nanosecond: v.getUint32(8, true),
    timeZone: v.getInt16(12, true),
    daylight: v.getUint8(14),
    pad2: v.getUint8(15),
  };
}

/** The 16 bytes of `time`; every field is truncated to its width. */
export function serializeEfiTime(time: Partial<EfiTime>): Uint8Array {
  const out = new Uint8Array(EFI_TIME_SIZE);
  const v = new DataView(out.buffer);
  v.setUint16(0, time.year ?? 0, true);
  v.setUint8(2, time.month ?? 0);
  v.setUint8(3, time.day ?? 0);
  v.setUint8(4, time.hour ?? 0);
  v.setUint8(5, time.minute ?? 0);
  v.setUint8(6, time.second ?? 0);
  v.setUint8(7, time.pad1 ?? 0);
  v.setUint32(8, time.nanosecond ?? 0, true);
  v.setInt16(12, time.timeZone ?? 0, true);
  v.setUint8(14, time.daylight ?? 0);
  v.setUint8(15, time.pad2 ?? 0);
  return out;
}

/**
 * Why `time` is not acceptable as an EFI_VARIABLE_AUTHENTICATION_2 timestamp, or undefined when it is:
 * Pad1, Nanosecond, TimeZone, Daylight and Pad2 must all be zero (UEFI 2.10 §8.2.6, edk2). Calendar
 * values are deliberately not range-checked (edk2 does not; real fixtures carry day 0).
 */
export function authTimestampProblem(time: EfiTime): string | undefined {
  if (time.pad1 !== 0) return 'timestamp Pad1 is not zero';
  if (time.nanosecond !== 0) return 'timestamp Nanosecond is not zero';
  if (time.timeZone !== 0) return 'timestamp TimeZone is not zero';
  if (time.daylight !== 0) return 'timestamp Daylight is not zero';
  if (time.pad2 !== 0) return 'timestamp Pad2 is not zero';
  return undefined;
}

/**
 * Why `time` is not a valid EFI_TIME per the UEFI field ranges (as GetTime/SetTime require), or
 * undefined when it is.
 */
export function efiTimeProblem(time: EfiTime): string | undefined {
  if (time.year < 1900 || time.year > 9999) return `year ${time.year} is outside 1900..9999`;
  if (time.month < 1 || time.month > 12) return `month ${time.month} is outside 1..12`;
  const days = daysInMonth(time.year, time.month);
  if (time.day < 1 || time.day > days) return `day ${time.day} is outside 1..${days}`;
  if (time.hour > 23) return `hour ${time.hour} is outside 0..23`;
  if (time.minute > 59) return `minute ${time.minute} is outside 0..59`;
  if (time.second > 59) return `second ${time.second} is outside 0..59`;
  if (time.nanosecond > 999_999_999) return `nanosecond ${time.nanosecond} is outside 0..999999999`;
  if (time.timeZone !== EFI_UNSPECIFIED_TIMEZONE && (time.timeZone < -1440 || time.timeZone > 1440)) {
    return `time zone ${time.timeZone} is outside -1440..1440 and not unspecified (2047)`;
  }
  if ((time.daylight & ~0x03) !== 0)
    return `daylight ${time.daylight} has bits other than ADJUST_DAYLIGHT and IN_DAYLIGHT`;
  return undefined;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Orders two timestamps as edk2 does for authenticated variables: Year, Month, Day, Hour, Minute,
 * Second, in that order; the other fields are ignored. Returns <0, 0 or >0.
 */
export function compareEfiTime(a: EfiTime, b: EfiTime): number {
  return (
    a.year - b.year ||
    a.month - b.month ||
    a.day - b.day ||
    a.hour - b.hour ||
    a.minute - b.minute ||
    a.second - b.second
  );
}

/** `compareEfiTime` over the 16-byte encodings; a missing or short encoding counts as all zero. */
export function compareEfiTimeBytes(a: Uint8Array, b: Uint8Array): number {
  return compareEfiTime(parseEfiTime(a) ?? ZERO, parseEfiTime(b) ?? ZERO);
}

/** The later of two encoded timestamps by `compareEfiTime` (the first when equal). */
export function laterEfiTimeBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  return compareEfiTimeBytes(b, a) > 0 ? b : a;
}

const ZERO: EfiTime = parseEfiTime(new Uint8Array(EFI_TIME_SIZE))!;

/** An EFI_TIME (UTC, zero pads) for a Date, as signing tools stamp descriptors. */
export function efiTimeFromDate(date: Date): EfiTime {
  return {
    year: date.getUTCFullYear(),
    month: date.getUTCMonth() + 1,
    day: date.getUTCDate(),
    hour: date.getUTCHours(),
    minute: date.getUTCMinutes(),
    second: date.getUTCSeconds(),
    pad1: 0,
    nanosecond: 0,
    timeZone: 0,
    daylight: 0,
    pad2: 0,
  };
}

/** The Date of an EFI_TIME read as UTC (time zone and daylight ignored); invalid calendars roll over as Date does. */
export function efiTimeToDate(time: EfiTime): Date {
  // setUTCFullYear, unlike Date.UTC, does not map years 0..99 to 1900..1999.
  const date = new Date(0);
  date.setUTCFullYear(time.year, time.month - 1, time.day);
  date.setUTCHours(time.hour, time.minute, time.second, Math.floor(time.nanosecond / 1e6));
  return date;
}

/** `YYYY-MM-DDTHH:MM:SS` (no zone), for logs and listings. */
export function formatEfiTime(time: EfiTime): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(time.year, 4)}-${p(time.month)}-${p(time.day)}T${p(time.hour)}:${p(time.minute)}:${p(time.second)}`;
}
