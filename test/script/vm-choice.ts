/**
 * Measures the two Lua VMs raftlock could embed, on the work EVAL does: one
 * VM created once, a script compiled once and cached, then per call KEYS and
 * ARGV set and the cached function run, crossing into JS for every
 * redis.call. The script is redlock's release script (GET, then DEL when the
 * value matches); the keyspace is a JS Map.
 *
 * Reproduce: npm install --no-save wasmoon@1.16.0 && node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs test/script/vm-choice.ts
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/* eslint-disable @typescript-eslint/no-explicit-any */

const SCRIPT = `
  local count = 0
  for i, key in ipairs(KEYS) do
    if redis.call("get", key) == ARGV[1] then
      redis.pcall("del", key)
      count = count + 1
    end
  end
  return count
`;
const CALLS = 200_000;

/** Runs the same command subset both VMs call into. */
function runCommand(store: Map<string, string>, args: string[]): string | number | null {
  const name = args[0]!.toLowerCase();
  if (name === 'get') return store.get(args[1]!) ?? null;
  if (name === 'del') return store.delete(args[1]!) ? 1 : 0;
  throw new Error(`unknown command ${name}`);
}

function fengariBench(): number {
  const { lua, lauxlib, lualib } = require('fengari');
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  const store = new Map<string, string>();
  const bytes = (s: string): Uint8Array => Buffer.from(s, 'latin1');
  const text = (i: number): string => Buffer.from(lua.lua_tolstring(L, i)).toString('latin1');
  const call = (): number => {
    const args: string[] = [];
    for (let i = 1; i <= lua.lua_gettop(L); i++) args.push(text(i));
    const reply = runCommand(store, args);
    if (reply === null) lua.lua_pushboolean(L, false);
    else if (typeof reply === 'number') lua.lua_pushinteger(L, reply);
    else lua.lua_pushstring(L, bytes(reply));
    return 1;
  };
  lua.lua_newtable(L);
  lua.lua_pushcfunction(L, call);
  lua.lua_setfield(L, -2, bytes('call'));
  lua.lua_pushcfunction(L, call);
  lua.lua_setfield(L, -2, bytes('pcall'));
  lua.lua_setglobal(L, bytes('redis'));
  if (lauxlib.luaL_loadbuffer(L, bytes(SCRIPT), null, bytes('@user_script')) !== 0) throw new Error('compile');
  const ref = lauxlib.luaL_ref(L, lua.LUA_REGISTRYINDEX);
  const started = performance.now();
  for (let n = 0; n < CALLS; n++) {
    store.set('lock', n % 2 === 0 ? 'me' : 'other');
    lua.lua_createtable(L, 1, 0);
    lua.lua_pushstring(L, bytes('lock'));
    lua.lua_rawseti(L, -2, 1);
    lua.lua_setglobal(L, bytes('KEYS'));
    lua.lua_createtable(L, 1, 0);
    lua.lua_pushstring(L, bytes('me'));
    lua.lua_rawseti(L, -2, 1);
    lua.lua_setglobal(L, bytes('ARGV'));
    lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, ref);
    if (lua.lua_pcall(L, 0, 1, 0) !== 0) throw new Error(text(-1));
    const result = lua.lua_tointeger(L, -1);
    lua.lua_pop(L, 1);
    if (result !== (n % 2 === 0 ? 1 : 0)) throw new Error('wrong result');
  }
  return ((performance.now() - started) * 1000) / CALLS;
}

async function wasmoonBench(): Promise<number> {
  const { LuaFactory } = await import('wasmoon' as string);
  const engine = await new LuaFactory().createEngine({ openStandardLibs: true, injectObjects: false });
  const api: any = engine.global.lua;
  const L: number = engine.global.address;
  const store = new Map<string, string>();
  const call = api.module.addFunction((state: number) => {
    const args: string[] = [];
    for (let i = 1; i <= api.lua_gettop(state); i++) args.push(api.lua_tolstring(state, i, null));
    const reply = runCommand(store, args);
    if (reply === null) api.lua_pushboolean(state, 0);
    else if (typeof reply === 'number') api.lua_pushinteger(state, BigInt(reply));
    else api.lua_pushstring(state, reply);
    return 1;
  }, 'ii');
  api.lua_createtable(L, 0, 2);
  api.lua_pushcclosure(L, call, 0);
  api.lua_setfield(L, -2, 'call');
  api.lua_pushcclosure(L, call, 0);
  api.lua_setfield(L, -2, 'pcall');
  api.lua_setglobal(L, 'redis');
  if (api.luaL_loadstring(L, SCRIPT) !== 0) throw new Error('compile');
  const ref = api.luaL_ref(L, api.LUA_REGISTRYINDEX ?? -1001000);
  const registry = -1001000;
  const started = performance.now();
  for (let n = 0; n < CALLS; n++) {
    store.set('lock', n % 2 === 0 ? 'me' : 'other');
    api.lua_createtable(L, 1, 0);
    api.lua_pushstring(L, 'lock');
    api.lua_rawseti(L, -2, 1n);
    api.lua_setglobal(L, 'KEYS');
    api.lua_createtable(L, 1, 0);
    api.lua_pushstring(L, 'me');
    api.lua_rawseti(L, -2, 1n);
    api.lua_setglobal(L, 'ARGV');
    api.lua_rawgeti(L, registry, BigInt(ref));
    if (api.lua_pcallk(L, 0, 1, 0, 0, null) !== 0) throw new Error(api.lua_tolstring(L, -1, null));
    const result = Number(api.lua_tointegerx(L, -1, null));
    api.lua_settop(L, -2);
    if (result !== (n % 2 === 0 ? 1 : 0)) throw new Error('wrong result');
  }
  return ((performance.now() - started) * 1000) / CALLS;
}

const fengari = fengariBench();
console.log(`fengari 0.1.5: ${fengari.toFixed(2)} us per EVAL (${CALLS} calls, 1.5 redis.call each on average)`);
try {
  const wasmoon = await wasmoonBench();
  console.log(`wasmoon 1.16.0: ${wasmoon.toFixed(2)} us per EVAL (${CALLS} calls, 1.5 redis.call each on average)`);
} catch (error) {
  console.log(`wasmoon: not measured (${(error as Error).message}); npm install --no-save wasmoon@1.16.0 first`);
}
