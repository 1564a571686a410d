export * from './lambda.js';
export * from './shim-protocol.js';
