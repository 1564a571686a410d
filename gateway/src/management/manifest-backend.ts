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
    for (const { file, text } of await readManifests(this.dir)) {
      for (const resource of resourcesIn<FunctionResource>(text, 'Function', validateFunctionSpec)) {
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

  private async write(resource: FunctionResource): Promise<void> {
    await writeManifest(this.dir, fileOf(resource.metadata.name), HEADER, resource);
  }
}

function fileOf(name: string): string {
  return `${name}.yaml`;
}

/** The manifest files of `dir` by name, with their text; a file gone meanwhile is skipped. */
async function readManifests(dir: string): Promise<{ file: string; text: string }[]> {
  const files = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && MANIFEST.test(e.name))
    .map((e) => e.name)
    .sort();
  const manifests: { file: string; text: string }[] = [];
  for (const file of files) {
    const text = await readFile(join(dir, file), 'utf8').catch(() => undefined);
    if (text !== undefined) manifests.push({ file, text });
  }
  return manifests;
}

/** The valid resources of `kind` in one manifest file; the controller reports the invalid ones. */
function resourcesIn<R extends FunctionResource | EventSourceMappingResource>(
  text: string,
  kind: R['kind'],
  validate: (spec: unknown) => { spec?: R['spec'] },
): R[] {
  const resources: R[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) continue;
    const object = doc.toJS() as Record<string, unknown> | null;
    if (!object || typeof object !== 'object') continue;
    if (object.kind !== kind || object.apiVersion !== `${API_GROUP}/${API_VERSION}`) continue;
    const metadata = (object.metadata ?? {}) as R['metadata'];
    if (typeof metadata.name !== 'string') continue;
    const result = validate(object.spec);
    if (!result.spec) continue;
    resources.push({ apiVersion: `${API_GROUP}/${API_VERSION}`, kind, metadata, spec: result.spec } as R);
  }
  return resources;
}

/** Written aside under a name the controller ignores, then renamed: it never reads half a file. */
async function writeManifest(
  dir: string,
  file: string,
  header: string,
  resource: FunctionResource | EventSourceMappingResource,
): Promise<void> {
  const { namespace: _namespace, ...metadata } = resource.metadata;
  const text =
    header +
    stringify(
      { apiVersion: resource.apiVersion, kind: resource.kind, metadata, spec: resource.spec },
      { lineWidth: 0 },
    );
  const staging = join(dir, `.${resource.metadata.name}.${randomBytes(4).toString('hex')}.tmp`);
  await writeFile(staging, text);
  await rename(staging, join(dir, file));
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
    const manifests = await readManifests(this.dir);
    const statuses = await this.redis.hgetall(RedisKeys.mappingStatus);
    for (const { file, text } of manifests) {
      for (const resource of resourcesIn<EventSourceMappingResource>(
        text,
        'EventSourceMapping',
        validateEventSourceMappingSpec,
      )) {
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

  private async write(resource: EventSourceMappingResource): Promise<void> {
    await writeManifest(this.dir, mappingFileOf(resource.metadata.name), MAPPING_HEADER, resource);
  }
}

function mappingFileOf(name: string): string {
  return `eventsourcemapping-${name}.yaml`;
}

function parseStatus(json: string | undefined): EventSourceMappingStatus | undefined {
  if (json === undefined) return undefined;
  try {
    return JSON.parse(json) as EventSourceMappingStatus;
  } catch {
    return undefined;
  }
}
