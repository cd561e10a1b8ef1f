/*
 * GET /ping?error=CODE (docs/protocol.md §3.3): every code of the error
 * table comes back with its status and a {code, message} body, as
 * sdc-imgapi answers its test suites; an unknown code is 422
 * InvalidParameter naming the parameter; without ?error= the ping is the
 * ordinary pong.
 */
import test from 'ava';
import { ERROR_TABLE, type ErrorCode } from '../../src/errors.js';
import { startServer } from '../helpers/server.js';
import { assertApiError, assertJson, json, request } from './kit.js';

test('every code of the error table comes back with its status and {code, message}', async (t) => {
  const { url } = await startServer(t);
  const codes = Object.keys(ERROR_TABLE) as ErrorCode[];
  t.true(codes.length > 10);
  for (const code of codes) {
    const res = await request(`${url}/ping?error=${code}`);
    const body = assertApiError(t, res, ERROR_TABLE[code].status, code);
    t.deepEqual(Object.keys(body).sort(), ['code', 'message'], code);
    t.is(typeof body.message, 'string', code);
  }
});

test('an unknown, empty or repeated code is 422 InvalidParameter naming the error parameter', async (t) => {
  const { url } = await startServer(t);
  for (const query of ['error=NoSuchError', 'error=', 'error=constructor', 'error=ResourceNotFound&error=InternalError']) {
    const res = await request(`${url}/ping?${query}`);
    const body = assertApiError(t, res, 422, 'InvalidParameter');
    t.like(body, { errors: [{ field: 'error', code: 'Invalid' }] }, query);
  }
});

test('without ?error= the ping is unchanged', async (t) => {
  const { url } = await startServer(t);
  for (const target of ['/ping', '/ping?errors=InternalError']) {
    const res = await request(`${url}${target}`);
    assertJson(t, res, 200);
    t.like(json(res), { ping: 'pong', imgapi: true }, target);
  }
});
