export * from './lambda.js';
export * from './shim-protocol.js';
export * from './function.js';
export * from './registry.js';
export * from './code-archive.js';
export * from './event-source.js';
