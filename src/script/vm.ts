/**
 * The embedded Lua VM (fengari: Lua 5.3 in JavaScript, synchronous, so a
 * script runs inside the state machine's apply) with Redis's scripting
 * environment: KEYS and ARGV, the redis library, Redis's conversions between
 * replies and Lua values, and Redis 7's protections (no globals can be
 * created or read when missing, library tables are read-only).
 *
 * Every replica runs a script when its log entry applies, so a run depends
 * only on the script, its keys and arguments, and the state: math.random is
 * Redis's reseeded rand48, there is no clock, no I/O, no coroutines (which
 * would escape the budget), tostring() of a table numbers it within the run,
 * and a budget of Lua instructions (counted by a hook, not timed) stops a
 * runaway script at the same instruction everywhere. Lua 5.1 behaviour that
 * lock scripts rely on is kept: numbers from Redis are floats printed
 * without ".0" (as Lua 5.1 prints numbers), and unpack is global.
 */
import { createRequire } from 'node:module';
import type { LuaCFunction, LuaDebug, LuaState, LuaString } from 'fengari';
import { errorReply, formatNumberArg, luaNumberToInteger, type ErrorReply, type ScriptReply } from './reply.js';
import { Rand48 } from './random.js';
import { sha1Hex } from './sha1.js';

// fengari reads its configuration once, when first loaded: Lua 5.1's number
// printing ("5", not "5.0") for integral floats.
process.env['FENGARICONF'] = JSON.stringify({ ...parseConf(process.env['FENGARICONF']), LUA_COMPAT_FLOATSTRING: true });
const fengari = createRequire(import.meta.url)('fengari') as typeof import('fengari');
const { lua, lauxlib, lualib } = fengari;
if (!fengari.luaconf.LUA_COMPAT_FLOATSTRING) throw new Error('fengari was loaded before src/script/vm.ts could configure it');

function parseConf(text: string | undefined): Record<string, unknown> {
  return text === undefined || text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
}

/** Lua instructions a script may run (the default budget carried in each script's log entry). */
export const SCRIPT_INSTRUCTIONS_MAX = 1_000_000;
/** Longest string string.rep may build. */
export const SCRIPT_STRING_BYTES_MAX = 64 * 1024 * 1024;
/** Compiled scripts kept per VM (least recently used go first; recompiling gives the same function). */
const COMPILED_MAX = 1000;
/** Nesting depth of a reply converted from a Lua table (Redis's "reached lua stack limit"). */
const REPLY_DEPTH_MAX = 64;
/** The budget hook fires every this many instructions. */
const HOOK_STEP = 1000;
/** The chunk name scripts compile under (Redis's). */
const SCRIPT_SOURCE = '@user_script';
/** Frames the message handler looks through for the script line of an error. */
const ERROR_FRAMES_MAX = 8;
/** tostring() numbers the tables and functions a run creates from here (fengari's object ids). */
const RUN_FIRST_OBJECT_ID = 1 << 24;

/** Runs redis.call's command; an error reply for a failed command (never throws). */
export type CommandHost = (argv: string[]) => ScriptReply;

export interface VmRun {
  /** The script as received: binary string (one char per byte). */
  readonly body: string;
  readonly keys: readonly string[];
  readonly args: readonly string[];
  readonly budget: number;
  readonly host: CommandHost;
}

/**
 * Lua code run once per VM, in the full global table, building the
 * environment scripts see. Arguments: the redis library, Redis's math.random
 * and math.randomseed, and the longest string string.rep may build.
 */
const BOOTSTRAP = `
local redis_lib, random, randomseed, string_bytes_max = ...
local protected = {}
local error, rawset, setmetatable, getmetatable, next, pairs, type = error, rawset, setmetatable, getmetatable, next, pairs, type
local function readonly_error() error("Attempt to modify a readonly table", 2) end
local function guarded_rawset(t, k, v)
  if protected[t] then error("Attempt to modify a readonly table", 2) end
  return rawset(t, k, v)
end
local function copy(t) local c = {} for k, v in pairs(t) do c[k] = v end return c end
local function readonly(t)
  local proxy = setmetatable({}, { __index = t, __newindex = readonly_error, __metatable = false,
    __pairs = function() return next, t, nil end })
  protected[proxy] = true
  return proxy
end
local string_lib = copy(string)
local rep = string.rep
string_lib.rep = function(s, n, sep)
  if type(n) == 'number' and n > 0 and (#tostring(s) + (sep == nil and 0 or #tostring(sep))) * n > string_bytes_max then
    error('resulting string too large', 2)
  end
  return rep(s, n, sep)
end
getmetatable('').__index = string_lib
getmetatable('').__metatable = false
local math_lib = copy(math)
math_lib.random, math_lib.randomseed = random, randomseed
math_lib.pow = function(x, y) return x ^ y end
local env = {}
for _, name in ipairs({ 'assert', 'error', 'getmetatable', 'ipairs', 'next', 'pairs', 'pcall', 'rawequal', 'rawget',
    'rawlen', 'select', 'setmetatable', 'tonumber', 'tostring', 'type', 'xpcall' }) do
  env[name] = _G[name]
end
env.unpack = table.unpack
env._VERSION = _VERSION
env.rawset = guarded_rawset
env.string = readonly(string_lib)
env.table = readonly(copy(table))
env.math = readonly(math_lib)
env.redis = readonly(redis_lib)
env._G = env
protected[env] = true
setmetatable(env, {
  __index = function(_, name) error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2) end,
  __newindex = readonly_error,
  __metatable = false,
})
return env
`;

/** A Lua state with Redis's scripting environment. Synchronous; one script runs at a time. */
export class LuaVm {
  private readonly L: LuaState;
  private readonly envRef: number;
  private readonly compiled = new Map<string, number>();
  private readonly random = new Rand48();
  /** The run in progress (null between runs). */
  private run: VmRun | null = null;
  private used = 0;
  private exceeded = false;
  /** Where the last error was raised: the script line, for Redis's "on @user_script:N." suffix. */
  private errorAt: { source: string; line: number } | null = null;
  private readonly hook = (L: LuaState): void => this.onHook(L);
  private readonly messageHandler: LuaCFunction = (L) => this.onError(L);

  constructor() {
    const L = lauxlib.luaL_newstate();
    this.L = L;
    lauxlib.luaL_requiref(L, '_G', lualib.luaopen_base, 1);
    lauxlib.luaL_requiref(L, 'string', lualib.luaopen_string, 1);
    lauxlib.luaL_requiref(L, 'table', lualib.luaopen_table, 1);
    lauxlib.luaL_requiref(L, 'math', lualib.luaopen_math, 1);
    lua.lua_settop(L, 0);
    if (lauxlib.luaL_loadbuffer(L, bytes(BOOTSTRAP), null, '=raftlock') !== lua.LUA_OK) throw new Error(`Lua bootstrap: ${text(L, -1)}`);
    this.pushRedisLibrary();
    lua.lua_pushcfunction(L, (S) => this.mathRandom(S));
    lua.lua_pushcfunction(L, (S) => this.mathRandomSeed(S));
    lua.lua_pushnumber(L, SCRIPT_STRING_BYTES_MAX);
    if (lua.lua_pcall(L, 4, 1, 0) !== lua.LUA_OK) throw new Error(`Lua bootstrap: ${text(L, -1)}`);
    this.envRef = lauxlib.luaL_ref(L, lua.LUA_REGISTRYINDEX);
  }

  /** Compiles a script (cached); null when it compiles, else Redis's error text. */
  compile(body: string): string | null {
    const outcome = this.compiledRef(body);
    return typeof outcome === 'string' ? outcome : null;
  }

  /** Runs a script to completion (or to its budget) and converts its result. */
  execute(run: VmRun): ScriptReply {
    const L = this.L;
    lua.lua_settop(L, 0);
    const ref = this.compiledRef(run.body);
    if (typeof ref === 'string') return errorReply(ref);
    lua.lua_pushcfunction(L, this.messageHandler);
    lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, ref);
    this.setEnvTable('KEYS', run.keys);
    this.setEnvTable('ARGV', run.args);
    this.run = run;
    this.used = 0;
    this.exceeded = false;
    this.errorAt = null;
    this.random.seed(0);
    resetObjectIds(L);
    lua.lua_sethook(L, this.hook, lua.LUA_MASKCOUNT, HOOK_STEP);
    let reply: ScriptReply;
    try {
      const status = lua.lua_pcall(L, 0, 1, 1);
      reply = status === lua.LUA_OK ? toReply(L, -1, 0) : this.failure(run, status);
    } finally {
      lua.lua_sethook(L, null, 0, 0);
      this.run = null;
      this.setEnvTable('KEYS', null);
      this.setEnvTable('ARGV', null);
      lua.lua_settop(L, 0);
    }
    return reply;
  }

  /** The compiled function's registry reference, or the compile error. */
  private compiledRef(body: string): number | string {
    const cached = this.compiled.get(body);
    if (cached !== undefined) {
      this.compiled.delete(body);
      this.compiled.set(body, cached);
      return cached;
    }
    const L = this.L;
    if (lauxlib.luaL_loadbuffer(L, bytes(body), null, SCRIPT_SOURCE) !== lua.LUA_OK) {
      const message = text(L, -1);
      lua.lua_pop(L, 1);
      return `ERR Error compiling script (new function): ${message}`;
    }
    lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, this.envRef);
    lua.lua_setupvalue(L, -2, 1);
    const ref = lauxlib.luaL_ref(L, lua.LUA_REGISTRYINDEX);
    this.compiled.set(body, ref);
    if (this.compiled.size > COMPILED_MAX) {
      const [oldest, oldRef] = this.compiled.entries().next().value as [string, number];
      this.compiled.delete(oldest);
      lauxlib.luaL_unref(L, lua.LUA_REGISTRYINDEX, oldRef);
    }
    return ref;
  }

  /** Sets KEYS or ARGV in the script environment (raw: scripts cannot). */
  private setEnvTable(name: string, values: readonly string[] | null): void {
    const L = this.L;
    lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, this.envRef);
    lua.lua_pushstring(L, name);
    if (values === null) {
      lua.lua_pushnil(L);
    } else {
      lua.lua_createtable(L, values.length, 0);
      for (let i = 0; i < values.length; i++) {
        lua.lua_pushstring(L, bytes(values[i]!));
        lua.lua_rawseti(L, -2, i + 1);
      }
    }
    lua.lua_rawset(L, -3);
    lua.lua_pop(L, 1);
  }

  /** The error reply of a failed run, with Redis's " script: <sha1>, on @user_script:N." suffix. */
  private failure(run: VmRun, status: number): ErrorReply {
    const L = this.L;
    let message: string;
    if (this.exceeded) {
      message = `ERR Script exceeded its budget of ${run.budget} Lua instructions and was stopped (writes it made stay applied)`;
    } else if (status === lua.LUA_ERRRUN && lua.lua_type(L, -1) === lua.LUA_TTABLE && errField(L, -1) !== null) {
      message = errField(L, -1)!;
    } else if (lua.lua_type(L, -1) === lua.LUA_TSTRING || lua.lua_type(L, -1) === lua.LUA_TNUMBER) {
      message = `ERR ${text(L, -1)}`;
    } else {
      message = `ERR ${latin1(lauxlib.luaL_tolstring(L, -1))}`;
    }
    const at = this.errorAt;
    if (at === null) return errorReply(message);
    return errorReply(`${message} script: ${sha1Hex(run.body)}, on ${at.source}:${at.line}.`);
  }

  /**
   * The message handler: records where the error was raised, as the script
   * line nearest to it (JS functions such as redis.call and error, and the
   * environment's own Lua code, are skipped: the line that called them counts).
   */
  private onError(L: LuaState): number {
    const ar: LuaDebug = new lua.lua_Debug();
    for (let level = 1; level <= ERROR_FRAMES_MAX && lua.lua_getstack(L, level, ar) !== 0; level++) {
      lua.lua_getinfo(L, 'Sl', ar);
      const source = ar.source === null ? '' : latin1(ar.source);
      if (source === SCRIPT_SOURCE && ar.currentline > 0) {
        this.errorAt = { source, line: ar.currentline };
        break;
      }
    }
    return 1;
  }

  /**
   * The budget: every HOOK_STEP instructions. Once spent, the hook fires at
   * every instruction and raises each time, so the script cannot catch the
   * error (with pcall) and keep running.
   */
  private onHook(L: LuaState): void {
    if (!this.exceeded) {
      this.used += HOOK_STEP;
      if (this.used <= this.run!.budget) return;
      this.exceeded = true;
      lua.lua_sethook(L, this.hook, lua.LUA_MASKCOUNT, 1);
    }
    pushErrorTable(L, 'ERR Script exceeded its instruction budget');
    // Hooks are off while one runs, and an error thrown here would leave them
    // off for the message handlers it calls (xpcall's), which could then loop
    // unhooked: turn them back on first.
    (L as unknown as { allowhook: number }).allowhook = 1;
    lua.lua_error(L);
  }

  private pushRedisLibrary(): void {
    const L = this.L;
    lua.lua_createtable(L, 0, 10);
    const fields: [string, LuaCFunction][] = [
      ['call', (S) => this.redisCall(S, true)],
      ['pcall', (S) => this.redisCall(S, false)],
      ['error_reply', redisErrorReply],
      ['status_reply', redisStatusReply],
      ['sha1hex', redisSha1Hex],
      ['log', redisLog],
    ];
    for (const [name, fn] of fields) {
      lua.lua_pushcfunction(L, fn);
      lua.lua_setfield(L, -2, name);
    }
    const levels: [string, number][] = [['LOG_DEBUG', 0], ['LOG_VERBOSE', 1], ['LOG_NOTICE', 2], ['LOG_WARNING', 3]];
    for (const [name, level] of levels) {
      lua.lua_pushnumber(L, level);
      lua.lua_setfield(L, -2, name);
    }
  }

  /** redis.call (raise) and redis.pcall: the arguments as a command, its reply as a Lua value. */
  private redisCall(L: LuaState, raise: boolean): number {
    const argc = lua.lua_gettop(L);
    let failure: string | null = null;
    const argv: string[] = [];
    if (argc === 0) failure = 'ERR Please specify at least one argument for this redis lib call';
    for (let i = 1; i <= argc && failure === null; i++) {
      const type = lua.lua_type(L, i);
      if (type === lua.LUA_TSTRING) argv.push(text(L, i));
      else if (type === lua.LUA_TNUMBER) argv.push(formatNumberArg(lua.lua_tonumber(L, i)));
      else failure = 'ERR Lua redis lib command arguments must be strings or integers';
    }
    const reply = failure !== null ? errorReply(failure) : this.run!.host(argv);
    if (!lua.lua_checkstack(L, 8)) lauxlib.luaL_error(L, 'reached lua stack limit');
    pushReply(L, reply, 0);
    if (raise && isErrorReply(reply)) lua.lua_error(L);
    return 1;
  }

  /** math.random as Redis's Lua 5.1: no arguments [0, 1), (m) [1, m], (m, n) [m, n]. */
  private mathRandom(L: LuaState): number {
    const r = this.random.nextUnit();
    switch (lua.lua_gettop(L)) {
      case 0:
        lua.lua_pushnumber(L, r);
        return 1;
      case 1: {
        const upper = Math.trunc(lauxlib.luaL_checknumber(L, 1));
        if (!(upper >= 1)) lauxlib.luaL_argerror(L, 1, 'interval is empty');
        lua.lua_pushnumber(L, Math.floor(r * upper) + 1);
        return 1;
      }
      case 2: {
        const lower = Math.trunc(lauxlib.luaL_checknumber(L, 1));
        const upper = Math.trunc(lauxlib.luaL_checknumber(L, 2));
        if (!(lower <= upper)) lauxlib.luaL_argerror(L, 2, 'interval is empty');
        lua.lua_pushnumber(L, Math.floor(r * (upper - lower + 1)) + lower);
        return 1;
      }
      default:
        return lauxlib.luaL_error(L, 'wrong number of arguments');
    }
  }

  private mathRandomSeed(L: LuaState): number {
    this.random.seed(Math.trunc(lauxlib.luaL_checknumber(L, 1)));
    return 0;
  }
}

/** Binary string → Lua string bytes. */
function bytes(s: string): LuaString {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Lua string bytes → binary string. */
function latin1(b: LuaString): string {
  if (b.length > 64) return Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** The string (or number, converted) at idx. */
function text(L: LuaState, idx: number): string {
  const b = lua.lua_tostring(L, idx);
  return b === null ? '' : latin1(b);
}

/** fengari numbers tables and closures from one counter; restarting it per run makes tostring() deterministic. */
function resetObjectIds(L: LuaState): void {
  (L as unknown as { l_G: { id_counter: number } }).l_G.id_counter = RUN_FIRST_OBJECT_ID;
}

function isErrorReply(reply: ScriptReply): reply is ErrorReply {
  return typeof reply === 'object' && reply !== null && !Array.isArray(reply) && 'err' in reply;
}

function pushErrorTable(L: LuaState, message: string): void {
  lua.lua_createtable(L, 0, 1);
  lua.lua_pushstring(L, bytes(message));
  lua.lua_setfield(L, -2, 'err');
}

/** Redis → Lua: integer → number, bulk → string, nil → false, array → table, status → {ok=}, error → {err=}. */
function pushReply(L: LuaState, reply: ScriptReply, depth: number): void {
  if (reply === null) return lua.lua_pushboolean(L, false);
  if (typeof reply === 'number') return lua.lua_pushnumber(L, reply);
  if (typeof reply === 'string') {
    lua.lua_pushstring(L, bytes(reply));
    return;
  }
  if (Array.isArray(reply)) {
    if (depth >= REPLY_DEPTH_MAX || !lua.lua_checkstack(L, 4)) lauxlib.luaL_error(L, 'reached lua stack limit');
    lua.lua_createtable(L, reply.length, 0);
    for (let i = 0; i < reply.length; i++) {
      pushReply(L, reply[i]!, depth + 1);
      lua.lua_rawseti(L, -2, i + 1);
    }
    return;
  }
  lua.lua_createtable(L, 0, 1);
  if ('ok' in reply) lua.lua_pushstring(L, bytes(reply.ok));
  else if ('err' in reply) lua.lua_pushstring(L, bytes(reply.err));
  else lua.lua_pushnumber(L, reply.double);
  lua.lua_setfield(L, -2, 'ok' in reply ? 'ok' : 'err' in reply ? 'err' : 'double');
}

/** The string field `name` of the table at idx (raw), or null. */
function stringField(L: LuaState, idx: number, name: string): string | null {
  lua.lua_pushstring(L, name);
  lua.lua_rawget(L, idx < 0 ? idx - 1 : idx);
  const value = lua.lua_type(L, -1) === lua.LUA_TSTRING ? text(L, -1) : null;
  lua.lua_pop(L, 1);
  return value;
}

function errField(L: LuaState, idx: number): string | null {
  return stringField(L, idx, 'err');
}

/**
 * Lua → Redis: number → integer (truncated), string → bulk, true → 1,
 * false/nil → nil, {err=} → error, {ok=} → status, {double=} → double,
 * other tables → arrays up to the first nil.
 */
function toReply(L: LuaState, idx: number, depth: number): ScriptReply {
  const type = lua.lua_type(L, idx);
  if (type === lua.LUA_TSTRING) return text(L, idx);
  if (type === lua.LUA_TNUMBER) return luaNumberToInteger(lua.lua_tonumber(L, idx));
  if (type === lua.LUA_TBOOLEAN) return lua.lua_toboolean(L, idx) ? 1 : null;
  if (type !== lua.LUA_TTABLE) return null;
  const err = errField(L, idx);
  if (err !== null) return errorReply(err);
  const ok = stringField(L, idx, 'ok');
  if (ok !== null) return { ok };
  lua.lua_pushstring(L, 'double');
  lua.lua_rawget(L, idx < 0 ? idx - 1 : idx);
  const double = lua.lua_type(L, -1) === lua.LUA_TNUMBER ? lua.lua_tonumber(L, -1) : null;
  lua.lua_pop(L, 1);
  if (double !== null) return { double };
  if (depth >= REPLY_DEPTH_MAX || !lua.lua_checkstack(L, 4)) return errorReply('ERR reached lua stack limit');
  const array: ScriptReply[] = [];
  const table = idx < 0 ? lua.lua_gettop(L) + idx + 1 : idx;
  for (let i = 1; ; i++) {
    lua.lua_rawgeti(L, table, i);
    if (lua.lua_type(L, -1) === lua.LUA_TNIL) {
      lua.lua_pop(L, 1);
      break;
    }
    array.push(toReply(L, -1, depth + 1));
    lua.lua_pop(L, 1);
  }
  return array;
}

/** redis.error_reply(msg): {err=msg}, with "ERR" added when msg has no error code. */
const redisErrorReply: LuaCFunction = (L) => {
  if (lua.lua_gettop(L) !== 1 || (lua.lua_type(L, 1) !== lua.LUA_TSTRING && lua.lua_type(L, 1) !== lua.LUA_TNUMBER)) {
    pushErrorTable(L, 'ERR wrong number or type of arguments');
    return lua.lua_error(L);
  }
  pushErrorTable(L, withErrorCode(`-${text(L, 1).replace(/^-/, '')}`));
  return 1;
};

/**
 * Redis's rule for an error message given to a script API: "-CODE msg"
 * keeps its code, a message without a space gets "ERR"; the leading '-' and
 * trailing CR/LF go.
 */
function withErrorCode(message: string): string {
  const space = message.indexOf(' ');
  const [code, rest] = space < 0 ? ['ERR', message.slice(1)] : [message.slice(1, space), message.slice(space + 1)];
  return `${code} ${rest.replace(/[\r\n]+$/, '')}`;
}

/** redis.status_reply(msg): {ok=msg}. */
const redisStatusReply: LuaCFunction = (L) => {
  if (lua.lua_gettop(L) !== 1 || (lua.lua_type(L, 1) !== lua.LUA_TSTRING && lua.lua_type(L, 1) !== lua.LUA_TNUMBER)) {
    pushErrorTable(L, 'ERR wrong number or type of arguments');
    return lua.lua_error(L);
  }
  lua.lua_createtable(L, 0, 1);
  lua.lua_pushstring(L, bytes(text(L, 1)));
  lua.lua_setfield(L, -2, 'ok');
  return 1;
};

/** redis.sha1hex(s): the SHA1 of s, in lower-case hex. */
const redisSha1Hex: LuaCFunction = (L) => {
  if (lua.lua_gettop(L) !== 1) {
    pushErrorTable(L, 'ERR wrong number of arguments');
    return lua.lua_error(L);
  }
  lua.lua_pushstring(L, sha1Hex(text(L, 1)));
  return 1;
};

/** redis.log(level, ...): checked like Redis's, then dropped (a replica's log is not the script's output). */
const redisLog: LuaCFunction = (L) => {
  if (lua.lua_gettop(L) < 2) {
    pushErrorTable(L, 'ERR redis.log() requires two arguments or more.');
    return lua.lua_error(L);
  }
  if (lua.lua_type(L, 1) !== lua.LUA_TNUMBER) {
    pushErrorTable(L, 'ERR First argument must be a number');
    return lua.lua_error(L);
  }
  const level = lua.lua_tonumber(L, 1);
  if (!(level >= 0 && level <= 3)) {
    pushErrorTable(L, 'ERR Invalid debug level.');
    return lua.lua_error(L);
  }
  return 0;
};

let shared: LuaVm | undefined;

/** The process's VM (scripts run one at a time; every partition shares it). */
export function luaVm(): LuaVm {
  shared ??= new LuaVm();
  return shared;
}
