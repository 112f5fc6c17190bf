/**
 * The well-known lock scripts, byte for byte as their clients send them,
 * with the native run of each (src/script/native.ts). A script is
 * recognised by its exact text (its SHA1 is checked when this module
 * loads); any other text, even one differing only in whitespace, runs in
 * the Lua VM.
 */
import * as native from './native.js';
import { sha1Hex } from './sha1.js';

export interface KnownScript {
  /** What the script does, and for which client. */
  readonly name: string;
  /** Where its text comes from. */
  readonly source: string;
  readonly sha1: string;
  /** The exact text (binary string). */
  readonly body: string;
  readonly native: native.NativeScript;
  /** Whether it acts on every key in KEYS (else on KEYS[1] only). */
  readonly multiKey: boolean;
}

function known(name: string, source: string, sha1: string, body: string, run: native.NativeScript, multiKey = false): KnownScript {
  if (sha1Hex(body) !== sha1) throw new Error(`known script '${name}': text does not hash to ${sha1}`);
  return { name, source, sha1, body, native: run, multiKey };
}

/** Every script run natively. */
export const KNOWN_SCRIPTS: readonly KnownScript[] = [
  known(
    'redlock v4 acquire',
    'npm redlock@4.2.0, redlock.js (lockScript)',
    'e5a322e2634ef59a516e8ea150cb085afafee684',
    "\n\t-- Return 0 if an entry already exists.\n\tfor i, key in ipairs(KEYS) do\n\t\tif redis.call(\"exists\", key) == 1 then\n\t\t\treturn 0\n\t\tend\n\tend\n\n\t-- Create an entry for each provided key.\n\tfor i, key in ipairs(KEYS) do\n\t\tredis.call(\"set\", key, ARGV[1], \"PX\", ARGV[2])\n\tend\n\n\t-- Return the number of entries added.\n\treturn #KEYS\n",
    native.redlockAcquire,
    true,
  ),
  known(
    'redlock v4 extend',
    'npm redlock@4.2.0, redlock.js (extendScript)',
    'ce46f80993d5dac20dd066eb301a4e37994bdbed',
    "\n\t-- Return 0 if an entry exists with a *different* lock value.\n\tfor i, key in ipairs(KEYS) do\n\t\tif redis.call(\"get\", key) ~= ARGV[1] then\n\t\t\treturn 0\n\t\tend\n\tend\n\n\t-- Update the entry for each provided key.\n\tfor i, key in ipairs(KEYS) do\n\t\tredis.call(\"set\", key, ARGV[1], \"PX\", ARGV[2])\n\tend\n\n\t-- Return the number of entries updated.\n\treturn #KEYS\n",
    native.redlockExtend,
    true,
  ),
  known(
    'redlock v4 release',
    'npm redlock@4.2.0, redlock.js (unlockScript)',
    '0f0f23b9048b36752b5be114f357ba083449f908',
    "\n\tlocal count = 0\n\tfor i, key in ipairs(KEYS) do\n\t\t-- Only remove entries for *this* lock value.\n\t\tif redis.call(\"get\", key) == ARGV[1] then\n\t\t\tredis.pcall(\"del\", key)\n\t\t\tcount = count + 1\n\t\tend\n\tend\n\n\t-- Return the number of entries removed.\n\treturn count\n",
    native.redlockRelease,
    true,
  ),
  known(
    'redlock v5 acquire',
    'npm redlock@5.0.0-beta.2, dist (ACQUIRE_SCRIPT)',
    '96da70f7716f27d278a5218544df37fd8b0a5e4c',
    "\n  -- Return 0 if an entry already exists.\n  for i, key in ipairs(KEYS) do\n    if redis.call(\"exists\", key) == 1 then\n      return 0\n    end\n  end\n\n  -- Create an entry for each provided key.\n  for i, key in ipairs(KEYS) do\n    redis.call(\"set\", key, ARGV[1], \"PX\", ARGV[2])\n  end\n\n  -- Return the number of entries added.\n  return #KEYS\n",
    native.redlockAcquire,
    true,
  ),
  known(
    'redlock v5 extend',
    'npm redlock@5.0.0-beta.2, dist (EXTEND_SCRIPT)',
    'aed6f382e410db8ba7926d4e5e9aab410bf2a78a',
    "\n  -- Return 0 if an entry exists with a *different* lock value.\n  for i, key in ipairs(KEYS) do\n    if redis.call(\"get\", key) ~= ARGV[1] then\n      return 0\n    end\n  end\n\n  -- Update the entry for each provided key.\n  for i, key in ipairs(KEYS) do\n    redis.call(\"set\", key, ARGV[1], \"PX\", ARGV[2])\n  end\n\n  -- Return the number of entries updated.\n  return #KEYS\n",
    native.redlockExtend,
    true,
  ),
  known(
    'redlock v5 release',
    'npm redlock@5.0.0-beta.2, dist (RELEASE_SCRIPT)',
    'e4612211c9f8f51c257e26e056b0a654b3187242',
    "\n  local count = 0\n  for i, key in ipairs(KEYS) do\n    -- Only remove entries for *this* lock value.\n    if redis.call(\"get\", key) == ARGV[1] then\n      redis.pcall(\"del\", key)\n      count = count + 1\n    end\n  end\n\n  -- Return the number of entries removed.\n  return count\n",
    native.redlockRelease,
    true,
  ),
  known(
    'redsync delete',
    'go-redsync/redsync v4, mutex.go (deleteScript, before scripts.go)',
    '00583931c4e4d483f6233879c133c71ed5393f9d',
    "\n\tif redis.call(\"GET\", KEYS[1]) == ARGV[1] then\n\t\treturn redis.call(\"DEL\", KEYS[1])\n\telse\n\t\treturn 0\n\tend\n",
    native.deleteIfHeld,
  ),
  known(
    'redsync delete (-1 when missing)',
    'go-redsync/redsync v4, scripts.go (deleteScript)',
    'e950836ed1e694540c503ef9972b8de518044d3b',
    "\n\tlocal val = redis.call(\"GET\", KEYS[1])\n\tif val == ARGV[1] then\n\t\treturn redis.call(\"DEL\", KEYS[1])\n\telseif val == false then\n\t\treturn -1\n\telse\n\t\treturn 0\n\tend\n",
    native.deleteIfHeldOrMissing,
  ),
  known(
    'redsync touch',
    'go-redsync/redsync v4, mutex.go and scripts.go (touchScript)',
    'd75bb8b5bd13532ddedd17762e772346e39b321e',
    "\n\tif redis.call(\"GET\", KEYS[1]) == ARGV[1] then\n\t\treturn redis.call(\"PEXPIRE\", KEYS[1], ARGV[2])\n\telse\n\t\treturn 0\n\tend\n",
    native.pexpireIfHeld,
  ),
  known(
    'redsync touch with SET NX',
    'go-redsync/redsync v4, scripts.go (touchWithSetNXScript)',
    'b6b55c439e02c6f52ffb8be7ec8c0d0ac816ea79',
    "\n\tif redis.call(\"GET\", KEYS[1]) == ARGV[1] then\n\t\treturn redis.call(\"PEXPIRE\", KEYS[1], ARGV[2])\n\telseif redis.call(\"SET\", KEYS[1], ARGV[1], \"PX\", ARGV[2], \"NX\") then\n\t\treturn 1\n\telse\n\t\treturn 0\n\tend\n",
    native.pexpireIfHeldOrSetNx,
  ),
  known(
    'redis-py Lock release',
    'redis-py 4.3.4 (Debian python3-redis), redis/lock.py (LUA_RELEASE_SCRIPT)',
    'c3f8721cbb97f72bc19e972846bd7aaf91901658',
    "\n        local token = redis.call('get', KEYS[1])\n        if not token or token ~= ARGV[1] then\n            return 0\n        end\n        redis.call('del', KEYS[1])\n        return 1\n    ",
    native.redisPyRelease,
  ),
  known(
    'redis-py Lock extend',
    'redis-py 4.3.4 (Debian python3-redis), redis/lock.py (LUA_EXTEND_SCRIPT)',
    'a4e8783852e6b949f9ef3a97212805108459a890',
    "\n        local token = redis.call('get', KEYS[1])\n        if not token or token ~= ARGV[1] then\n            return 0\n        end\n        local expiration = redis.call('pttl', KEYS[1])\n        if not expiration then\n            expiration = 0\n        end\n        if expiration < 0 then\n            return 0\n        end\n\n        local newttl = ARGV[2]\n        if ARGV[3] == \"0\" then\n            newttl = ARGV[2] + expiration\n        end\n        redis.call('pexpire', KEYS[1], newttl)\n        return 1\n    ",
    native.redisPyExtend,
  ),
  known(
    'redis-py Lock reacquire',
    'redis-py 4.3.4 (Debian python3-redis), redis/lock.py (LUA_REACQUIRE_SCRIPT)',
    '1cac51482acf5858da00f6d685d68f886cd6b6b2',
    "\n        local token = redis.call('get', KEYS[1])\n        if not token or token ~= ARGV[1] then\n            return 0\n        end\n        redis.call('pexpire', KEYS[1], ARGV[2])\n        return 1\n    ",
    native.redisPyReacquire,
  ),
  known(
    'RedLock.net unlock',
    'samcook/RedLock.net, RedLockNet.SERedis Lua/Unlock.lua (LF line ends)',
    '18b2a577dbe847b16bebde190d69a1613d68e60e',
    "if redis.call('get', KEYS[1]) == ARGV[1] then\n\treturn redis.call('del', KEYS[1])\nelse\n\treturn 0\nend",
    native.deleteIfHeld,
  ),
  known(
    'RedLock.net extend',
    'samcook/RedLock.net, RedLockNet.SERedis Lua/Extend.lua (LF line ends)',
    '9f614a785a5f9ae8c6396c6b4bf94d2087342603',
    "local currentVal = redis.call('get', KEYS[1])\nif (currentVal == false) then\n\treturn redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 or 0\nelseif (currentVal == ARGV[1]) then\n\treturn redis.call('pexpire', KEYS[1], ARGV[2])\nelse\n\treturn -1\nend",
    native.redLockNetExtend,
  ),
  known(
    'pottery Redlock acquired',
    'brainix/pottery, pottery/redlock.py (_acquired_script)',
    'f5f7bd3a3aa4a63c507c1155c5ea1219b350d992',
    "\n                if redis.call('get', KEYS[1]) == ARGV[1] then\n                    local pttl = redis.call('pttl', KEYS[1])\n                    return (pttl > 0) and pttl or 0\n                else\n                    return 0\n                end\n            ",
    native.potteryAcquired,
  ),
  known(
    'pottery Redlock extend',
    'brainix/pottery, pottery/redlock.py (_extend_script)',
    'ba015a80261b616e7a62d35df0b8e3edbe6c9414',
    "\n                if redis.call('get', KEYS[1]) == ARGV[1] then\n                    return redis.call('pexpire', KEYS[1], ARGV[2])\n                else\n                    return 0\n                end\n            ",
    native.pexpireIfHeld,
  ),
  known(
    'pottery Redlock release',
    'brainix/pottery, pottery/redlock.py (_release_script)',
    'a4aada0b36710970eedaaaeec4a6b7d8c78c4f80',
    "\n                if redis.call('get', KEYS[1]) == ARGV[1] then\n                    return redis.call('del', KEYS[1])\n                else\n                    return 0\n                end\n            ",
    native.deleteIfHeld,
  ),
];

const BY_BODY = new Map(KNOWN_SCRIPTS.map((script) => [script.body, script]));

/** The known script with exactly this text, if any. */
export function knownScript(body: string): KnownScript | undefined {
  return BY_BODY.get(body);
}
