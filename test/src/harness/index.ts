export * from './process.js';
export * from './redis.js';
