import type { FunctionRoute, InstanceEndpoint } from '@hearth/api';

/**
 * Where the gateway learns functions and their instances: fed by the controller through Redis in
 * process mode, by Functions and EndpointSlices on Kubernetes, or set directly by tests.
 */
export interface Discovery {
  /** The function's route, or undefined if there is no such function. */
  getFunction(name: string): FunctionRoute | undefined;
  listFunctions(): FunctionRoute[];
  /** The function's instances (every revision; the router filters). */
  instances(name: string): InstanceEndpoint[];
  /** Called with the function's name whenever its route or instances change. */
  onChange(listener: (name: string) => void): () => void;
  start(): Promise<void>;
  stop(): Promise<void>;
}
