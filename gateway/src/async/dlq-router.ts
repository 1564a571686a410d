import { Router, type Request } from 'express';
import { GatewayError } from '../core/errors.js';
import { FUNCTION_NAME } from '../http/invoke-request.js';
import type { DeadLetterQueue } from './dlq.js';

const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;

/**
 * The dead-letter API, mounted by the HTTP side at its root behind its authentication:
 *
 *   GET    /hearth/v1/functions/{name}/dlq?limit=&nextToken=   list, oldest first, paged
 *   GET    /hearth/v1/functions/{name}/dlq/{id}                one entry
 *   POST   /hearth/v1/functions/{name}/dlq/{id}/redrive        run it again, remove it
 *   POST   /hearth/v1/functions/{name}/dlq/redrive             run all again, remove them
 *   DELETE /hearth/v1/functions/{name}/dlq/{id}                remove one
 *   DELETE /hearth/v1/functions/{name}/dlq                     purge
 *
 * Errors are thrown as GatewayError for the HTTP side's error handler (Express 5 forwards
 * rejected handlers to it).
 */
export function createDlqRouter(dlq: DeadLetterQueue): Router {
  const router = Router();
  const base = '/hearth/v1/functions/:name/dlq';
  const name = (req: Request) => {
    const functionName = String(req.params.name);
    if (!FUNCTION_NAME.test(functionName))
      throw new GatewayError('InvalidParameterValueException', `not a function name: ${functionName}`);
    return functionName;
  };
  const id = (req: Request) => String(req.params.id);

  router.get(base, async (req, res) => {
    const limit = pageLimit(req.query.limit);
    const after = typeof req.query.nextToken === 'string' ? req.query.nextToken : undefined;
    const page = await dlq.list(name(req), { limit, ...(after ? { after } : {}) });
    res.json({ ...page, size: await dlq.size(name(req)) });
  });
  router.post(`${base}/redrive`, async (req, res) => {
    res.json(await dlq.redriveAll(name(req)));
  });
  router.delete(base, async (req, res) => {
    res.json(await dlq.purge(name(req)));
  });
  router.get(`${base}/:id`, async (req, res) => {
    res.json(await dlq.get(name(req), id(req)));
  });
  router.post(`${base}/:id/redrive`, async (req, res) => {
    res.json(await dlq.redrive(name(req), id(req)));
  });
  router.delete(`${base}/:id`, async (req, res) => {
    await dlq.remove(name(req), id(req));
    res.status(204).end();
  });
  return router;
}

function pageLimit(raw: unknown): number {
  if (raw === undefined) return DEFAULT_PAGE;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw new GatewayError(
      'InvalidParameterValueException',
      `limit must be an integer from 1 to ${MAX_PAGE}`,
    );
  }
  return limit;
}
