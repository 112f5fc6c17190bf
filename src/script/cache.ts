/**
 * A node's script cache: the scripts EVALSHA can run here, by SHA1. EVAL
 * adds its script (the least recently used of those go beyond
 * EVAL_SCRIPTS_MAX, as in Redis 7.4); SCRIPT LOAD adds scripts that stay
 * until SCRIPT FLUSH, up to LOADED_SCRIPTS_MAX. Node-local, like Redis's:
 * replicas never need it, since a script's log entry carries its text.
 */
import { sha1Hex } from './sha1.js';

export const EVAL_SCRIPTS_MAX = 500;
export const LOADED_SCRIPTS_MAX = 10_000;

export class ScriptCache {
  /** Added by EVAL, least recently used first. */
  private readonly evaluated = new Map<string, string>();
  /** Added by SCRIPT LOAD. */
  private readonly loaded = new Map<string, string>();

  get size(): number {
    return this.evaluated.size + this.loaded.size;
  }

  /** The script with this SHA1 (any case), or undefined. */
  get(sha1: string): string | undefined {
    const key = sha1.toLowerCase();
    const body = this.loaded.get(key);
    if (body !== undefined) return body;
    const evaluated = this.evaluated.get(key);
    if (evaluated !== undefined) {
      this.evaluated.delete(key);
      this.evaluated.set(key, evaluated);
    }
    return evaluated;
  }

  has(sha1: string): boolean {
    const key = sha1.toLowerCase();
    return this.loaded.has(key) || this.evaluated.has(key);
  }

  /** EVAL's script: cached, evicting the least recently used EVAL script beyond EVAL_SCRIPTS_MAX. */
  addEvaluated(body: string, sha1 = sha1Hex(body)): void {
    if (this.loaded.has(sha1)) return;
    this.evaluated.delete(sha1);
    this.evaluated.set(sha1, body);
    if (this.evaluated.size > EVAL_SCRIPTS_MAX) this.evaluated.delete(this.evaluated.keys().next().value!);
  }

  /** SCRIPT LOAD's script: its SHA1, or null when LOADED_SCRIPTS_MAX scripts are loaded already. */
  load(body: string): string | null {
    const sha1 = sha1Hex(body);
    if (!this.loaded.has(sha1) && this.loaded.size >= LOADED_SCRIPTS_MAX) return null;
    this.evaluated.delete(sha1);
    this.loaded.set(sha1, body);
    return sha1;
  }

  flush(): void {
    this.evaluated.clear();
    this.loaded.clear();
  }
}

const caches = new WeakMap<object, ScriptCache>();

/** The script cache of the node `server` (its ServerInfo) stands for. */
export function scriptCacheOf(server: object): ScriptCache {
  let cache = caches.get(server);
  if (cache === undefined) {
    cache = new ScriptCache();
    caches.set(server, cache);
  }
  return cache;
}
