/**
 * ssh_config(5) for ferry's ssh client: parse `~/.ssh/config` (or the file
 * given with `--ssh-config`) and resolve the settings for one host.
 *
 * Owns: the config syntax (keywords with `=` or spaces, quoting, comments,
 * `Host` and `Match` blocks, `Include` with globs), validation of the
 * keywords ferry uses, and OpenSSH's resolution rule: the first value found
 * for a keyword wins, except IdentityFile, which accumulates. Command-line
 * values (user@, :port) beat the file, as in ssh(1).
 *
 * Keywords used: Host, Match, Include, HostName (%h), User, Port,
 * IdentityFile (~, %-tokens, ${ENV}; several), UserKnownHostsFile,
 * ConnectTimeout, IdentityAgent, HostKeyAlias, ServerAliveInterval,
 * ServerAliveCountMax. Every other keyword is accepted and ignored, because
 * the same file is read by ssh(1), which may know newer keywords.
 *
 * Never: connects, prompts, or reads the system-wide /etc/ssh/ssh_config
 * (ferry honours the user's file only). `Match exec`, `localnetwork`,
 * `tagged`, `command`, `sessiontype` and `version` are not evaluated: such a
 * block does not apply (documented in the README).
 *
 * Invariants: a malformed line anywhere in the file (even in a block that
 * does not apply to this host, as in ssh(1)) is SSH_CONFIG_INVALID naming
 * the file and line; resolution of one host never throws for a block that
 * does not apply to it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FerryError } from '../errors';
import { hasWildcard, matchPattern, matchPatternList } from './ssh-pattern';

/** One `Host` line or `Match` line: the condition a block of directives sits under. */
export type SshConfigCondition =
  | { kind: 'host'; patterns: string[]; file: string; line: number }
  | { kind: 'match'; criteria: MatchCriterion[]; file: string; line: number };

export interface MatchCriterion {
  name: string;
  negate: boolean;
  arg?: string;
}

/** A keyword line, with the conditions (outermost first) that must hold for it to apply. */
export interface SshConfigDirective {
  /** Lower-case keyword. */
  keyword: string;
  args: string[];
  file: string;
  line: number;
  when: SshConfigCondition[];
}

/** What the resolver needs to know about this machine (injected for tests). */
export interface SshConfigContext {
  home: string;
  localUser: string;
  localHost: string;
  uid: number;
  env: Record<string, string | undefined>;
}

/** The settings for one host after the config has been applied. */
export interface ResolvedSshHost {
  /** The host as the user wrote it (what `Host` patterns match). */
  alias: string;
  /** What to connect to: HostName with %h expanded, else the alias. */
  hostName: string;
  user: string;
  port: number;
  /** IdentityFile entries in order, expanded to paths. */
  identityFiles: string[];
  /** UserKnownHostsFile entries (undefined: not set; []: `none`). */
  knownHostsFiles?: string[];
  connectTimeoutMs?: number;
  /** IdentityAgent: a socket path, null for `none`, undefined when not set. */
  identityAgent?: string | null;
  hostKeyAlias?: string;
  serverAliveIntervalMs?: number;
  serverAliveCountMax?: number;
}

const MAX_INCLUDE_DEPTH = 16;

const MATCH_CRITERIA_NO_ARG = new Set(['all', 'canonical', 'final']);
const MATCH_CRITERIA_ARG = new Set([
  'exec',
  'localnetwork',
  'host',
  'originalhost',
  'tagged',
  'user',
  'localuser',
  'command',
  'sessiontype',
  'version',
]);

/** %-tokens each keyword accepts (ssh_config(5) "TOKENS"). */
const PATH_TOKENS = 'CdhiklLnpru';
const TOKENS: Record<string, string> = {
  hostname: 'h',
  identityfile: PATH_TOKENS,
  userknownhostsfile: PATH_TOKENS,
  identityagent: PATH_TOKENS,
};

function invalid(why: string, file: string, line: number, cause?: unknown): FerryError {
  return new FerryError('SSH_CONFIG_INVALID', `ssh config rejected: ${why}`, {
    context: line > 0 ? { file, line } : { file },
    hint: 'fix that line; ferry reads the same syntax as ssh(1) (see `man ssh_config`)',
    cause,
  });
}

/**
 * Split a line's arguments like OpenSSH's argv_split: whitespace separates,
 * "double" or 'single' quotes group, a backslash escapes a quote, backslash
 * or space, and an unquoted `#` at the start of an argument ends the line.
 */
export function splitConfigArgs(rest: string, file: string, line: number): string[] {
  const args: string[] = [];
  let i = 0;
  const n = rest.length;
  const isSpace = (c: string) => c === ' ' || c === '\t';
  for (;;) {
    while (i < n && isSpace(rest[i])) i++;
    if (i >= n || rest[i] === '#') break;
    let token = '';
    let quote: string | null = null;
    while (i < n) {
      const c = rest[i];
      const next = rest[i + 1];
      if (quote) {
        if (c === '\\' && (next === quote || next === '\\')) {
          token += next;
          i += 2;
        } else if (c === quote) {
          quote = null;
          i++;
        } else {
          token += c;
          i++;
        }
      } else if (isSpace(c)) {
        break;
      } else if (c === '"' || c === "'") {
        quote = c;
        i++;
      } else if (c === '\\' && next !== undefined && (next === '"' || next === "'" || next === '\\' || next === ' ')) {
        token += next;
        i += 2;
      } else {
        token += c;
        i++;
      }
    }
    if (quote) throw invalid(`unterminated ${quote} quote`, file, line);
    args.push(token);
  }
  return args;
}

/** OpenSSH convtime: `30`, `30s`, `5m`, `1h30m`; returns seconds. */
export function parseTimeSpec(s: string): number | undefined {
  if (!/^(\d+[sSmMhHdDwW]?)+$/.test(s)) return undefined;
  const units: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  let total = 0;
  for (const m of s.matchAll(/(\d+)([sSmMhHdDwW]?)/g)) {
    total += Number(m[1]) * (m[2] ? units[m[2].toLowerCase()] : 1);
  }
  return Number.isSafeInteger(total) ? total : undefined;
}

function checkTokens(keyword: string, arg: string, file: string, line: number): void {
  const allowed = TOKENS[keyword];
  if (allowed === undefined) return;
  for (let i = 0; i < arg.length; i++) {
    if (arg[i] !== '%') continue;
    const t = arg[i + 1];
    if (t === undefined) throw invalid(`${keyword} ends with a lone %`, file, line);
    if (t !== '%' && !allowed.includes(t)) throw invalid(`${keyword} uses unknown token %${t}`, file, line);
    i++;
  }
}

function exactlyOne(keyword: string, args: string[], file: string, line: number): void {
  if (args.length === 0) throw invalid(`${keyword} needs a value`, file, line);
  if (args.length > 1) throw invalid(`${keyword} takes one value, got ${args.length} ("${args.join(' ')}")`, file, line);
}

/** Check the arguments of the keywords ferry uses; others pass through untouched. */
function validate(keyword: string, args: string[], file: string, line: number): void {
  switch (keyword) {
    case 'host':
      if (args.length === 0) throw invalid('Host needs at least one pattern', file, line);
      return;
    case 'include':
      if (args.length === 0) throw invalid('Include needs a file', file, line);
      return;
    case 'hostname':
    case 'user':
    case 'identityfile':
    case 'identityagent':
    case 'hostkeyalias':
      exactlyOne(keyword, args, file, line);
      if (args[0] === '') throw invalid(`${keyword} is empty`, file, line);
      checkTokens(keyword, args[0], file, line);
      return;
    case 'port': {
      exactlyOne(keyword, args, file, line);
      const p = /^\d{1,5}$/.test(args[0]) ? Number(args[0]) : NaN;
      if (!(p >= 1 && p <= 65535)) throw invalid(`Port must be a number from 1 to 65535, got "${args[0]}"`, file, line);
      return;
    }
    case 'connecttimeout':
    case 'serveraliveinterval':
      exactlyOne(keyword, args, file, line);
      if (args[0].toLowerCase() !== 'none' && parseTimeSpec(args[0]) === undefined) {
        throw invalid(`${keyword === 'connecttimeout' ? 'ConnectTimeout' : 'ServerAliveInterval'} must be seconds (like 10 or 1m), got "${args[0]}"`, file, line);
      }
      return;
    case 'serveralivecountmax':
      exactlyOne(keyword, args, file, line);
      if (!/^\d+$/.test(args[0])) throw invalid(`ServerAliveCountMax must be a whole number, got "${args[0]}"`, file, line);
      return;
    case 'userknownhostsfile':
      if (args.length === 0) throw invalid('UserKnownHostsFile needs a file (or none)', file, line);
      for (const a of args) checkTokens(keyword, a, file, line);
      return;
  }
}

function parseMatch(args: string[], file: string, line: number): MatchCriterion[] {
  if (args.length === 0) throw invalid('Match needs criteria (for example `Match host NAME` or `Match all`)', file, line);
  const out: MatchCriterion[] = [];
  for (let i = 0; i < args.length; i++) {
    let name = args[i].toLowerCase();
    const negate = name.startsWith('!');
    if (negate) name = name.slice(1);
    if (MATCH_CRITERIA_NO_ARG.has(name)) {
      out.push({ name, negate });
    } else if (MATCH_CRITERIA_ARG.has(name)) {
      const arg = args[++i];
      if (arg === undefined || arg === '') throw invalid(`Match ${name} needs an argument`, file, line);
      out.push({ name, negate, arg });
    } else {
      throw invalid(`unknown Match criterion "${args[i]}"`, file, line);
    }
  }
  return out;
}

function expandTilde(p: string, home: string): string {
  if (p === '~') return home;
  if (p.startsWith('~/')) return path.join(home, p.slice(2));
  return p;
}

/** Expand an `Include` argument to the files it names (sorted, like glob(3)). */
function globPaths(pattern: string): string[] {
  const parts = pattern.split('/');
  let bases = [parts[0] === '' ? '/' : parts[0]];
  for (let k = 1; k < parts.length; k++) {
    const part = parts[k];
    if (part === '') continue;
    const next: string[] = [];
    for (const base of bases) {
      if (!hasWildcard(part)) {
        next.push(path.join(base, part));
        continue;
      }
      let names: string[];
      try {
        names = fs.readdirSync(base);
      } catch {
        continue;
      }
      for (const name of names.sort()) {
        if (name.startsWith('.') && !part.startsWith('.')) continue;
        if (matchPattern(name, part, true)) next.push(path.join(base, name));
      }
    }
    bases = next;
  }
  return bases.filter((p) => {
    try {
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  });
}

interface ParseState {
  home: string;
  depth: number;
  /** Conditions in force where this file was included (outermost first). */
  outer: SshConfigCondition[];
}

/** Parse config text into directives. `Include` reads further files. Throws SSH_CONFIG_INVALID. */
export function parseSshConfig(text: string, file: string, home: string): SshConfigDirective[] {
  return parseText(text, file, { home, depth: 0, outer: [] });
}

function parseText(text: string, file: string, st: ParseState): SshConfigDirective[] {
  const out: SshConfigDirective[] = [];
  let block: SshConfigCondition | undefined;
  const lines = text.split('\n');
  for (let idx = 0; idx < lines.length; idx++) {
    const lineNo = idx + 1;
    const raw = lines[idx].replace(/\r$/, '');
    const trimmed = raw.replace(/^[ \t]+/, '');
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const km = /^([^ \t=]+)[ \t]*(?:=[ \t]*)?/.exec(trimmed);
    if (!km) throw invalid('a line must start with a keyword', file, lineNo);
    const keywordRaw = km[1];
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(keywordRaw)) throw invalid(`bad keyword "${keywordRaw}"`, file, lineNo);
    const keyword = keywordRaw.toLowerCase();
    const args = splitConfigArgs(trimmed.slice(km[0].length), file, lineNo);
    validate(keyword, args, file, lineNo);
    const when = block ? [...st.outer, block] : [...st.outer];
    if (keyword === 'host') {
      block = { kind: 'host', patterns: args, file, line: lineNo };
    } else if (keyword === 'match') {
      block = { kind: 'match', criteria: parseMatch(args, file, lineNo), file, line: lineNo };
    } else if (keyword === 'include') {
      if (st.depth + 1 > MAX_INCLUDE_DEPTH) throw invalid(`Include nested more than ${MAX_INCLUDE_DEPTH} deep`, file, lineNo);
      for (const arg of args) {
        let p = expandTilde(arg, st.home);
        // ssh_config(5): relative Include paths are relative to ~/.ssh.
        if (!path.isAbsolute(p)) p = path.join(st.home, '.ssh', p);
        for (const f of globPaths(p)) {
          let sub: string;
          try {
            sub = fs.readFileSync(f, 'utf8');
          } catch (e) {
            throw invalid(`cannot read included file ${f}: ${(e as NodeJS.ErrnoException).code ?? e}`, file, lineNo, e);
          }
          out.push(...parseText(sub, f, { home: st.home, depth: st.depth + 1, outer: when }));
        }
      }
    } else {
      out.push({ keyword, args, file, line: lineNo, when });
    }
  }
  return out;
}

/**
 * Read and parse a config file. A missing default file is an empty config;
 * a missing file the user named (`required`) is SSH_CONFIG_INVALID.
 */
export function loadSshConfig(file: string, home: string, required: boolean): SshConfigDirective[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!required && code === 'ENOENT') return [];
    throw invalid(`cannot read ${file}: ${code ?? String(e)}`, file, 0, e);
  }
  return parseSshConfig(text, file, home);
}

interface Accumulated {
  hostName?: { value: string; d: SshConfigDirective };
  user?: string;
  port?: number;
  identityFiles: SshConfigDirective[];
  knownHosts?: SshConfigDirective;
  connectTimeout?: string;
  identityAgent?: SshConfigDirective;
  hostKeyAlias?: string;
  serverAliveInterval?: string;
  serverAliveCountMax?: string;
}

/** HostName's expansion: %h is the alias, %% a percent. */
function expandHostName(value: string, alias: string): string {
  return value.replace(/%([%h])/g, (_m, t: string) => (t === '%' ? '%' : alias));
}

function conditionHolds(
  c: SshConfigCondition,
  alias: string,
  st: Accumulated,
  given: { user?: string },
  ctx: SshConfigContext,
): boolean {
  const host = alias.toLowerCase();
  if (c.kind === 'host') return matchPatternList(host, c.patterns);
  for (const cr of c.criteria) {
    let ok: boolean;
    const list = cr.arg?.split(',') ?? [];
    switch (cr.name) {
      case 'all':
      case 'final': // ferry resolves in one pass, which is the final pass
        ok = true;
        break;
      case 'canonical': // ferry never canonicalizes host names
        ok = false;
        break;
      case 'host':
        ok = matchPatternList(st.hostName ? expandHostName(st.hostName.value, alias) : host, list);
        break;
      case 'originalhost':
        ok = matchPatternList(host, list);
        break;
      case 'user':
        ok = matchPatternList(given.user ?? st.user ?? ctx.localUser, list);
        break;
      case 'localuser':
        ok = matchPatternList(ctx.localUser, list);
        break;
      default:
        // exec, localnetwork, tagged, command, sessiontype, version: not
        // evaluated; the block never applies (even negated).
        return false;
    }
    if (cr.negate) ok = !ok;
    if (!ok) return false;
  }
  return true;
}

/**
 * Resolve the settings for `alias`: walk the directives in file order,
 * applying each whose conditions hold; the first value of each keyword wins.
 * `given` holds command-line values, which win over the file.
 */
export function resolveSshHost(
  directives: readonly SshConfigDirective[],
  alias: string,
  given: { user?: string; port?: number },
  ctx: SshConfigContext,
): ResolvedSshHost {
  const st: Accumulated = { identityFiles: [] };
  // A block's condition is evaluated once, when the first directive under it
  // is reached (as ssh(1) evaluates it at the Host/Match line).
  const verdicts = new Map<SshConfigCondition, boolean>();
  const holds = (c: SshConfigCondition) => {
    let v = verdicts.get(c);
    if (v === undefined) {
      v = conditionHolds(c, alias, st, given, ctx);
      verdicts.set(c, v);
    }
    return v;
  };
  for (const d of directives) {
    if (!d.when.every(holds)) continue;
    const a = d.args[0];
    switch (d.keyword) {
      case 'hostname':
        st.hostName ??= { value: a, d };
        break;
      case 'user':
        st.user ??= a;
        break;
      case 'port':
        st.port ??= Number(a);
        break;
      case 'identityfile':
        st.identityFiles.push(d);
        break;
      case 'userknownhostsfile':
        st.knownHosts ??= d;
        break;
      case 'connecttimeout':
        st.connectTimeout ??= a;
        break;
      case 'identityagent':
        st.identityAgent ??= d;
        break;
      case 'hostkeyalias':
        st.hostKeyAlias ??= a;
        break;
      case 'serveraliveinterval':
        st.serverAliveInterval ??= a;
        break;
      case 'serveralivecountmax':
        st.serverAliveCountMax ??= a;
        break;
    }
  }

  const hostName = st.hostName ? expandHostName(st.hostName.value, alias) : alias;
  const user = given.user ?? st.user ?? ctx.localUser;
  const port = given.port ?? st.port ?? 22;
  const tokens: Record<string, string> = {
    '%': '%',
    d: ctx.home,
    h: hostName,
    i: String(ctx.uid),
    k: st.hostKeyAlias ?? hostName,
    l: ctx.localHost.split('.')[0],
    L: ctx.localHost,
    n: alias,
    p: String(port),
    r: user,
    u: ctx.localUser,
  };
  tokens.C = createHash('sha1').update(`${tokens.l}${hostName}${port}${user}`).digest('hex');
  const expandPath = (arg: string, d: SshConfigDirective): string => {
    let p = expandTilde(arg, ctx.home);
    p = p.replace(/%(.)/g, (_m, t: string) => tokens[t]);
    p = p.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const v = ctx.env[name];
      if (v === undefined) throw invalid(`${d.keyword} uses \${${name}}, which is not set`, d.file, d.line);
      return v;
    });
    return p;
  };

  const resolved: ResolvedSshHost = {
    alias,
    hostName,
    user,
    port,
    identityFiles: st.identityFiles.map((d) => expandPath(d.args[0], d)),
  };
  if (st.knownHosts) {
    const d = st.knownHosts;
    resolved.knownHostsFiles = d.args.length === 1 && d.args[0].toLowerCase() === 'none' ? [] : d.args.map((a) => expandPath(a, d));
  }
  if (st.connectTimeout !== undefined && st.connectTimeout.toLowerCase() !== 'none') {
    resolved.connectTimeoutMs = parseTimeSpec(st.connectTimeout)! * 1000;
  }
  if (st.identityAgent) {
    const d = st.identityAgent;
    const v = d.args[0];
    if (v.toLowerCase() === 'none') resolved.identityAgent = null;
    else if (v === 'SSH_AUTH_SOCK') resolved.identityAgent = ctx.env.SSH_AUTH_SOCK ?? null;
    else if (/^\$[A-Za-z_][A-Za-z0-9_]*$/.test(v)) resolved.identityAgent = ctx.env[v.slice(1)] ?? null;
    else resolved.identityAgent = expandPath(v, d);
  }
  if (st.hostKeyAlias !== undefined) resolved.hostKeyAlias = st.hostKeyAlias;
  if (st.serverAliveInterval !== undefined && st.serverAliveInterval.toLowerCase() !== 'none') {
    resolved.serverAliveIntervalMs = parseTimeSpec(st.serverAliveInterval)! * 1000;
  }
  if (st.serverAliveCountMax !== undefined) resolved.serverAliveCountMax = Number(st.serverAliveCountMax);
  return resolved;
}
