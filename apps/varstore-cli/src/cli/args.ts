import { parseArgs } from 'node:util';
import { usageError } from './errors.js';

export type OptionKind = 'flag' | 'value' | 'values';

export interface OptionSpec {
  readonly kind: OptionKind;
  readonly short?: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** Options every command accepts. */
export const COMMON_OPTIONS = {
  help: { kind: 'flag', short: 'h' },
  ascii: { kind: 'flag' },
  'no-color': { kind: 'flag' },
  socket: { kind: 'value' },
} as const satisfies OptionSpecs;

export interface ParsedArgs {
  readonly positionals: readonly string[];
  flag(name: string): boolean;
  value(name: string): string | undefined;
  values(name: string): readonly string[];
  /** The value, or a usage error naming the option. */
  required(name: string): string;
}

/**
 * Parses a command's arguments: long options (`--name value`, `--name=value`), their short forms,
 * repeated options, `--` before positionals that start with a dash. Unknown options, missing values
 * and a value given twice to a single-valued option are usage errors.
 */
export function parseCommandArgs(argv: readonly string[], specs: OptionSpecs, command: string): ParsedArgs {
  const all: OptionSpecs = { ...COMMON_OPTIONS, ...specs };
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, spec] of Object.entries(all)) {
    options[name] = {
      type: spec.kind === 'flag' ? 'boolean' : 'string',
      ...(spec.short !== undefined ? { short: spec.short } : {}),
      // Single-valued options are collected too, so that giving one twice is caught.
      ...(spec.kind !== 'flag' ? { multiple: true } : {}),
    };
  }
  let parsed: { values: Record<string, string[] | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (e) {
    const message = e instanceof Error ? e.message.replace(/\. To specify a positional argument.*$/s, '') : String(e);
    throw usageError(`${command}: ${message.replace(/^Option '/, "option '")}`, `see \`varstore ${command} --help\``);
  }
  const values = parsed.values;
  for (const [name, spec] of Object.entries(all)) {
    const v = values[name];
    if (spec.kind === 'value' && Array.isArray(v) && v.length > 1)
      throw usageError(`${command}: --${name} is given ${v.length} times`);
  }
  return {
    positionals: parsed.positionals,
    flag: (name) => values[name] === true,
    value: (name) => {
      const v = values[name];
      return Array.isArray(v) ? v[0] : undefined;
    },
    values: (name) => {
      const v = values[name];
      return Array.isArray(v) ? v : [];
    },
    required(name) {
      const v = this.value(name);
      if (v === undefined || v === '')
        throw usageError(`${command}: --${name} is required`, `see \`varstore ${command} --help\``);
      return v;
    },
  };
}

/** Exactly `count` positionals (or between min and max), else a usage error naming them. */
export function positionals(args: ParsedArgs, command: string, names: readonly string[], optional = 0): string[] {
  const p = args.positionals;
  const min = names.length - optional;
  if (p.length < min)
    throw usageError(
      `${command}: missing ${names
        .slice(p.length)
        .filter((_, i) => p.length + i < min)
        .map((n) => `<${n}>`)
        .join(' ')}`,
      `see \`varstore ${command} --help\``,
    );
  if (p.length > names.length)
    throw usageError(
      `${command}: unexpected argument ${JSON.stringify(p[names.length])}`,
      `see \`varstore ${command} --help\``,
    );
  return [...p];
}
