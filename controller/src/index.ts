export * from './revision.js';
export * from './pool.js';
export * from './queue.js';
export * from './manifests.js';
export * from './kube-objects.js';
export {
  startProcessController,
  type ProcessController,
  type ProcessControllerOptions,
} from './process-backend.js';
