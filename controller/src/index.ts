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
export * from './conditions.js';
export * from './crd.js';
// The Kubernetes backend is imported as '@hearth/controller/kube-backend', so that the process
// backend's users never load the Kubernetes client.
