/**
 * OpenSSH-style patterns, as used by `Host` lines and `Match` criteria in
 * ssh_config(5) and by host fields in known_hosts (sshd(8) "PATTERNS").
 *
 * Owns: `*` / `?` wildcard matching and pattern lists with `!` negation.
 * Never: builds a RegExp from user text, touches the filesystem.
 *
 * Invariants: a list matches when at least one plain pattern matches and no
 * negated pattern matches (a negated match always wins, as in OpenSSH's
 * match_pattern_list). Host matching is case-insensitive; file-name matching
 * (for `Include` globs) is not.
 */

/** Whether `s` matches the wildcard `pattern` (`*` any run, `?` one character). */
export function matchPattern(s: string, pattern: string, caseSensitive = false): boolean {
  if (!caseSensitive) {
    s = s.toLowerCase();
    pattern = pattern.toLowerCase();
  }
  // Iterative wildcard match with single-star backtracking: O(len(s) * len(pattern)) worst case.
  let si = 0;
  let pi = 0;
  let starP = -1;
  let starS = 0;
  while (si < s.length) {
    if (pi < pattern.length && (pattern[pi] === '?' || (pattern[pi] !== '*' && pattern[pi] === s[si]))) {
      si++;
      pi++;
    } else if (pi < pattern.length && pattern[pi] === '*') {
      starP = pi++;
      starS = si;
    } else if (starP >= 0) {
      pi = starP + 1;
      si = ++starS;
    } else {
      return false;
    }
  }
  while (pi < pattern.length && pattern[pi] === '*') pi++;
  return pi === pattern.length;
}

/**
 * A list of patterns (each possibly `!`-negated) against `s`: true when some
 * plain pattern matches and no negated one does.
 */
export function matchPatternList(s: string, patterns: readonly string[]): boolean {
  let found = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (matchPattern(s, p.slice(1))) return false;
    } else if (matchPattern(s, p)) {
      found = true;
    }
  }
  return found;
}

/** Whether a string contains wildcard characters. */
export function hasWildcard(s: string): boolean {
  return s.includes('*') || s.includes('?');
}
