export * from './process.js';
export * from './redis.js';
export * from './nats.js';
