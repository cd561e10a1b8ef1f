/*
 * /openapi.json is an OpenAPI 3.1 document that names every route the
 * router has (and nothing it lacks), and the bodies the server really sends
 * validate against the schemas it declares.
 */
import test, { type ExecutionContext } from 'ava';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { randomBytes } from 'node:crypto';
import { createRouter } from '../../src/http/app.js';
import { openApiDocument } from '../../src/http/openapi.js';
import { createLogger } from '../../src/log.js';
import { VERSION } from '../../src/version.js';
import { OPERATOR_AUTH, startServer } from '../helpers/server.js';
import { tmpDir, v1Manifest, writeImage } from '../helpers/images.js';
import { addImage, assertComponent, assertJson, assertSchema, json, request } from './kit.js';

type Doc = { openapi: string; info: Record<string, unknown>; paths: Record<string, Record<string, any>>; components: { schemas: Record<string, object> } };

const METHODS = ['get', 'head', 'put', 'post', 'delete', 'options', 'patch', 'trace'];

async function served(t: ExecutionContext, config: Record<string, unknown> = {}) {
  const root = tmpDir(t);
  const v2 = addImage(root, { tags: { role: 'os' }, requirements: { brand: 'lx' }, type: 'lx-dataset', os: 'linux' });
  const priv = addImage(root, { public: false, acl: ['33333333-3333-4333-8333-333333333333'] });
  const disabled = addImage(root, { state: 'disabled', disabled: true });
  const unactivated = addImage(root, { state: 'unactivated', published_at: undefined, files: [] });
  const failed = addImage(root, { state: 'failed', published_at: undefined, files: [], error: { message: 'x' } });
  const bytes = randomBytes(500);
  const v1 = writeImage(root, v1Manifest(bytes, 'legacy image.zfs.bz2'), { bytes, fileName: 'legacy image.zfs.bz2' });
  const srv = await startServer(t, { serveDir: root, config });
  const doc = json<Doc>(await request(`${srv.url}/openapi.json`));
  return { srv, doc, v1, v2, priv, disabled, unactivated, failed };
}

test('GET /openapi.json is the OpenAPI 3.1 document the code builds', async (t) => {
  const { srv, doc } = await served(t);
  const res = await request(`${srv.url}/openapi.json`);
  assertJson(t, res, 200);
  t.regex(doc.openapi, /^3\.1\.\d+$/);
  t.is(typeof doc.info.title, 'string');
  t.is(doc.info.version, VERSION);
  t.deepEqual(doc, JSON.parse(JSON.stringify(openApiDocument(VERSION))));
});

test('the document is well-formed: operations, path parameters, responses and schemas', async (t) => {
  const { doc } = await served(t);
  const ids = new Set<string>();
  const ajv = new Ajv2020({ strict: false });
  ajv.addSchema({ $id: 'doc.json', components: doc.components });
  for (const [p, item] of Object.entries(doc.paths)) {
    t.true(p.startsWith('/'), p);
    const templated = [...p.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const [method, op] of Object.entries(item)) {
      t.true(METHODS.includes(method), `${p}: ${method}`);
      t.is(typeof op.operationId, 'string');
      t.false(ids.has(op.operationId), `duplicate operationId ${op.operationId}`);
      ids.add(op.operationId);
      const pathParams = (op.parameters ?? []).filter((x: { in: string }) => x.in === 'path');
      t.deepEqual(pathParams.map((x: { name: string }) => x.name).sort(), [...templated].sort(), `${method} ${p}`);
      for (const param of pathParams) t.true(param.required, `${method} ${p} ${param.name}`);
      t.true(Object.keys(op.responses).length > 0, `${method} ${p}`);
      for (const [status, response] of Object.entries<any>(op.responses)) {
        t.regex(status, /^([1-5]\d\d|default)$/, `${method} ${p}`);
        t.is(typeof response.description, 'string', `${method} ${p} ${status}`);
        for (const media of Object.values<any>(response.content ?? {})) {
          if (!media.schema) continue;
          const schema = JSON.parse(JSON.stringify(media.schema).replaceAll('"#/components/', '"doc.json#/components/'));
          t.notThrows(() => ajv.compile(schema), `${method} ${p} ${status}`);
        }
      }
    }
  }
});

const CHANNELS = { channels: [{ name: 'release', description: 'r', default: true }, { name: 'dev', description: 'd' }] };

for (const [label, config] of [['', {}], [', with channels configured', CHANNELS]] as const) test(`every route and method the router registers is in the document, and no other${label}`, async (t) => {
  const { srv, doc } = await served(t, config);
  const router = createRouter({
    config: srv.config, store: srv.store, writer: srv.writer, credentials: srv.credentials, registry: srv.registry,
    log: createLogger('fatal'), version: VERSION,
  });
  const routed = new Set<string>();
  for (const layer of router.stack) {
    if (layer.methods.length === 0) continue;
    const p = String(layer.path).replace(/:(\w+)/g, '{$1}');
    for (const method of layer.methods) {
      const key = `${method.toLowerCase()} ${p}`;
      routed.add(key);
      const op = doc.paths[p]?.[method.toLowerCase()];
      t.truthy(op, `${key} is not in /openapi.json`);
      if (method === 'GET') t.is(op?.operationId, layer.name, key);
    }
  }
  t.true(routed.size > 0);
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) t.true(routed.has(`${method} ${p}`), `${method} ${p} is documented but not routed`);
  }
});

test('ListImages, GetImage and Ping bodies match their schemas', async (t) => {
  const { srv, doc, v1, v2, priv, disabled, unactivated, failed } = await served(t);
  const headers = { authorization: OPERATOR_AUTH };
  for (const query of ['', '?state=all', '?state=failed', '?state=unactivated', '?limit=1', '?sort=published_at.desc', '?public=false']) {
    const res = await request(`${srv.url}/images${query}`, { headers });
    assertJson(t, res, 200);
    assertSchema(t, 'GET /images 200', json(res), doc);
  }
  for (const img of [v1, v2, priv, disabled, unactivated, failed]) {
    const res = await request(`${srv.url}/images/${img.uuid}`, { headers });
    assertJson(t, res, 200);
    assertSchema(t, 'GET /images/{uuid} 200', json(res), doc);
  }
  assertSchema(t, 'GET /ping 200', json(await request(`${srv.url}/ping`)), doc);
  assertSchema(t, 'GET / 200', json(await request(`${srv.url}/`, { headers: { accept: 'application/json' } })), doc);
});

test('ListDatasets and GetDataset bodies match their schemas, under every URL base', async (t) => {
  const configs = [{}, { prefix: 'https://', suffix: ':8443' }, { base_url: 'https://images.example.net' },
    { base_url: 'https://example.net/smartos/' }, { trust_proxy: true }];
  for (const config of configs) {
    const { srv, doc, v1, v2, priv, disabled } = await served(t, config);
    const headers = { 'x-forwarded-host': 'images.example.net', 'x-forwarded-proto': 'https', authorization: OPERATOR_AUTH };
    const list = await request(`${srv.url}/datasets`, { headers });
    assertJson(t, list, 200);
    t.is(json(list).length, 3);
    assertSchema(t, 'GET /datasets 200', json(list), doc);
    for (const img of [v1, v2, priv, disabled]) {
      const res = await request(`${srv.url}/datasets/${img.uuid}`, { headers });
      assertJson(t, res, 200);
      assertSchema(t, 'GET /datasets/{uuid} 200', json(res), doc);
    }
  }
});

test('error bodies match the Error schema and the statuses each route documents', async (t) => {
  const { srv, doc, v2 } = await served(t);
  const cases: [string, Record<string, string>, number, string | undefined][] = [
    ['/images?limit=abc', {}, 422, 'GET /images 422'],
    ['/images?state=bogus', {}, 422, 'GET /images 422'],
    ['/images/5e1d0c2b-8a7f-4b6e-9d3c-2a1b0f9e8d7c', {}, 404, 'GET /images/{uuid} 404'],
    ['/images/NOT-A-UUID/file', {}, 404, 'GET /images/{uuid}/file 404'],
    [`/images/${v2.uuid}/file`, { range: 'bytes=99999-' }, 416, 'GET /images/{uuid}/file 416'],
    ['/datasets/5e1d0c2b-8a7f-4b6e-9d3c-2a1b0f9e8d7c', {}, 404, 'GET /datasets/{uuid} 404'],
    [`/datasets/${v2.uuid}/nope.gz`, {}, 404, 'GET /datasets/{uuid}/{path} 404'],
    [`/datasets/${v2.uuid}/nope.gz`, { range: 'bytes=0-1' }, 404, 'GET /datasets/{uuid}/{path} 404'],
    ['/nowhere', {}, 404, undefined],
    ['/ping', { 'accept-version': '~9' }, 400, undefined],
  ];
  for (const [p, headers, status, documented] of cases) {
    const res = await request(`${srv.url}${p}`, { headers });
    assertJson(t, res, status);
    assertComponent(t, 'Error', json(res), doc);
    if (documented) assertSchema(t, documented, json(res), doc);
  }
  const wrong = await request(`${srv.url}/ping`, { method: 'DELETE' });
  assertJson(t, wrong, 405);
  assertComponent(t, 'Error', json(wrong), doc);
});

test('every status and media type a route answers with is declared', async (t) => {
  const { srv, doc, v1, v2 } = await served(t);
  const routes: [string, string][] = [
    ['/', '/'], ['/openapi.json', '/openapi.json'], ['/ping', '/ping'], ['/images', '/images'],
    [`/images/${v2.uuid}`, '/images/{uuid}'], [`/images/${v2.uuid}/file`, '/images/{uuid}/file'],
    ['/datasets', '/datasets'], [`/datasets/${v1.uuid}`, '/datasets/{uuid}'],
    [`/datasets/${v1.uuid}/file`, '/datasets/{uuid}/{path}'],
  ];
  for (const [target, docPath] of routes) {
    const variants: Record<string, string>[] = [{ accept: 'application/json' }, { accept: 'text/html' }, { range: 'bytes=0-9' }];
    for (const headers of variants) {
      const res = await request(`${srv.url}${target}`, { headers });
      const declared = doc.paths[docPath]!.get.responses[res.status];
      t.truthy(declared, `GET ${docPath} ${res.status} is not documented`);
      const type = String(res.headers['content-type']).split(';')[0]!;
      t.true(type in (declared?.content ?? {}), `GET ${docPath} ${res.status} ${type} is not documented`);
      if (!res.headers.etag) continue;
      const again = await request(`${srv.url}${target}`, { headers: { ...headers, 'if-none-match': res.headers.etag } });
      t.is(again.status, 304, `GET ${docPath} with its own ETag`);
      t.truthy(doc.paths[docPath]!.get.responses[304], `GET ${docPath} 304 is not documented`);
    }
  }
});

test('the schemas are strict enough to catch what imgadm chokes on', async (t) => {
  const { doc, srv, v1, v2 } = await served(t);
  const image = json(await request(`${srv.url}/images/${v2.uuid}`));
  const dataset = json(await request(`${srv.url}/datasets/${v1.uuid}`));
  const fails = (response: string, body: unknown) => {
    const inner = new Ajv2020({ strict: false });
    inner.addSchema({ $id: 'x.json', paths: doc.paths, components: doc.components });
    const [method, p, status] = response.split(' ') as [string, string, string];
    const pointer = `/paths/${p.replaceAll('/', '~1')}/${method.toLowerCase()}/responses/${status}/content/application~1json/schema`;
    t.false(inner.compile({ $ref: `x.json#${pointer}` })(body), `${response} accepted ${JSON.stringify(body).slice(0, 120)}`);
  };
  fails('GET /images/{uuid} 200', { ...image, files: [{ ...image.files[0], size: String(image.files[0].size) }] });
  fails('GET /images/{uuid} 200', { ...image, published_at: '2014-01-21T05:44Z' });
  fails('GET /images/{uuid} 200', { ...image, activated: true });
  fails('GET /images/{uuid} 200', { ...image, v: undefined });
  fails('GET /datasets/{uuid} 200', { ...dataset, owner: dataset.creator_uuid });
  fails('GET /datasets/{uuid} 200', { ...dataset, creator_uuid: '' });
  fails('GET /datasets/{uuid} 200', { ...dataset, files: [{ ...dataset.files[0], url: '/datasets/x/y' }] });
  fails('GET /datasets/{uuid} 200', { ...dataset, files: [{ ...dataset.files[0], compression: undefined }] });
  fails('GET /ping 200', { ping: 'pong', version: '1' });
});
