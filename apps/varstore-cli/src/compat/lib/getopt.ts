/**
 * Command-line scanning as glibc's getopt(3) does it for the C tools: short options only,
 * clusters (`-ad`), attached or separate arguments (`-u1000`, `-u 1000`), `--` ending the options,
 * and operands permuted to the end so options may follow them (XAPI runs
 * `varstore-rm -c <uuid> -r <chroot> ...`). With POSIXLY_CORRECT set, the first operand ends the
 * options, as glibc does.
 */

export type OptionEvent =
  | { readonly kind: 'option'; readonly option: string; readonly argument?: string }
  /** What getopt prints after "<argv0>: " before returning '?'. */
  | { readonly kind: 'error'; readonly message: string };

export interface ScannedArguments {
  /** Options and errors in the order getopt returns them. */
  readonly events: readonly OptionEvent[];
  /** Non-option arguments, in their original order. */
  readonly operands: readonly string[];
}

/** `optstring` as getopt takes it: each option letter, followed by ':' when it takes an argument. */
export function scanArguments(
  args: readonly string[],
  optstring: string,
  options: { posixlyCorrect?: boolean } = {},
): ScannedArguments {
  const takesArgument = new Map<string, boolean>();
  for (let i = 0; i < optstring.length; i++) {
    const c = optstring[i]!;
    if (c === ':') continue;
    takesArgument.set(c, optstring[i + 1] === ':');
  }
  const events: OptionEvent[] = [];
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (arg.length < 2 || !arg.startsWith('-')) {
      if (options.posixlyCorrect) {
        operands.push(...args.slice(i));
        break;
      }
      operands.push(arg);
      continue;
    }
    for (let j = 1; j < arg.length; j++) {
      const c = arg[j]!;
      const needs = takesArgument.get(c);
      if (needs === undefined) {
        events.push({ kind: 'error', message: `invalid option -- '${c}'` });
        continue;
      }
      if (!needs) {
        events.push({ kind: 'option', option: c });
        continue;
      }
      if (j + 1 < arg.length) {
        events.push({ kind: 'option', option: c, argument: arg.slice(j + 1) });
      } else if (i + 1 < args.length) {
        // Like getopt, the next word is the argument whatever it looks like.
        events.push({ kind: 'option', option: c, argument: args[++i]! });
      } else {
        events.push({ kind: 'error', message: `option requires an argument -- '${c}'` });
      }
      break;
    }
  }
  return { events, operands };
}
