import type { FunctionRoute, InstanceEndpoint } from '@hearth/api';
import type { Discovery } from '../core/discovery.js';

/** Discovery whose contents the caller sets directly: unit tests and embedding. */
export class StaticDiscovery implements Discovery {
  private readonly functions = new Map<string, FunctionRoute>();
  private readonly endpoints = new Map<string, InstanceEndpoint[]>();
  private readonly listeners = new Set<(name: string) => void>();

  setFunction(route: FunctionRoute): void {
    this.functions.set(route.name, route);
    this.emit(route.name);
  }

  removeFunction(name: string): void {
    this.functions.delete(name);
    this.endpoints.delete(name);
    this.emit(name);
  }

  setInstances(name: string, instances: InstanceEndpoint[]): void {
    this.endpoints.set(name, instances);
    this.emit(name);
  }

  getFunction(name: string): FunctionRoute | undefined {
    return this.functions.get(name);
  }

  listFunctions(): FunctionRoute[] {
    return [...this.functions.values()];
  }

  instances(name: string): InstanceEndpoint[] {
    return this.endpoints.get(name) ?? [];
  }

  onChange(listener: (name: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  private emit(name: string) {
    for (const listener of this.listeners) listener(name);
  }
}
