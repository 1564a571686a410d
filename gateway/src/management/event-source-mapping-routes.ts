import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { functionArn } from '@hearth/api';
import { GatewayError } from '../core/errors.js';
import type { FunctionBackend } from './backend.js';
import {
  applyUpdateEventSourceMapping,
  mappingFunctionName,
  parseCreateEventSourceMapping,
  toEventSourceMappingConfiguration,
  type MappingBackend,
  type MappingRecord,
} from './event-source-mappings.js';
import { pageOf, type AccountContext } from './mapping.js';

export interface MappingRoutesOptions {
  /** Registers an authenticated route (the management API's own authentication). */
  route: (method: 'get' | 'post' | 'put' | 'delete', path: string, handler: RequestHandler) => void;
  /** Runs one change after another (shared with the Function routes). */
  serialized: <T>(change: () => Promise<T>) => Promise<T>;
  mappings: MappingBackend;
  functions: FunctionBackend;
  context: AccountContext;
  jsonBody: (res: Response) => unknown;
}

const COLLECTION = '/2015-03-31/event-source-mappings';
const ONE = `${COLLECTION}/:uuid`;

/**
 * Lambda's EventSourceMapping family (Create, Get, List, Update, Delete) over EventSourceMapping
 * resources named by their UUID. Create, Update and Delete answer 202, as Lambda does: the
 * controller starts, changes or stops the mapping afterwards.
 */
export function eventSourceMappingRoutes(options: MappingRoutesOptions): void {
  const { route, serialized, mappings, functions, context, jsonBody } = options;
  const configuration = (record: Pick<MappingRecord, 'resource' | 'status'>) =>
    toEventSourceMappingConfiguration(record, context);

  async function existing(req: Request): Promise<MappingRecord> {
    const record = await mappings.get(String(req.params.uuid));
    if (!record)
      throw new GatewayError('ResourceNotFoundException', 'The resource you requested does not exist.');
    return record;
  }
  async function changeable(req: Request): Promise<MappingRecord> {
    const record = await existing(req);
    if (!record.managed) {
      throw new GatewayError(
        'ResourceConflictException',
        `Event source mapping ${record.resource.metadata.name} is declared in ${record.source}, which the API did not write: change or remove it there.`,
      );
    }
    return record;
  }
  async function functionExists(name: string): Promise<void> {
    if (!(await functions.get(name))) {
      throw new GatewayError(
        'ResourceNotFoundException',
        `Function not found: ${functionArn(name, context.region, context.accountId)}`,
      );
    }
  }

  route('post', COLLECTION, async (_req, res) => {
    const input = parseCreateEventSourceMapping(jsonBody(res));
    const resource = await serialized(async () => {
      await functionExists(input.functionName);
      const created = input.build(randomUUID(), new Date());
      await mappings.create(created);
      return created;
    });
    res.status(202).json(configuration({ resource }));
  });

  route('get', COLLECTION, async (req, res) => {
    const functionName =
      req.query.FunctionName === undefined ? undefined : mappingFunctionName(req.query.FunctionName);
    const records = (await mappings.list())
      .filter((record) => functionName === undefined || record.resource.spec.functionName === functionName)
      .map((record) => ({ name: record.resource.metadata.name, configuration: configuration(record) }))
      .filter(
        (item) =>
          req.query.EventSourceArn === undefined ||
          item.configuration.EventSourceArn === req.query.EventSourceArn,
      );
    const { page, nextMarker } = pageOf(records, req.query.Marker, req.query.MaxItems);
    res.json({
      EventSourceMappings: page.map((item) => item.configuration),
      ...(nextMarker ? { NextMarker: nextMarker } : {}),
    });
  });

  route('get', ONE, async (req, res) => {
    res.json(configuration(await existing(req)));
  });

  route('put', ONE, async (req, res) => {
    const body = jsonBody(res);
    const updated = await serialized(async () => {
      const record = await changeable(req);
      const next = applyUpdateEventSourceMapping(record.resource, body, new Date());
      if (next.spec.functionName !== record.resource.spec.functionName)
        await functionExists(next.spec.functionName);
      await mappings.replace(next);
      // Read back: on Kubernetes the write gave the resource its new generation.
      return (await mappings.get(next.metadata.name)) ?? { resource: next };
    });
    const answer = configuration(updated);
    // As Lambda answers an update: the controller has yet to apply it.
    const settled = ['Enabled', 'Disabled', 'Failed'].includes(answer.State);
    res.status(202).json(settled ? { ...answer, State: 'Updating' } : answer);
  });

  route('delete', ONE, async (req, res) => {
    const record = await serialized(async () => {
      const found = await changeable(req);
      await mappings.delete(found.resource.metadata.name);
      return found;
    });
    res.status(202).json({ ...configuration(record), State: 'Deleting' });
  });
}
