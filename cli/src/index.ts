export { describeFunction } from './dev.js';
