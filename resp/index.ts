export * from './decoder.js';
export * from './encoder.js';
