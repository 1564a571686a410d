import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { parseAllDocuments, stringify } from 'yaml';
import {
  API_GROUP,
  API_VERSION,
  RedisKeys,
  validateEventSourceMappingSpec,
  validateFunctionSpec,
  type EventSourceMappingResource,
  type EventSourceMappingStatus,
  type FunctionResource,
} from '@hearth/api';
import type { Discovery } from '../core/discovery.js';
import { GatewayError } from '../core/errors.js';
import type { FunctionBackend, FunctionRecord } from './backend.js';
import type { MappingBackend, MappingRecord } from './event-source-mappings.js';
import { Annotations, MANAGED_BY } from './mapping.js';

const MANIFEST = /\.(ya?ml|json)$/;
const HEADER =
  '# Written by the Hearth management API (CreateFunction, hearth deploy). Changes made here are kept,\n# but the next API call on this function rewrites the file.\n';

/**
 * Process mode: each Function the API creates is a manifest `<name>.yaml` in the directory the
 * process controller watches; what the controller serves comes from the Redis registry (through
 * discovery). Functions declared in other files (written by hand) are listed and read, but left
 * alone: changing them would rewrite a person's file.
 */
export class ManifestDirectoryBackend implements FunctionBackend {
  constructor(
    private readonly dir: string,
    private readonly discovery: Discovery,
  ) {}

  async list(): Promise<FunctionRecord[]> {
    const records = new Map<string, FunctionRecord>();
    const files = (await readdir(this.dir, { withFileTypes: true }))
      .filter((e) => e.isFile() && MANIFEST.test(e.name))
      .map((e) => e.name)
      .sort();
    for (const file of files) {
      const text = await readFile(join(this.dir, file), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      for (const resource of functionsIn(text)) {
        const name = resource.metadata.name;
        if (records.has(name)) continue; // the controller, too, serves the first declaration
        const annotations = (resource.metadata.annotations ?? {}) as Record<string, string>;
        const route = this.discovery.getFunction(name);
        records.set(name, {
          resource,
          ...(route ? { served: route } : {}),
          source: file,
          managed: file === fileOf(name) && annotations[Annotations.managedBy] === MANAGED_BY,
        });
      }
    }
    return [...records.values()];
  }

  async get(name: string): Promise<FunctionRecord | undefined> {
    return (await this.list()).find((record) => record.resource.metadata.name === name);
  }

  async create(resource: FunctionResource): Promise<void> {
    const existing = await this.get(resource.metadata.name);
    if (existing) {
      throw new GatewayError(
        'ResourceConflictException',
        `Function already exist: ${resource.metadata.name} (declared in ${existing.source})`,
      );
    }
    await this.write(resource);
  }

  async replace(resource: FunctionResource): Promise<void> {
    await this.write(resource);
  }

  async delete(name: string): Promise<void> {
    await rm(join(this.dir, fileOf(name)), { force: true });
  }

  /** Written aside under a name the controller ignores, then renamed: it never reads half a file. */
  private async write(resource: FunctionResource): Promise<void> {
    const { namespace: _namespace, ...metadata } = resource.metadata;
    const text =
      HEADER +
      stringify(
        { apiVersion: resource.apiVersion, kind: resource.kind, metadata, spec: resource.spec },
        { lineWidth: 0 },
      );
    const staging = join(this.dir, `.${resource.metadata.name}.${randomBytes(4).toString('hex')}.tmp`);
    await writeFile(staging, text);
    await rename(staging, join(this.dir, fileOf(resource.metadata.name)));
  }
}

function fileOf(name: string): string {
  return `${name}.yaml`;
}

/** The valid Functions of one manifest file; the controller reports the invalid ones. */
function functionsIn(text: string): FunctionResource[] {
  const resources: FunctionResource[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) continue;
    const object = doc.toJS() as Record<string, unknown> | null;
    if (!object || typeof object !== 'object') continue;
    if (object.kind !== 'Function' || object.apiVersion !== `${API_GROUP}/${API_VERSION}`) continue;
    const metadata = (object.metadata ?? {}) as FunctionResource['metadata'];
    if (typeof metadata.name !== 'string') continue;
    const result = validateFunctionSpec(object.spec);
    if (!result.spec) continue;
    resources.push({
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: 'Function',
      metadata,
      spec: result.spec,
    });
  }
  return resources;
}

const MAPPING_HEADER =
  '# Written by the Hearth management API (CreateEventSourceMapping). Changes made here are kept,\n# but the next API call on this mapping rewrites the file.\n';

/**
 * Process mode's EventSourceMappings: the API writes `eventsourcemapping-<uuid>.yaml` beside the
 * Functions, which the process controller reads; its status comes from Redis
 * (`RedisKeys.mappingStatus`). Mappings declared in other files are listed and read, never changed.
 */
export class ManifestMappingBackend implements MappingBackend {
  constructor(
    private readonly dir: string,
    private readonly redis: Redis,
  ) {}

  async list(): Promise<MappingRecord[]> {
    const records = new Map<string, MappingRecord>();
    const files = (await readdir(this.dir, { withFileTypes: true }))
      .filter((e) => e.isFile() && MANIFEST.test(e.name))
      .map((e) => e.name)
      .sort();
    const statuses = await this.redis.hgetall(RedisKeys.mappingStatus);
    for (const file of files) {
      const text = await readFile(join(this.dir, file), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      for (const resource of mappingsIn(text)) {
        const name = resource.metadata.name;
        if (records.has(name)) continue; // the controller, too, serves the first declaration
        const annotations = (resource.metadata.annotations ?? {}) as Record<string, string>;
        const status = parseStatus(statuses[name]);
        records.set(name, {
          resource,
          ...(status ? { status } : {}),
          source: file,
          managed: file === mappingFileOf(name) && annotations[Annotations.managedBy] === MANAGED_BY,
        });
      }
    }
    return [...records.values()];
  }

  async get(name: string): Promise<MappingRecord | undefined> {
    return (await this.list()).find((record) => record.resource.metadata.name === name);
  }

  async create(resource: EventSourceMappingResource): Promise<void> {
    await this.write(resource);
  }

  async replace(resource: EventSourceMappingResource): Promise<void> {
    await this.write(resource);
  }

  async delete(name: string): Promise<void> {
    await rm(join(this.dir, mappingFileOf(name)), { force: true });
  }

  /** Written aside under a name the controller ignores, then renamed: it never reads half a file. */
  private async write(resource: EventSourceMappingResource): Promise<void> {
    const { namespace: _namespace, ...metadata } = resource.metadata;
    const text =
      MAPPING_HEADER +
      stringify(
        { apiVersion: resource.apiVersion, kind: resource.kind, metadata, spec: resource.spec },
        { lineWidth: 0 },
      );
    const staging = join(this.dir, `.${resource.metadata.name}.${randomBytes(4).toString('hex')}.tmp`);
    await writeFile(staging, text);
    await rename(staging, join(this.dir, mappingFileOf(resource.metadata.name)));
  }
}

function mappingFileOf(name: string): string {
  return `eventsourcemapping-${name}.yaml`;
}

/** The valid EventSourceMappings of one manifest file; the controller reports the invalid ones. */
function mappingsIn(text: string): EventSourceMappingResource[] {
  const resources: EventSourceMappingResource[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) continue;
    const object = doc.toJS() as Record<string, unknown> | null;
    if (!object || typeof object !== 'object') continue;
    if (object.kind !== 'EventSourceMapping' || object.apiVersion !== `${API_GROUP}/${API_VERSION}`) continue;
    const metadata = (object.metadata ?? {}) as EventSourceMappingResource['metadata'];
    if (typeof metadata.name !== 'string') continue;
    const result = validateEventSourceMappingSpec(object.spec);
    if (!result.spec) continue;
    resources.push({
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: 'EventSourceMapping',
      metadata,
      spec: result.spec,
    });
  }
  return resources;
}

function parseStatus(json: string | undefined): EventSourceMappingStatus | undefined {
  if (json === undefined) return undefined;
  try {
    return JSON.parse(json) as EventSourceMappingStatus;
  } catch {
    return undefined;
  }
}
