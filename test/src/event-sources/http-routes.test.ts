import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { RedisKeys, type PushMapping } from '@hearth/api';
import { startRedis, type RedisServer } from '../harness/index.js';
import { ACCESS_KEY, API_KEY, GatewayFixture, type RunningGateway } from '../gateway/fixture.js';

const EXPRESS_APP = fileURLToPath(new URL('../../fixtures/express-app/', import.meta.url));
const PIXEL = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
  'base64',
);

/** A handler written for function URLs: it says which route and path part it was called with. */
const ROUTE_ECHO = `
export const handler = async (event) => {
  if (event.rawQueryString.includes('fail')) throw new Error('failed on purpose');
  if (event.rawQueryString.includes('plain')) return { hello: 'world' };
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ routeKey: event.routeKey, proxy: event.pathParameters?.proxy ?? null, apiId: event.requestContext.apiId }),
  };
};
`;

const mapping = (
  name: string,
  functionName: string,
  http: PushMapping['http'],
  enabled = true,
): PushMapping => ({
  name,
  namespace: 'default',
  functionName,
  enabled,
  http: http!,
});

describe('HTTP routes: payload 2.0 through a real gateway to real runtime shims', () => {
  let redis: RedisServer;
  let fixture: GatewayFixture;
  let gateway: RunningGateway;
  const auth = { authorization: `Bearer ${API_KEY}` };
  const get = (path: string, headers: Record<string, string> = auth) =>
    fetch(`${gateway.url}${path}`, { headers });

  /** Waits until the gateway answers `path` as `ready` says: mappings reach it by pub/sub, a moment later. */
  async function until(
    path: string,
    ready: (response: Response) => boolean,
    headers: Record<string, string> = auth,
  ): Promise<Response> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const response = await get(path, headers);
      if (ready(response)) return response;
      await response.arrayBuffer();
      if (Date.now() > deadline) assert.fail(`${path} still answers ${response.status}`);
      await sleep(50);
    }
  }

  before(async () => {
    redis = await startRedis();
    fixture = new GatewayFixture(redis.url);
    const shop = await fixture.addFunction({ name: 'shop', source: '' });
    const echo = await fixture.addFunction({ name: 'echo', source: ROUTE_ECHO });
    await fixture.addFunction({
      name: 'blocked',
      source: ROUTE_ECHO,
      spec: { concurrency: { reserved: 0 } },
    });
    await Promise.all([
      fixture.addInstance(shop, undefined, { codeDir: EXPRESS_APP }),
      fixture.addInstance(echo),
    ]);
    await fixture.setPushMapping(
      mapping('shop', 'shop', { method: 'ANY', pathPrefix: '/shop', auth: 'gateway' }),
    );
    await fixture.setPushMapping(
      mapping('public', 'echo', { method: 'GET', pathPrefix: '/public', auth: 'none' }),
    );
    await fixture.setPushMapping(
      mapping('blocked', 'blocked', { method: 'ANY', pathPrefix: '/blocked', auth: 'none' }),
    );
    gateway = await fixture.startGateway();
  });

  after(async () => {
    await fixture?.stop();
    await redis?.stop();
  });

  test('an express app wrapped with serverless-http: path and query parameters, its own headers', async () => {
    const response = await get('/shop/items/42?color=red&size=m&size=l');
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-served-by'), 'express');
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await response.json(), {
      id: '42',
      query: { color: 'red', size: ['m', 'l'] },
      path: '/shop/items/42',
    });
  });

  test('express: a JSON POST echoed with 201, Location, a cookie sent and one set', async () => {
    const response = await fetch(`${gateway.url}/shop/orders`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', cookie: 'pref=dark; lang=en' },
      body: JSON.stringify({ sku: 'abc', qty: 2 }),
    });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get('location'), '/shop/orders/abc');
    assert.deepEqual(response.headers.getSetCookie(), ['session=abc123; Path=/shop; HttpOnly']);
    assert.deepEqual(await response.json(), {
      received: { sku: 'abc', qty: 2 },
      cookies: 'pref=dark; lang=en',
    });
  });

  test("express's own 404 and a binary (image/png) answer come back as express sent them", async () => {
    const missing = await get('/shop/nothing-here');
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /Cannot GET \/shop\/nothing-here/);
    const pixel = await get('/shop/pixel.png');
    assert.equal(pixel.status, 200);
    assert.equal(pixel.headers.get('content-type'), 'image/png');
    assert.deepEqual(Buffer.from(await pixel.arrayBuffer()), PIXEL);
  });

  test('auth gateway: 401 without a key, 403 with a wrong one, and the key never reaches the function; auth none is public', async () => {
    const without = await get('/shop/items/1', {});
    assert.equal(without.status, 401);
    assert.deepEqual(await without.json(), { message: 'Unauthorized' });
    const wrong = await get('/shop/items/1', { authorization: 'Bearer not-the-key' });
    assert.equal(wrong.status, 403);
    assert.deepEqual(await wrong.json(), { message: 'Forbidden' });
    const seen = await (await get('/shop/whoami')).json();
    assert.deepEqual(seen, { authorization: null, routeKey: 'ANY /shop/{proxy+}' });
    const open = await get('/public/a/b', {});
    assert.equal(open.status, 200);
    assert.deepEqual(await open.json(), { routeKey: 'GET /public/{proxy+}', proxy: 'a/b', apiId: 'public' });
    const wrongMethod = await fetch(`${gateway.url}/public/a`, { method: 'DELETE', headers: auth });
    assert.equal(wrongMethod.status, 404, 'a GET route does not take DELETE');
  });

  test('auth gateway also takes a SigV4 signature (service lambda) over the path, query and body', async () => {
    const url = new URL(`${gateway.url}/shop/items/5?color=blue`);
    const signer = new SignatureV4({
      service: 'lambda',
      region: 'us-east-1',
      credentials: ACCESS_KEY,
      sha256: Sha256,
    });
    const signed = await signer.sign({
      method: 'GET',
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      query: { color: 'blue' },
      headers: { host: url.host },
    });
    const { host: _host, ...headers } = signed.headers;
    const response = await fetch(url, { headers });
    assert.equal(response.status, 200);
    assert.deepEqual(((await response.json()) as { query: unknown }).query, { color: 'blue' });
    const tampered = await fetch(new URL(`${gateway.url}/shop/items/5?color=red`), { headers });
    assert.equal(tampered.status, 403, 'the signature covers the query');
  });

  test('a plain result is a 200 JSON body; a function error is 500; a throttle 429; a body over 6 MB 413', async () => {
    const plain = await get('/public/x?plain', {});
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get('content-type'), 'application/json');
    assert.deepEqual(await plain.json(), { hello: 'world' });
    const failed = await get('/public/x?fail', {});
    assert.equal(failed.status, 500);
    assert.deepEqual(await failed.json(), { message: 'Internal Server Error' });
    const throttled = await get('/blocked/x', {});
    assert.equal(throttled.status, 429);
    assert.deepEqual(await throttled.json(), { message: 'Too Many Requests' });
    const big = await fetch(`${gateway.url}/blocked/upload`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(6 * 1024 * 1024 + 1),
    });
    assert.equal(big.status, 413);
    assert.match(((await big.json()) as { message: string }).message, /at most 6291456 bytes/);
  });

  test('the longest prefix wins between two mappings; a disabled mapping stops answering', async () => {
    await fixture.setPushMapping(
      mapping('cart', 'echo', { method: 'ANY', pathPrefix: '/shop/cart', auth: 'gateway' }),
    );
    const cart = await until(
      '/shop/cart/7',
      (r) => r.headers.get('x-served-by') === null && r.status === 200,
    );
    assert.deepEqual(await cart.json(), { routeKey: 'ANY /shop/cart/{proxy+}', proxy: '7', apiId: 'cart' });
    const items = await get('/shop/items/9');
    assert.equal(((await items.json()) as { id: string }).id, '9', '/shop still goes to express');

    await fixture.setPushMapping(
      mapping('cart', 'echo', { method: 'ANY', pathPrefix: '/shop/cart', auth: 'gateway' }, false),
    );
    const back = await until('/shop/cart/7', (r) => r.status === 404);
    assert.match(await back.text(), /Cannot GET \/shop\/cart\/7/, 'express, under /shop, takes it again');
    await fixture.setPushMapping(
      mapping('public', 'echo', { method: 'GET', pathPrefix: '/public', auth: 'none' }, false),
    );
    const gone = await until('/public/a', (r) => r.status === 404);
    assert.equal(gone.headers.get('x-amzn-errortype'), 'ResourceNotFoundException');
  });

  test('a mapping whose change message was missed is picked up by the periodic resync', async () => {
    const quiet = mapping('quiet', 'echo', { method: 'ANY', pathPrefix: '/quiet', auth: 'none' });
    // Written as the controller would, but with no message on the channel (a reconnect lost it).
    await fixture.redis.hset(RedisKeys.pushMappings, 'quiet', JSON.stringify(quiet));
    const found = await until('/quiet/x', (r) => r.status === 200, {});
    assert.deepEqual(await found.json(), { routeKey: 'ANY /quiet/{proxy+}', proxy: 'x', apiId: 'quiet' });
  });

  test('deliveries are counted per mapping and function', async () => {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    const count = (labels: string) =>
      Number(
        new RegExp(`^hearth_event_source_deliveries_total\\{${labels}\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0,
      );
    assert.ok(count('mapping="shop",function="shop",source="http",outcome="success"') >= 5);
    assert.ok(count('mapping="public",function="echo",source="http",outcome="function_error"') >= 1);
    assert.ok(count('mapping="blocked",function="blocked",source="http",outcome="throttled"') >= 1);
    assert.ok(count('mapping="shop",function="shop",source="http",outcome="refused"') >= 2);
  });
});
