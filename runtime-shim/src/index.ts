export { createShim, parseInvokeRequest, invokeResponseHeaders, type Shim, type ShimOptions } from './app.js';
export { parseConfig, ConfigError, type ShimConfig } from './config.js';
export { LambdaError } from './errors.js';
export type { InvokeRequest, InvokeResult } from './runtime-slot.js';
