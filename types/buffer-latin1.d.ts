// Node's latin1 decoder, the one Buffer#toString('latin1') ends in; @types/node
// omits it. Calling it directly skips the encoding lookup on the hot path.
declare global {
  interface Buffer {
    latin1Slice(start?: number, end?: number): string;
  }
}

export {};
