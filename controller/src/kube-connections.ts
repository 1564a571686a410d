import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent, type AgentOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

type AgentFactory = (
  cluster: { server?: string; proxyUrl?: string } | null,
  options: AgentOptions,
) => HttpAgent;

/**
 * @kubernetes/client-node 1.x builds a new agent for every API request, so every call pays a
 * fresh TCP connection and TLS handshake: about two thirds of the controller's CPU when it
 * reconciles many Functions at once. This keeps one kept-alive agent per distinct set of agent
 * options (the cluster and its credentials), so calls reuse connections.
 */
export function reuseConnections(kc: KubeConfig): KubeConfig {
  const target = kc as unknown as { createAgent: AgentFactory };
  const create = target.createAgent.bind(kc);
  const agents = new Map<string, HttpAgent>();
  target.createAgent = (cluster, options) => {
    // Proxies keep the library's own agents.
    if (cluster?.proxyUrl) return create(cluster, options);
    const key = optionsKey(cluster?.server, options);
    let agent = agents.get(key);
    if (!agent) {
      const settings = { ...options, keepAlive: true, maxSockets: 32, maxFreeSockets: 8 };
      agent = cluster?.server?.startsWith('http:') ? create(cluster, settings) : new HttpsAgent(settings);
      agents.set(key, agent);
    }
    return agent;
  };
  return kc;
}

/** Identifies a cluster and its TLS material without serialising certificates on every call. */
function optionsKey(server: string | undefined, options: AgentOptions): string {
  const hash = createHash('sha256').update(server ?? '');
  for (const field of [
    'ca',
    'cert',
    'key',
    'pfx',
    'passphrase',
    'servername',
    'rejectUnauthorized',
  ] as const) {
    const value = options[field];
    hash.update(`|${field}=`);
    if (value !== undefined) hash.update(Buffer.isBuffer(value) ? value : String(value));
  }
  return hash.digest('hex');
}
