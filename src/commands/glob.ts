/**
 * Redis-style glob matching (stringmatchlen): *, ?, [abc], [^a], [a-z] and
 * backslash escapes. Iterative with backtracking on the last star, so it runs
 * in O(pattern × text) at worst.
 */
export function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] === '*') {
      starP = p++;
      starT = t;
      continue;
    }
    const step = p < pattern.length ? matchOne(pattern, p, text[t]!) : -1;
    if (step > 0) {
      p += step;
      t += 1;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p += 1;
  return p === pattern.length;
}

/** Matches one pattern element at p against ch; returns its length, or -1. */
function matchOne(pattern: string, p: number, ch: string): number {
  const c = pattern[p]!;
  if (c === '?') return 1;
  if (c === '\\' && p + 1 < pattern.length) return pattern[p + 1] === ch ? 2 : -1;
  if (c !== '[') return c === ch ? 1 : -1;
  let i = p + 1;
  const negate = pattern[i] === '^';
  if (negate) i += 1;
  let matched = false;
  while (i < pattern.length && pattern[i] !== ']') {
    if (pattern[i] === '\\' && i + 1 < pattern.length) {
      if (pattern[i + 1] === ch) matched = true;
      i += 2;
    } else if (pattern[i + 1] === '-' && i + 2 < pattern.length && pattern[i + 2] !== ']') {
      let lo = pattern[i]!;
      let hi = pattern[i + 2]!;
      if (lo > hi) [lo, hi] = [hi, lo];
      if (ch >= lo && ch <= hi) matched = true;
      i += 3;
    } else {
      if (pattern[i] === ch) matched = true;
      i += 1;
    }
  }
  if (i >= pattern.length) return c === ch ? 1 : -1;
  return matched !== negate ? i - p + 1 : -1;
}
