import type { ArgSpec, CommandSpec, ParsedArgs } from './spec.js';

export const SYNTAX_ERROR = 'ERR syntax error';
export const NOT_AN_INTEGER = 'ERR value is not an integer or out of range';

interface TokenRule {
  readonly arg: ArgSpec;
  readonly oneof: ArgSpec | undefined;
}

/**
 * A command's grammar compiled from its ArgSpecs: required positional
 * arguments first, then optional TOKEN arguments and one-of groups in any
 * order (as Redis's own parsers accept them).
 */
export interface CompiledSyntax {
  readonly positional: readonly ArgSpec[];
  readonly tokens: ReadonlyMap<string, TokenRule>;
}

export function compileSyntax(spec: CommandSpec): CompiledSyntax {
  const positional: ArgSpec[] = [];
  const tokens = new Map<string, TokenRule>();
  for (const arg of spec.args) {
    if (arg.optional !== true && arg.token === undefined) {
      if (tokens.size > 0) throw new Error(`${spec.name}: positional '${arg.name}' after options`);
      positional.push(arg);
      continue;
    }
    const members = arg.type === 'oneof' ? arg.arguments ?? [] : [arg];
    for (const member of members) {
      if (member.token === undefined) throw new Error(`${spec.name}: option '${member.name}' has no token`);
      const oneof = arg.type === 'oneof' ? arg : undefined;
      tokens.set(member.token.toUpperCase(), { arg: member, oneof });
    }
  }
  const multiple = positional.findIndex((a) => a.multiple === true);
  if (multiple >= 0 && (multiple !== positional.length - 1 || tokens.size > 0)) {
    throw new Error(`${spec.name}: only a last positional argument may repeat, without options`);
  }
  return { positional, tokens };
}

/** Checks argv (argv[0..skip) is the command name) against the grammar. Returns the parsed args or an error text. */
export function parseArgs(syntax: CompiledSyntax, argv: readonly string[], skip: number): ParsedArgs | string {
  const parsed: ParsedArgs = {};
  let i = skip;
  for (const arg of syntax.positional) {
    if (arg.multiple === true) {
      parsed[arg.name] = argv.slice(i);
      return parsed;
    }
    if (i >= argv.length) return SYNTAX_ERROR;
    const value = convert(arg, argv[i]!);
    if (value === undefined) return arg.invalidError ?? NOT_AN_INTEGER;
    parsed[arg.name] = value;
    i += 1;
  }
  while (i < argv.length) {
    // Most clients send tokens in capitals: no uppercased copy then.
    const rule = syntax.tokens.get(argv[i]!) ?? syntax.tokens.get(argv[i]!.toUpperCase());
    if (rule === undefined) return SYNTAX_ERROR;
    const { arg, oneof } = rule;
    if (oneof !== undefined) {
      const chosen = parsed[oneof.name];
      if (chosen !== undefined && chosen !== arg.name) return oneof.conflictError ?? SYNTAX_ERROR;
      parsed[oneof.name] = arg.name;
    }
    if (arg.type === 'pure-token') {
      parsed[arg.name] = true;
      i += 1;
      continue;
    }
    if (i + 1 >= argv.length) return SYNTAX_ERROR;
    const value = convert(arg, argv[i + 1]!);
    if (value === undefined) return arg.invalidError ?? NOT_AN_INTEGER;
    parsed[arg.name] = value;
    i += 2;
  }
  return parsed;
}

function convert(arg: ArgSpec, text: string): string | number | undefined {
  if (arg.type !== 'integer' && arg.type !== 'unix-time') return text;
  const n = parseInteger(text);
  return n === null ? undefined : n;
}

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/**
 * Parses a signed 64-bit decimal integer exactly as Redis's string2ll accepts
 * it: no sign but '-', no leading zeros, no spaces, within int64. Values beyond
 * 2^53 come back rounded, which every caller range-checks anyway.
 */
export function parseInteger(text: string): number | null {
  const len = text.length;
  if (len === 0 || len > 20) return null;
  let i = 0;
  if (text.charCodeAt(0) === 45) {
    if (len === 1) return null;
    i = 1;
  }
  const first = text.charCodeAt(i);
  if (first === 48) return len === i + 1 && i === 0 ? 0 : null;
  let n = 0;
  for (; i < len; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return null;
    n = n * 10 + c;
  }
  if (n > Number.MAX_SAFE_INTEGER) {
    const big = BigInt(text);
    if (big > INT64_MAX || big < INT64_MIN) return null;
    return Number(big);
  }
  return text.charCodeAt(0) === 45 ? -n : n;
}
