import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchHttpRoute, type HttpRoute } from './http-routes.js';

const route = (name: string, pathPrefix: string, method = 'ANY', enabled = true): HttpRoute => ({
  name,
  namespace: 'default',
  functionName: `fn-${name}`,
  enabled,
  http: { method, pathPrefix, auth: 'none' },
});

test('the longest prefix on a segment boundary wins', () => {
  const routes = [route('root', '/'), route('shop', '/shop'), route('cart', '/shop/cart/')];
  const match = (path: string, method = 'GET') => matchHttpRoute(routes, method, path)?.name;
  assert.equal(match('/shop'), 'shop');
  assert.equal(match('/shop/items'), 'shop');
  assert.equal(match('/shop/cart'), 'cart');
  assert.equal(match('/shop/cart/1'), 'cart');
  assert.equal(match('/shopping'), 'root', '/shop does not take /shopping');
  assert.equal(match('/'), 'root');
});

test("the gateway's own paths never match, not even a route at /", () => {
  const routes = [route('root', '/')];
  for (const path of [
    '/2015-03-31/functions/f/invocations',
    '/function/f',
    '/healthz',
    '/metrics',
    '/hearth/v1/x',
  ])
    assert.equal(matchHttpRoute(routes, 'POST', path), undefined, path);
});

test('methods: a named method only takes its own, and beats ANY at the same prefix; disabled routes are skipped', () => {
  const routes = [route('any', '/api'), route('post', '/api', 'POST'), route('off', '/api/v2', 'ANY', false)];
  assert.equal(matchHttpRoute(routes, 'POST', '/api/x')?.name, 'post');
  assert.equal(matchHttpRoute(routes, 'GET', '/api/x')?.name, 'any');
  assert.equal(matchHttpRoute(routes, 'GET', '/api/v2/x')?.name, 'any');
  assert.equal(matchHttpRoute([route('get', '/g', 'GET')], 'DELETE', '/g'), undefined);
});
