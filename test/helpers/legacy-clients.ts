// Typed loader for the old CommonJS clients, usable from an ESM ("type": "module") TS project.
import { createRequire } from 'node:module';
import type { Agent, IncomingMessage } from 'node:http';
import type { ExecutionContext } from 'ava';

const require = createRequire(import.meta.url);

export type Cb<T> = (err: RestLikeError | null, result: T, res?: IncomingMessage) => void;

/** Shape of errors coming out of restify-clients 1.x (RestError / HttpError / ChecksumError / ECONNREFUSED ...). */
export interface RestLikeError extends Error {
  statusCode?: number;      // HTTP status (4xx/5xx)
  restCode?: string;        // body.code, when the JSON client parsed {code, message}
  code?: string;            // 'ChecksumError', 'ECONNREFUSED', 'ECONNRESET', ...
  body?: { code?: string; message?: string } & Record<string, unknown>;
}

export interface ImgapiOptions {
  url: string;
  version?: string;          // -> Accept-Version header (default '*')
  userAgent?: string | false;
  headers?: Record<string, string>; // WARNING: this object is mutated & shared by both internal clients
  retry?: false | { retries?: number; minTimeout?: number; maxTimeout?: number };
  proxy?: false | string;
  agent?: false | Agent;
  connectTimeout?: number;
  requestTimeout?: number;
  log?: unknown;             // bunyan-like; omitted -> restify creates a bunyan logger (warn+ to stderr)
  channel?: string;
  user?: string;
  password?: string;
}

export interface Manifest { uuid: string; [k: string]: unknown }

export interface ImgapiClient {
  ping(cb: Cb<unknown>): void;
  listImages(cb: Cb<Manifest[]>): void;
  listImages(filters: Record<string, unknown>, cb: Cb<Manifest[]>): void;
  listImages(filters: Record<string, unknown>, opts: { headers?: Record<string, string>; inclAdminFields?: boolean; channel?: string }, cb: Cb<Manifest[]>): void;
  getImage(uuid: string, cb: Cb<Manifest>): void;
  getImage(uuid: string, opts: { channel?: string }, cb: Cb<Manifest>): void;
  getImageFile(uuid: string, filePath: string, cb: (err: RestLikeError | null, res?: IncomingMessage) => void): void;
  getImageFile(uuid: string, filePath: string, account: string | undefined, opts: { channel?: string },
    cb: (err: RestLikeError | null, res?: IncomingMessage) => void): void;
  getImageFileStream(uuid: string, cb: (err: RestLikeError | null, stream: IncomingMessage) => void): void;
  adminImportImage(manifest: Manifest, opts: { skipOwnerCheck?: boolean; source?: string }, cb: Cb<Manifest>): void;
  addImageFile(opts: { uuid: string; file: string | NodeJS.ReadableStream; compression: string; size?: number; sha1?: string;
    headers?: Record<string, string> }, cb: Cb<Manifest>): void;
  activateImage(uuid: string, cb: Cb<Manifest>): void;
  disableImage(uuid: string, cb: Cb<Manifest>): void;
  enableImage(uuid: string, cb: Cb<Manifest>): void;
  updateImage(uuid: string, data: Record<string, unknown>, cb: Cb<Manifest>): void;
  createImage(data: Record<string, unknown>, cb: Cb<Manifest>): void;
  deleteImage(uuid: string, cb: (err: RestLikeError | null, res?: IncomingMessage) => void): void;
  deleteImage(uuid: string, opts: { channel?: string; forceAllChannels?: boolean }, cb: (err: RestLikeError | null, res?: IncomingMessage) => void): void;
  listChannels(opts: Record<string, unknown>, cb: Cb<unknown[]>): void;
  /** ?channel= is the client's own channel (finding the image); `channel` is the one the image joins. */
  channelAddImage(opts: { uuid: string; channel: string }, cb: Cb<Manifest>): void;
  close(): void;
}

export interface DsapiClient {
  ping(cb: Cb<unknown>): void;
  listImages(cb: Cb<Manifest[]>): void;
  listImages(params: Record<string, string>, cb: Cb<Manifest[]>): void;
  getImage(uuid: string, cb: (err: RestLikeError | null, image?: Manifest) => void): void;
  getImageFileStream(uuid: string, cb: (err: RestLikeError | null, stream?: IncomingMessage) => void): void;
  close(): void;
}

export interface ManifestValidationError { field: string; code: 'MissingParameter' | 'Invalid' | string; message?: string }
export interface ImgManifest {
  V: number;
  upgradeManifest(m: Record<string, unknown>): Manifest;
  validateMinimalManifest(m: Record<string, unknown>): ManifestValidationError[] | null;
  validateDcManifest(m: Record<string, unknown>): ManifestValidationError[] | null;
  validatePublicManifest(m: Record<string, unknown>, opts?: { channelFromName?: Record<string, unknown> }): ManifestValidationError[] | null;
  validatePrivateManifest(m: Record<string, unknown>, opts?: { channelFromName?: Record<string, unknown> }): ManifestValidationError[] | null;
}

type ImgapiModule = { new (o: ImgapiOptions): ImgapiClient; createClient(o: ImgapiOptions): ImgapiClient; ChecksumError: new (...a: unknown[]) => Error };
type DsapiModule = { new (o: { url: string; retry?: ImgapiOptions['retry']; proxy?: false | string; username?: string; password?: string; log?: unknown }): DsapiClient };

export const IMGAPI = require('sdc-clients/lib/imgapi') as ImgapiModule;       // sdc-clients@13
export const DSAPI = require('sdc-clients-dsapi/lib/dsapi') as DsapiModule;    // sdc-clients@11.3.1 (npm alias)
export const imgmanifest = require('imgmanifest') as ImgManifest;

/** A bunyan-shaped logger that drops everything (restify otherwise logs warn+ to stderr). */
export const noopLog = {
  trace() { return false; }, debug() {}, info() {}, warn() {}, error() {}, fatal() {},
  child() { return noopLog; },
};

/** Call a callback-style client method; resolve with [result, res], reject with err. */
export function p<T>(fn: (cb: (err: RestLikeError | null, result: T, res?: IncomingMessage) => void) => void): Promise<[T, IncomingMessage | undefined]> {
  return new Promise((resolve, reject) => fn((err, result, res) => (err ? reject(err) : resolve([result, res]))));
}

/**
 * The IMGAPI client as imgadm makes it (API version ~2), closed in teardown:
 * retry off so a dead server fails at once, proxy off so an http_proxy in
 * the environment is not used for 127.0.0.1.
 */
export function imgapiClient(t: ExecutionContext, url: string): ImgapiClient {
  const c = IMGAPI.createClient({ url, version: '~2', retry: false, proxy: false, log: noopLog });
  t.teardown(() => c.close());
  return c;
}

/** getImageFile calls back (err, res), not (err, result, res). */
export function getImageFile(c: ImgapiClient, uuid: string, filePath: string): Promise<IncomingMessage | undefined> {
  return new Promise((resolve, reject) =>
    c.getImageFile(uuid, filePath, (err, res) => (err ? reject(err) : resolve(res))));
}
