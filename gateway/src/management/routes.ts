import { pipeline } from 'node:stream/promises';
import { Router, type Request, type RequestHandler, type Response } from 'express';
import { CodeArchiveLimits, functionArn, type FunctionResource, type FunctionSpec } from '@hearth/api';
import type { Authenticator } from '../auth/authenticate.js';
import type { Discovery } from '../core/discovery.js';
import { GatewayError } from '../core/errors.js';
import { BodyTooLargeError, readBody } from '../http/body.js';
import { parseFunctionReference } from '../http/invoke-request.js';
import { checkZip, zipTooLarge } from '../code-store/zip-check.js';
import { STORED_ZIP, type CodeStore } from '../code-store/store.js';
import type { FunctionBackend, FunctionRecord } from './backend.js';
import { functionDetails } from './details.js';
import type { FunctionLogSource } from './function-logs.js';
import { eventSourceMappingRoutes } from './event-source-mapping-routes.js';
import type { MappingBackend } from './event-source-mappings.js';
import {
  applyEventInvokeConfig,
  applyNewCode,
  applyReservedConcurrency,
  applyUpdateConfiguration,
  hasEventInvokeConfig,
  pageOf,
  parseCode,
  parseCreateFunction,
  removeReservedConcurrency,
  resetEventInvokeConfig,
  tagsOf,
  toEventInvokeConfig,
  toFunctionConfiguration,
  updateConflict,
  type AccountContext,
  type CodeInput,
} from './mapping.js';

export interface ManagementOptions {
  backend: FunctionBackend;
  /** Where EventSourceMappings live; absent: the EventSourceMapping API is not served. */
  mappings?: MappingBackend;
  codeStore: CodeStore;
  /** Base URL the controller fetches stored code from (this gateway, as the controller reaches it). */
  codeBaseUrl: string;
  authenticator: Authenticator;
  /** Where `hearth logs` reads from: the Redis stream (process mode) or the function's pods. */
  logs: FunctionLogSource;
  /** The revision served and the instances serving it, for a function's details. */
  discovery: Pick<Discovery, 'getFunction' | 'instances'>;
  accountConcurrency: number;
  context: AccountContext;
}

/**
 * Lambda's management API (LAMBDA.md section 2) plus what the hearth CLI needs besides:
 *
 *   GET /hearth/v1/code/{sha256}.zip           stored code, for the controller and function pods
 *   GET /hearth/v1/functions/{name}            concurrency, scaling and instances (no Lambda field holds them)
 *   GET /hearth/v1/functions/{name}/logs       the last lines of the function's output
 *
 * Changes are serialized (one at a time per gateway): each reads the Function, decides, writes.
 */
export function managementRoutes(options: ManagementOptions): Router {
  const router = Router();
  const { backend, codeStore, context } = options;
  let changes = Promise.resolve();
  /** Runs one change after another, so a read-decide-write never interleaves with another. */
  function serialized<T>(change: () => Promise<T>): Promise<T> {
    const result = changes.then(change);
    changes = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  const authenticate = authenticateWithBody(options.authenticator);
  const route = (method: 'get' | 'post' | 'put' | 'delete', path: string, handler: RequestHandler) =>
    router[method](path, authenticate, handler);

  const nameOf = (req: Request) => parseFunctionReference(String(req.params.name), undefined).name;
  const notFound = (name: string) =>
    new GatewayError(
      'ResourceNotFoundException',
      `Function not found: ${functionArn(name, context.region, context.accountId)}`,
    );
  async function existing(name: string): Promise<FunctionRecord> {
    const record = await backend.get(name);
    if (!record) throw notFound(name);
    return record;
  }
  async function changeable(name: string): Promise<FunctionRecord> {
    const record = await existing(name);
    if (!record.managed) {
      throw new GatewayError(
        'ResourceConflictException',
        `Function ${name} is declared in ${record.source}, which the API did not write: change or remove it there.`,
      );
    }
    return record;
  }
  /** An update of a function whose last change is still rolling out is refused, as on Lambda. */
  function refuseWhileUpdating(record: FunctionRecord): void {
    const conflict = updateConflict(record.resource, record.served, context);
    if (conflict) throw conflict;
  }
  const configuration = (resource: FunctionResource, record?: FunctionRecord) =>
    toFunctionConfiguration(resource, record?.served, context);

  /** Checks and stores uploaded code; returns the spec's code for it. */
  async function storeCode(code: CodeInput): Promise<{ code: FunctionSpec['code']; size: number }> {
    if ('imageUri' in code) return { code: { image: code.imageUri }, size: 0 };
    await checkZip(code.zipFile);
    const stored = await codeStore.put(code.zipFile);
    return {
      code: {
        archive: { url: `${options.codeBaseUrl}/hearth/v1/code/${stored.sha256}.zip`, sha256: stored.sha256 },
      },
      size: stored.size,
    };
  }

  /** Removes stored code that no Function refers to any more. */
  async function reclaimCode(): Promise<void> {
    const referenced = new Set<string>();
    for (const record of await backend.list()) {
      const sha256 = record.resource.spec.code.archive?.sha256;
      if (sha256) referenced.add(sha256);
    }
    await codeStore.sweep(referenced);
  }

  route('post', '/2015-03-31/functions', async (req, res) => {
    const input = parseCreateFunction(jsonBody(res));
    const resource = await serialized(async () => {
      if (await backend.get(input.name)) {
        throw new GatewayError('ResourceConflictException', `Function already exist: ${input.name}`);
      }
      const code = await storeCode(input.code);
      const created = input.build(code.code, code.size, new Date());
      await backend.create(created);
      return created;
    });
    res.status(201).json(configuration(resource));
  });

  route('get', '/2015-03-31/functions', async (req, res) => {
    const records = (await backend.list()).map((record) => ({ name: record.resource.metadata.name, record }));
    const { page, nextMarker } = pageOf(records, req.query.Marker, req.query.MaxItems);
    res.json({
      Functions: page.map(({ record }) => configuration(record.resource, record)),
      ...(nextMarker ? { NextMarker: nextMarker } : {}),
    });
  });

  route('get', '/2015-03-31/functions/:name', async (req, res) => {
    const record = await existing(nameOf(req));
    const { resource } = record;
    const archive = resource.spec.code.archive;
    const code = resource.spec.code.image
      ? {
          RepositoryType: 'ECR',
          ImageUri: resource.spec.code.image,
          ResolvedImageUri: resource.spec.code.image,
        }
      : { RepositoryType: 'S3', ...(archive ? { Location: archive.url } : {}) };
    const reserved = resource.spec.concurrency.reserved;
    res.json({
      Configuration: configuration(resource, record),
      Code: code,
      ...(reserved !== undefined ? { Concurrency: { ReservedConcurrentExecutions: reserved } } : {}),
      Tags: tagsOf(resource),
    });
  });

  route('get', '/2015-03-31/functions/:name/configuration', async (req, res) => {
    const record = await existing(nameOf(req));
    res.json(configuration(record.resource, record));
  });

  route('delete', '/2015-03-31/functions/:name', async (req, res) => {
    const name = nameOf(req);
    await serialized(async () => {
      await changeable(name);
      await backend.delete(name);
      await reclaimCode();
    });
    res.status(204).end();
  });

  route('put', '/2015-03-31/functions/:name/code', async (req, res) => {
    const name = nameOf(req);
    const code = parseCode(jsonBody(res), 'UpdateFunctionCode');
    const updated = await serialized(async () => {
      const record = await changeable(name);
      refuseWhileUpdating(record);
      const stored = await storeCode(code);
      const next = applyNewCode(record.resource, stored.code, stored.size, new Date());
      await backend.replace(next);
      await reclaimCode();
      return { next, record };
    });
    res.json(configuration(updated.next, updated.record));
  });

  route('put', '/2015-03-31/functions/:name/configuration', async (req, res) => {
    const name = nameOf(req);
    const body = jsonBody(res);
    const updated = await serialized(async () => {
      const record = await changeable(name);
      const next = applyUpdateConfiguration(record.resource, body, new Date());
      refuseWhileUpdating(record);
      await backend.replace(next);
      return { next, record };
    });
    res.json(configuration(updated.next, updated.record));
  });

  route('put', '/2017-10-31/functions/:name/concurrency', async (req, res) => {
    const name = nameOf(req);
    const body = jsonBody(res);
    const next = await serialized(async () => {
      const record = await changeable(name);
      const others = (await backend.list())
        .filter((r) => r.resource.metadata.name !== name)
        .reduce((n, r) => n + (r.resource.spec.concurrency.reserved ?? 0), 0);
      const changed = applyReservedConcurrency(
        record.resource,
        body,
        others,
        options.accountConcurrency,
        new Date(),
      );
      await backend.replace(changed);
      return changed;
    });
    res.json({ ReservedConcurrentExecutions: next.spec.concurrency.reserved });
  });

  route('get', '/2019-09-30/functions/:name/concurrency', async (req, res) => {
    const reserved = (await existing(nameOf(req))).resource.spec.concurrency.reserved;
    res.json(reserved === undefined ? {} : { ReservedConcurrentExecutions: reserved });
  });

  route('delete', '/2017-10-31/functions/:name/concurrency', async (req, res) => {
    const name = nameOf(req);
    await serialized(async () => {
      const record = await changeable(name);
      await backend.replace(removeReservedConcurrency(record.resource, new Date()));
    });
    res.status(204).end();
  });

  const eventInvokeConfig = '/2019-09-25/functions/:name/event-invoke-config';
  for (const [method, merge] of [
    ['put', false],
    ['post', true],
  ] as const) {
    route(method, eventInvokeConfig, async (req, res) => {
      const name = nameOf(req);
      const body = jsonBody(res);
      const next = await serialized(async () => {
        const record = await changeable(name);
        if (merge && !hasEventInvokeConfig(record.resource.spec)) {
          throw new GatewayError(
            'ResourceNotFoundException',
            `The function ${functionArn(name, context.region, context.accountId)} doesn't have an EventInvokeConfig`,
          );
        }
        const changed = applyEventInvokeConfig(record.resource, body, merge, new Date());
        await backend.replace(changed);
        return changed;
      });
      res.json(toEventInvokeConfig(next, context));
    });
  }
  route('get', eventInvokeConfig, async (req, res) => {
    const name = nameOf(req);
    const { resource } = await existing(name);
    if (!hasEventInvokeConfig(resource.spec)) {
      throw new GatewayError(
        'ResourceNotFoundException',
        `The function ${functionArn(name, context.region, context.accountId)} doesn't have an EventInvokeConfig`,
      );
    }
    res.json(toEventInvokeConfig(resource, context));
  });
  route('delete', eventInvokeConfig, async (req, res) => {
    const name = nameOf(req);
    await serialized(async () => {
      const record = await changeable(name);
      await backend.replace(resetEventInvokeConfig(record.resource, new Date()));
    });
    res.status(204).end();
  });

  route('get', '/2016-08-19/account-settings', async (_req, res) => {
    const records = await backend.list();
    const reserved = records.reduce((n, r) => n + (r.resource.spec.concurrency.reserved ?? 0), 0);
    const used = await codeStore.usedBytes();
    res.json({
      AccountLimit: {
        TotalCodeSize: codeStore.quotaBytes,
        CodeSizeUnzipped: CodeArchiveLimits.unzippedBytes,
        CodeSizeZipped: CodeArchiveLimits.zippedBytes,
        ConcurrentExecutions: options.accountConcurrency,
        UnreservedConcurrentExecutions: options.accountConcurrency - reserved,
      },
      AccountUsage: { TotalCodeSize: used, FunctionCount: records.length },
    });
  });

  // Open without a key: function pods fetch their code here (an init container holds no API key),
  // and the path is the zip's sha256, which only those who can read the Function or hold the zip
  // know. Inline code is in the Function itself, so this shows nobody more than that does.
  router.get('/hearth/v1/code/:file', async (req, res) => {
    const sha256 = STORED_ZIP.exec(String(req.params.file))?.[1];
    const zip = sha256 ? await codeStore.openRead(sha256) : undefined;
    if (!zip)
      throw new GatewayError('ResourceNotFoundException', `No stored code ${String(req.params.file)}.`);
    res.setHeader('Content-Type', 'application/zip');
    await pipeline(zip, res);
  });

  route('get', '/hearth/v1/functions/:name', async (req, res) => {
    const name = nameOf(req);
    const { resource } = await existing(name);
    const { discovery } = options;
    res.json(
      functionDetails(name, resource.spec, discovery.getFunction(name)?.revision, discovery.instances(name)),
    );
  });

  route('get', '/hearth/v1/functions/:name/logs', async (req, res) => {
    const name = nameOf(req);
    const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw new GatewayError('InvalidParameterValueException', 'limit must be an integer from 1 to 1000');
    const after = typeof req.query.after === 'string' && req.query.after !== '' ? req.query.after : undefined;
    const page = await options.logs.read(name, { limit, ...(after ? { after } : {}) });
    if (!page) throw notFound(name);
    res.json(page);
  });

  if (options.mappings) {
    eventSourceMappingRoutes({
      route,
      serialized,
      mappings: options.mappings,
      functions: backend,
      context,
      jsonBody,
    });
  }

  return router;
}

/**
 * Authentication for the management routes. Unlike the shared middleware, bodies may be as large
 * as Lambda allows a CreateFunction with a 50 MB zip; the body is kept in `res.locals.body`.
 */
function authenticateWithBody(authenticator: Authenticator): RequestHandler {
  return async (req, res, next) => {
    const principal = authenticator.precheck(
      typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined,
    );
    let body: Buffer;
    try {
      body = await readBody(req, CodeArchiveLimits.requestBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        throw zipTooLarge(
          `Request must be smaller than ${CodeArchiveLimits.requestBytes} bytes for the ${operationOf(req)} operation.`,
        );
      }
      throw error;
    }
    if (!principal) {
      const query = req.originalUrl.indexOf('?');
      await authenticator.verify({
        method: req.method,
        rawPath: query < 0 ? req.originalUrl : req.originalUrl.slice(0, query),
        rawQuery: query < 0 ? '' : req.originalUrl.slice(query + 1),
        headers: req.headers,
        body,
      });
    }
    res.locals.body = body;
    next();
  };
}

function operationOf(req: Request): string {
  return req.method === 'POST'
    ? 'CreateFunction'
    : req.path.endsWith('/code') || req.path.endsWith('/code/')
      ? 'UpdateFunctionCode'
      : req.method;
}

function jsonBody(res: Response): unknown {
  const body = res.locals.body as Buffer;
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new GatewayError(
      'InvalidRequestContentException',
      `Could not parse request body into json: ${(error as Error).message}`,
    );
  }
}
