/**
 * The part of fengari (a Lua 5.3 VM in JavaScript) that src/script uses.
 * Lua strings are byte arrays; names passed as JS strings are encoded as
 * UTF-8 (plain ASCII here).
 */
declare module 'fengari' {
  export type LuaString = Uint8Array;
  /** A Lua thread (lua_State). */
  export interface LuaState {
    readonly __luaState: unique symbol;
  }
  /** A C function: JS taking the state, returning the number of results pushed. */
  export type LuaCFunction = (L: LuaState) => number;
  export type LuaHook = (L: LuaState, ar: LuaDebug) => void;

  export interface LuaDebug {
    what: LuaString | null;
    source: LuaString | null;
    currentline: number;
  }

  export const lua: {
    readonly LUA_OK: number;
    readonly LUA_ERRRUN: number;
    readonly LUA_MULTRET: number;
    readonly LUA_REGISTRYINDEX: number;
    readonly LUA_TNIL: number;
    readonly LUA_TBOOLEAN: number;
    readonly LUA_TNUMBER: number;
    readonly LUA_TSTRING: number;
    readonly LUA_TTABLE: number;
    readonly LUA_MASKCOUNT: number;
    lua_Debug: new () => LuaDebug;
    lua_checkstack(L: LuaState, n: number): boolean;
    lua_createtable(L: LuaState, narr: number, nrec: number): void;
    lua_error(L: LuaState): never;
    lua_getfield(L: LuaState, idx: number, k: string | LuaString): number;
    lua_getglobal(L: LuaState, name: string | LuaString): number;
    lua_getinfo(L: LuaState, what: string, ar: LuaDebug): number;
    lua_getstack(L: LuaState, level: number, ar: LuaDebug): number;
    lua_gettop(L: LuaState): number;
    lua_isinteger(L: LuaState, idx: number): boolean;
    lua_pcall(L: LuaState, nargs: number, nresults: number, msgh: number): number;
    lua_pop(L: LuaState, n: number): void;
    lua_pushboolean(L: LuaState, b: boolean): void;
    lua_pushcfunction(L: LuaState, fn: LuaCFunction): void;
    lua_pushinteger(L: LuaState, n: number): void;
    lua_pushnil(L: LuaState): void;
    lua_pushnumber(L: LuaState, n: number): void;
    lua_pushstring(L: LuaState, s: string | LuaString): LuaString;
    lua_pushvalue(L: LuaState, idx: number): void;
    lua_rawget(L: LuaState, idx: number): number;
    lua_rawgeti(L: LuaState, idx: number, n: number): number;
    lua_rawset(L: LuaState, idx: number): void;
    lua_rawseti(L: LuaState, idx: number, n: number): void;
    lua_setfield(L: LuaState, idx: number, k: string | LuaString): void;
    lua_setglobal(L: LuaState, name: string | LuaString): void;
    lua_sethook(L: LuaState, hook: LuaHook | null, mask: number, count: number): void;
    lua_settop(L: LuaState, idx: number): void;
    lua_setupvalue(L: LuaState, funcindex: number, n: number): LuaString | null;
    lua_toboolean(L: LuaState, idx: number): boolean;
    lua_tonumber(L: LuaState, idx: number): number;
    lua_tostring(L: LuaState, idx: number): LuaString | null;
    lua_type(L: LuaState, idx: number): number;
  };

  export const lauxlib: {
    luaL_argerror(L: LuaState, arg: number, extramsg: string): never;
    luaL_checknumber(L: LuaState, arg: number): number;
    luaL_error(L: LuaState, fmt: string): never;
    luaL_loadbuffer(L: LuaState, buff: LuaString, size: number | null, name: string): number;
    luaL_newstate(): LuaState;
    luaL_ref(L: LuaState, t: number): number;
    luaL_requiref(L: LuaState, modname: string, openf: LuaCFunction, glb: number): void;
    luaL_tolstring(L: LuaState, idx: number): LuaString;
    luaL_unref(L: LuaState, t: number, ref: number): void;
  };

  export const lualib: {
    luaopen_base: LuaCFunction;
    luaopen_math: LuaCFunction;
    luaopen_string: LuaCFunction;
    luaopen_table: LuaCFunction;
  };

  export const luaconf: {
    readonly LUA_COMPAT_FLOATSTRING: boolean;
  };
}
