import type { FunctionResource } from '@hearth/api';
import type { ServedState } from './mapping.js';

/** A Function as the management API sees it: what was asked for, and what the controller serves. */
export interface FunctionRecord {
  resource: FunctionResource;
  /** What the controller reports serving (registry or status); absent until it has seen the function. */
  served?: ServedState;
  /** Where the Function is declared, for messages (a manifest file, a namespace). */
  source: string;
  /** Whether the management API wrote it, and so may change or delete it. */
  managed: boolean;
}

/**
 * Where the management API keeps Functions: manifest files the process controller watches
 * (`hearth dev`), or Function resources on Kubernetes. Callers serialize changes to one function.
 */
export interface FunctionBackend {
  list(): Promise<FunctionRecord[]>;
  get(name: string): Promise<FunctionRecord | undefined>;
  /** Writes a new Function; ResourceConflictException when the name is taken. */
  create(resource: FunctionResource): Promise<void>;
  /** Replaces a Function the API manages. */
  replace(resource: FunctionResource): Promise<void>;
  delete(name: string): Promise<void>;
}
