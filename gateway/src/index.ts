/** The gateway as a library: the app factory, its config, and the pieces tests and embedders reuse. */
export { createGateway, type Gateway, type GatewayOverrides } from './app.js';
export { ConfigError, parseConfig, type GatewayConfig } from './config.js';
export { GatewayError } from './core/errors.js';
export type { Discovery } from './core/discovery.js';
export type { InvokeRequest, InvokeResult, Invoker } from './core/invoker.js';
export { RedisDiscovery } from './discovery/redis.js';
export { StaticDiscovery } from './discovery/static.js';
