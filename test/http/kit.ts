/*
 * What the HTTP tests share: a plain node:http client that adds nothing of
 * its own (no Accept-Encoding, no keep-alive), checks every JSON or error
 * answer must pass, and response-body validation against the served OpenAPI
 * document.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import type { ExecutionContext } from 'ava';
import { openApiDocument } from '../../src/http/openapi.js';
import { VERSION } from '../../src/version.js';
import { md5b64, v2Manifest, writeImage, type ImageOnDisk } from '../helpers/images.js';

export interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface ReqOptions {
  method?: string;
  headers?: Record<string, string>;
}

export function request(url: string, opts: ReqOptions = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export function json<T = any>(res: Res): T {
  return JSON.parse(res.body.toString('utf8')) as T;
}

/** Response headers that must not differ between two answers to the same request. */
export function stableHeaders(res: Res): Record<string, unknown> {
  const { date: _date, 'x-request-id': _id, ...rest } = res.headers;
  return rest;
}

/** A JSON answer as imgadm's client needs it: parsable, exact length, Content-MD5 = base64(md5(body)). */
export function assertJson(t: ExecutionContext, res: Res, status: number): void {
  t.is(res.status, status, res.body.toString('utf8').slice(0, 300));
  t.regex(String(res.headers['content-type']), /^application\/json(;|$)/);
  t.is(res.headers['content-md5'], md5b64(res.body));
  t.is(res.headers['content-length'], String(res.body.length));
  t.notThrows(() => JSON.parse(res.body.toString('utf8')));
}

/** An IMGAPI error answer: {code, message[, errors]} with string code and message. */
export function assertApiError(t: ExecutionContext, res: Res, status: number, code: string): Record<string, unknown> {
  assertJson(t, res, status);
  const body = json(res);
  t.is(body.code, code);
  t.is(typeof body.message, 'string');
  t.true(body.message.length > 0);
  assertComponent(t, 'Error', body);
  return body;
}

const DOC_ID = 'https://smartos-image-server.test/openapi.json';
const validators = new WeakMap<object, { ajv: Ajv2020; compiled: Map<string, ValidateFunction> }>();

function pointerPart(s: string): string {
  return s.replaceAll('~', '~0').replaceAll('/', '~1');
}

type Doc = { paths: object; components: object };

const SERVED_DOC: Doc = openApiDocument(VERSION);

function validator(doc: Doc, pointer: string): ValidateFunction {
  let entry = validators.get(doc);
  if (!entry) {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    ajv.addSchema({ $id: DOC_ID, paths: doc.paths, components: doc.components });
    entry = { ajv, compiled: new Map() };
    validators.set(doc, entry);
  }
  let validate = entry.compiled.get(pointer);
  if (!validate) {
    validate = entry.ajv.compile({ $ref: `${DOC_ID}#${pointer}` });
    entry.compiled.set(pointer, validate);
  }
  return validate;
}

function check(t: ExecutionContext, what: string, validate: ValidateFunction, body: unknown): void {
  const ok = validate(body);
  t.true(ok, `${what}: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
}

/**
 * Validates `body` against the document's schema for one response, named
 * like "GET /images/{uuid} 200". The document defaults to the one the
 * server serves (openapi.test.ts checks they are the same).
 */
export function assertSchema(t: ExecutionContext, response: string, body: unknown, doc: Doc = SERVED_DOC): void {
  const [method, docPath, status] = response.split(' ') as [string, string, string];
  const pointer = `/paths/${pointerPart(docPath)}/${method.toLowerCase()}/responses/${status}/content/application~1json/schema`;
  check(t, response, validator(doc, pointer), body);
}

/** Validates `body` against components/schemas/<name>. */
export function assertComponent(t: ExecutionContext, name: string, body: unknown, doc: Doc = SERVED_DOC): void {
  check(t, name, validator(doc, `/components/schemas/${name}`), body);
}

/** An active v2 image with `size` random bytes (published_at increases per call). */
export function addImage(
  root: string,
  fields: Record<string, unknown> = {},
  opts: { bytes?: Buffer; size?: number; fileName?: string; md5?: boolean } = {},
): ImageOnDisk {
  const bytes = opts.bytes ?? randomBytes(opts.size ?? 1024);
  const { size: _size, ...rest } = opts;
  return writeImage(root, v2Manifest(bytes, fields), { ...rest, bytes });
}

export const uuidsOf = (list: { uuid: string }[]) => list.map((m) => m.uuid);
