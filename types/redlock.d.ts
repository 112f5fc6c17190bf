// The part of redlock 4.2.0's API the compatibility tests use (the package ships no types).
declare module 'redlock' {
  import type { EventEmitter } from 'node:events';

  namespace Redlock {
    interface Lock {
      resource: string | string[];
      value: string;
      expiration: number;
      unlock(): Promise<void>;
      extend(ttl: number): Promise<Lock>;
    }
    interface Options {
      driftFactor?: number;
      retryCount?: number;
      retryDelay?: number;
      retryJitter?: number;
    }
  }

  class Redlock extends EventEmitter {
    constructor(clients: unknown[], options?: Redlock.Options);
    lock(resource: string | string[], ttl: number): Promise<Redlock.Lock>;
  }

  export = Redlock;
}
