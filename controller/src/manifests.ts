import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import {
  API_GROUP,
  API_VERSION,
  validateFunctionSpec,
  type EventSourceMappingResource,
  type FunctionResource,
} from '@hearth/api';
import { checkMappingSpec } from './event-sources/supervisor.js';

/** A manifest that cannot be used, with the file and the field that is wrong. */
export interface ManifestProblem {
  file: string;
  /** What the document declares; Function unless it says otherwise. */
  kind?: ManifestKind;
  /** The resource's name when the manifest got that far. */
  name?: string;
  path: string;
  message: string;
}

export interface ManifestSet {
  functions: Map<string, { resource: FunctionResource; file: string }>;
  mappings: Map<string, { resource: EventSourceMappingResource; file: string }>;
  problems: ManifestProblem[];
}

export type ManifestKind = 'Function' | 'EventSourceMapping';
const KINDS: readonly string[] = ['Function', 'EventSourceMapping'] satisfies ManifestKind[];

/** Kubernetes object names as Lambda accepts them too: DNS-1123 labels of at most 64 characters. */
const NAME = /^[a-z0-9]([-a-z0-9]{0,62}[a-z0-9])?$/;
const EXTENSIONS = /\.(ya?ml|json)$/;

export function describeProblem(p: ManifestProblem): string {
  return `${p.file}${p.name ? ` (${p.kind ?? 'Function'} ${p.name})` : ''}: ${p.path} ${p.message}`;
}

/**
 * Parses the Functions and EventSourceMappings in one file's text: the same multi-document YAML
 * one would `kubectl apply`. Documents of other kinds are skipped; bad ones become problems naming
 * the field.
 */
export function parseManifests(
  file: string,
  text: string,
): { resources: FunctionResource[]; mappings: EventSourceMappingResource[]; problems: ManifestProblem[] } {
  const resources: FunctionResource[] = [];
  const mappings: EventSourceMappingResource[] = [];
  const problems: ManifestProblem[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      problems.push({ file, path: '(yaml)', message: doc.errors[0]!.message });
      continue;
    }
    const object = doc.toJS() as Record<string, unknown> | null;
    if (object === null || typeof object !== 'object') continue;
    if (!KINDS.includes(object.kind as string) || object.apiVersion !== `${API_GROUP}/${API_VERSION}`)
      continue;
    const kind = object.kind as ManifestKind;
    const metadata = (object.metadata ?? {}) as Record<string, unknown>;
    const name = metadata.name;
    if (typeof name !== 'string' || !NAME.test(name)) {
      problems.push({
        file,
        kind,
        path: 'metadata.name',
        message: 'must be a lower-case DNS label of at most 64 characters',
      });
      continue;
    }
    const namespace = typeof metadata.namespace === 'string' ? metadata.namespace : 'default';
    if (kind === 'EventSourceMapping') {
      const checked = checkMappingSpec(object.spec);
      if (!checked.spec) {
        for (const p of checked.problems) problems.push({ file, kind, name, ...p });
        continue;
      }
      mappings.push({
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind,
        metadata: { ...metadata, name, namespace },
        spec: checked.spec,
      });
      continue;
    }
    const result = validateFunctionSpec(object.spec);
    if (!result.spec) {
      for (const p of result.problems) problems.push({ file, name, ...p });
      continue;
    }
    resources.push({
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: 'Function',
      metadata: { ...metadata, name, namespace },
      spec: result.spec,
    });
  }
  return { resources, mappings, problems };
}

/** Reads every `*.yaml`, `*.yml` and `*.json` file directly in `dir`. */
export async function loadManifests(dir: string): Promise<ManifestSet> {
  const set: ManifestSet = { functions: new Map(), mappings: new Map(), problems: [] };
  const files = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && EXTENSIONS.test(e.name))
    .map((e) => e.name)
    .sort();
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(join(dir, file), 'utf8');
    } catch {
      continue; // removed between listing and reading: the next scan sees it gone
    }
    const { resources, mappings, problems } = parseManifests(file, text);
    set.problems.push(...problems);
    for (const mapping of mappings) {
      const other = set.mappings.get(mapping.metadata.name);
      if (other) {
        set.problems.push({
          file,
          kind: 'EventSourceMapping',
          name: mapping.metadata.name,
          path: 'metadata.name',
          message: `is also declared in ${other.file}`,
        });
        continue;
      }
      set.mappings.set(mapping.metadata.name, { resource: mapping, file });
    }
    for (const resource of resources) {
      const other = set.functions.get(resource.metadata.name);
      if (other) {
        set.problems.push({
          file,
          name: resource.metadata.name,
          path: 'metadata.name',
          message: `is also declared in ${other.file}`,
        });
        continue;
      }
      set.functions.set(resource.metadata.name, { resource, file });
    }
  }
  return set;
}
