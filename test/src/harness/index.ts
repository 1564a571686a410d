export * from './process.js';
export * from './redis.js';
export * from './nats.js';
export * from './server.js';
export * from './s3.js';
