/*
 * The OpenAPI 3.1 description of every route, served at /openapi.json.
 * Tests check that the router has no route this document lacks and validate
 * response bodies against its schemas, so it cannot drift from the code.
 * Error answers are described from the error table (src/errors.ts): an
 * operation lists the codes it may answer, and their statuses and meanings
 * come from there.
 */
import { ERROR_TABLE, type ErrorCode } from '../errors.js';
import { UI_ASSETS } from './routes/ui.js';

const UUID = { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' };
const DATE = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{3})?Z$' };
const SHA1 = { type: 'string', pattern: '^[0-9a-f]{40}$' };
const COMPRESSION = { enum: ['gzip', 'bzip2', 'xz', 'none'] };
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

const schemas = {
  Error: {
    type: 'object',
    required: ['code', 'message'],
    properties: {
      code: { enum: Object.keys(ERROR_TABLE) },
      message: { type: 'string' },
      errors: {
        type: 'array',
        items: {
          type: 'object',
          required: ['field', 'code'],
          properties: { field: { type: 'string' }, code: { type: 'string' }, message: { type: 'string' } },
        },
      },
    },
  },
  Ping: {
    type: 'object',
    required: ['ping', 'version', 'imgapi'],
    properties: {
      ping: { const: 'pong' },
      version: { type: 'string' },
      imgapi: { const: true },
      cluster: {
        description: 'Only on a cluster member (config `cluster`): its view of the etcd index',
        type: 'object',
        required: ['id', 'etcd', 'peers', 'indexed', 'pending', 'pulling', 'failed', 'failed_images', 'lag_seconds', 'revision'],
        properties: {
          id: { type: 'string', description: 'this server in the index' },
          etcd: { enum: ['up', 'down'] },
          peers: { type: 'integer', description: 'other servers alive' },
          indexed: { type: 'integer', description: 'images in the index' },
          pending: { type: 'integer', description: 'indexed images to pull and holder keys to add, not in place yet (failed pulls aside)' },
          pulling: { type: 'integer', description: 'pulls running now' },
          failed: { type: 'integer', description: 'images no holder has good bytes of; pulled again only when a holder changes' },
          failed_images: { type: 'array', items: UUID, maxItems: 10, description: 'some of those images' },
          lag_seconds: { type: 'number', description: 'since this server was last level with the index; 0 when it is' },
          revision: { type: ['string', 'null'], description: 'the etcd revision seen last' },
        },
      },
    },
  },
  Image: {
    description: 'An IMGAPI v2 manifest, as sdc-imgapi serialises it.',
    type: 'object',
    required: ['v', 'uuid', 'owner', 'name', 'version', 'state', 'disabled', 'public', 'type', 'os', 'files'],
    properties: {
      v: { const: 2 },
      uuid: UUID,
      owner: UUID,
      name: { type: 'string', minLength: 1 },
      version: { type: 'string', minLength: 1 },
      state: { enum: ['active', 'unactivated', 'disabled', 'creating', 'failed'] },
      disabled: { type: 'boolean' },
      public: { type: 'boolean' },
      published_at: DATE,
      type: { type: 'string' },
      os: { type: 'string' },
      origin: UUID,
      files: {
        type: 'array',
        items: {
          type: 'object',
          required: ['sha1', 'size', 'compression'],
          additionalProperties: false,
          properties: {
            sha1: SHA1,
            size: { type: 'integer', minimum: 0 },
            compression: COMPRESSION,
            dataset_guid: { type: 'string' },
            digest: { type: 'string' },
            uncompressedDigest: { type: 'string' },
          },
        },
      },
      image_size: { type: 'integer' },
      tags: { type: 'object' },
      requirements: { type: 'object' },
    },
    not: { anyOf: [{ required: ['activated'] }, { required: ['creator_uuid'] }] },
  },
  Dataset: {
    description: 'A DSAPI v1 manifest that current imgadm upgrades and imports.',
    type: 'object',
    required: ['uuid', 'name', 'version', 'os', 'type', 'creator_uuid', 'files'],
    properties: {
      uuid: UUID,
      name: { type: 'string', minLength: 1 },
      version: { type: 'string', minLength: 1 },
      creator_uuid: { type: 'string', minLength: 1 },
      creator_name: { type: 'string' },
      published_at: DATE,
      restricted_to_uuid: UUID,
      disabled: { const: true },
      files: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          required: ['path', 'sha1', 'size', 'compression', 'url'],
          properties: {
            path: { type: 'string', minLength: 1 },
            sha1: SHA1,
            size: { type: 'integer', minimum: 0 },
            compression: COMPRESSION,
            // base_url may carry a path, for a proxy that serves us under a prefix.
            url: { type: 'string', pattern: '^https?://[^/?#\\s]+(/[^?#\\s]*)?/datasets/' },
          },
        },
      },
    },
    not: { anyOf: [{ required: ['owner'] }, { required: ['v'] }, { required: ['state'] }] },
  },
};

const json = (schema: object, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});
/** The error answers of an operation, by status, each describing the codes it may carry. */
function errorResponses(...codes: ErrorCode[]): Record<number, object> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) byStatus.set(ERROR_TABLE[code].status, [...(byStatus.get(ERROR_TABLE[code].status) ?? []), code]);
  return Object.fromEntries([...byStatus].map(([status, list]) =>
    [status, json(ref('Error'), list.map((c) => `${c}: ${ERROR_TABLE[c].description}`).join(' '))]));
}
const fileResponses = {
  200: { description: 'The file bytes, exactly files[i].size of them', content: { 'application/octet-stream': {} } },
  206: { description: 'One byte range of the file', content: { 'application/octet-stream': {} } },
  304: { description: 'Not modified (If-None-Match / If-Modified-Since)' },
  ...errorResponses('ResourceNotFound', 'RequestedRangeNotSatisfiable'),
};
const uuidParam = { name: 'uuid', in: 'path', required: true, schema: UUID };
const uiRelease = {
  name: 'release', in: 'path', required: true, description: 'the hash of all the files, as the page links them', schema: { type: 'string' },
};
const query = (name: string, description: string) => ({ name, in: 'query', required: false, schema: { type: 'string' }, description });

/** A GET operation, plus the HEAD every GET route answers; every read has a validator, hence 304. */
function read(operationId: string, summary: string, responses: object, parameters: object[] = []) {
  const op = { operationId, summary, parameters, responses: { 304: { description: 'Not modified' }, ...responses } };
  return { get: op, head: { ...op, operationId: `${operationId}Head`, summary: `${summary} (headers only)` } };
}

/** What every write may answer besides its own errors. */
const WRITE_ERRORS: ErrorCode[] = ['UnauthorizedError', 'CrossSiteWrite', 'ResourceNotFound', 'InvalidParameter',
  'ServiceUnavailableError', 'InsufficientStorage'];
const imageReply = (description: string) => ({ 200: json(ref('Image'), description) });
const manifestBody = { required: false, content: { 'application/json': { schema: { type: 'object' } } } };
const actionParam = {
  name: 'action', in: 'query', required: true,
  schema: { enum: ['import', 'activate', 'disable', 'enable', 'update'] },
  description: 'import = AdminImportImage, activate = ActivateImage, disable/enable, update = UpdateImage',
};

/** The write operations; every one needs HTTP Basic or a bearer token. */
const writes = {
  '/images': {
    post: {
      operationId: 'CreateImage',
      summary: 'A new image: a JSON manifest (unactivated), or multipart "manifest" then "file" parts',
      parameters: [query('activate', 'true: publish the multipart upload active'), query('compression', 'multipart: gzip, bzip2, xz or none; detected when absent')],
      requestBody: {
        required: true,
        content: {
          'application/json': { schema: { type: 'object' } },
          'multipart/form-data': { schema: { type: 'object', properties: { manifest: { type: 'string' }, file: { type: 'string', format: 'binary' } } } },
        },
      },
      responses: {
        ...imageReply('The new image'),
        ...errorResponses(...WRITE_ERRORS, 'Upload', 'Download', 'InvalidHeader', 'ImageUuidAlreadyExists',
          'ValidationFailed', 'OriginDoesNotExist'),
      },
    },
  },
  '/images/{uuid}': {
    post: {
      operationId: 'ImageAction',
      summary: 'AdminImportImage, ActivateImage, DisableImage, EnableImage or UpdateImage, by ?action=',
      parameters: [uuidParam, actionParam],
      requestBody: manifestBody,
      responses: {
        ...imageReply('The image after the action'),
        ...errorResponses(...WRITE_ERRORS, 'InvalidHeader', 'ImageUuidAlreadyExists', 'ValidationFailed', 'OriginDoesNotExist',
          'ImageAlreadyActivated', 'NoActivationNoFile'),
      },
    },
    delete: {
      operationId: 'DeleteImage',
      summary: 'Delete an image (refused while another image names it as origin)',
      parameters: [uuidParam],
      responses: { 204: { description: 'Deleted' }, ...errorResponses(...WRITE_ERRORS, 'ImageHasDependentImages') },
    },
  },
  '/images/{uuid}/file': {
    put: {
      operationId: 'AddImageFile',
      summary: 'The raw file of an unactivated image, whatever the Content-Type says',
      parameters: [uuidParam, { ...query('compression', 'gzip, bzip2, xz or none'), required: true },
        query('sha1', 'checked against the bytes'), query('size', 'checked against the bytes')],
      requestBody: { required: true, content: { '*/*': { schema: { type: 'string', format: 'binary' } } } },
      responses: { ...imageReply('The image with its file'), ...errorResponses(...WRITE_ERRORS, 'Upload', 'Download', 'ImageFilesImmutable') },
    },
  },
};

const channelParam = query('channel', 'a configured channel (default: the default channel); * for every channel on reads and DeleteImage');

/**
 * On a server with channels: GET /channels, the `channel` parameter of
 * every image operation, ValidationFailed for an unknown channel, and the
 * channel-add action.
 */
function withChannels(shared: Record<string, Record<string, { parameters?: object[]; responses?: object }>>) {
  // The operations are module constants shared with the document without channels.
  const paths = structuredClone(shared);
  for (const [p, item] of Object.entries(paths)) {
    if (!p.startsWith('/images')) continue;
    for (const op of Object.values(item)) {
      op.parameters = [...(op.parameters ?? []), channelParam];
      op.responses = { ...op.responses, ...errorResponses('ValidationFailed') };
    }
  }
  for (const op of Object.values(paths['/images/{uuid}']!)) {
    if (op.parameters) op.parameters = op.parameters.map((param) => ((param as { name?: string }).name === 'action' ? channelActionParam : param));
  }
  const del = paths['/images/{uuid}']!.delete!;
  del.parameters = [...(del.parameters ?? []), query('force_all_channels', 'true: delete the image from every channel at once')];
  return {
    ...paths,
    '/channels': read('ListChannels', 'The configured channels: name, description, default', {
      200: json({ type: 'array', items: { type: 'object', required: ['name', 'description'] } }, 'The channels'),
    }),
  };
}

const channelActionParam = {
  ...actionParam,
  schema: { enum: [...actionParam.schema.enum, 'channel-add'] },
  description: `${actionParam.description}, channel-add = ChannelAddImage (body {"channel": NAME})`,
};

export function openApiDocument(version: string, opts: { channels?: boolean } = {}) {
  const doc = baseDocument(version);
  return opts.channels ? { ...doc, paths: withChannels(doc.paths) } : doc;
}

function baseDocument(version: string) {
  return {
    openapi: '3.1.0',
    info: {
      title: 'smartos-image-server',
      version,
      description: 'IMGAPI (imgadm source type "imgapi") and DSAPI (type "dsapi") image source for SmartOS.',
    },
    paths: {
      '/': read('Root', 'HTML for browsers, a JSON summary otherwise', {
        200: { description: 'Service summary', content: { 'application/json': { schema: { type: 'object' } }, 'text/html': {} } },
      }),
      '/metrics': read('GetMetrics', 'Prometheus metrics (the metrics key: public, auth or off)', {
        200: { description: 'Prometheus text format', content: { 'text/plain': {} } },
        ...errorResponses('UnauthorizedError'),
      }),
      '/openapi.json': read('GetOpenApi', 'This document', { 200: json({ type: 'object' }, 'OpenAPI 3.1') }),
      '/ping': read('Ping', 'Liveness; imgadm requires imgapi: true', {
        200: json(ref('Ping'), 'pong'),
        ...errorResponses('InvalidParameter'),
      }, [query('error', 'an error code: answer with that error, as sdc-imgapi does for its tests')]),
      '/images': { ...writes['/images'], ...read('ListImages', 'Images sorted by (published_at, uuid)', {
        200: json({ type: 'array', items: ref('Image') }, 'A page of images'),
        ...errorResponses('InvalidParameter'),
      }, [
        query('state', 'active (default), disabled, unactivated, creating, failed or all'),
        query('name', 'exact, or ~substring'), query('version', 'exact, or ~substring'),
        query('type', 'exact, or !excluded'), query('os', 'exact'), query('owner', 'UUID'),
        query('public', 'true or false'), query('tag.KEY', 'tags[KEY] equals the value; repeatable'),
        query('billing_tag', 'repeatable'), query('limit', '1–1000; without it every match is returned'),
        query('marker', 'image UUID or date; inclusive'), query('sort', 'published_at[.asc|.desc]'),
      ]) },
      '/images/{uuid}': { ...writes['/images/{uuid}'], ...read('GetImage', 'One image in any state', {
        200: json(ref('Image'), 'The image'), ...errorResponses('ResourceNotFound'),
      }, [uuidParam]) },
      '/images/{uuid}/file': { ...writes['/images/{uuid}/file'], ...read('GetImageFile', 'The image file (any state: origins must stay fetchable)',
        fileResponses, [uuidParam, query('index', 'which of files[] (default 0)')]) },
      '/ui/{release}/{file}': read('GetUiAsset', 'A static file of the web catalog page; immutable when {release} is the current one', {
        200: { description: 'The file', content: { 'text/javascript': {}, 'text/css': {}, 'image/svg+xml': {} } },
        ...errorResponses('ResourceNotFound'),
      }, [uiRelease, { name: 'file', in: 'path', required: true, schema: { enum: UI_ASSETS.filter((f) => !f.includes('/')) } }]),
      '/ui/{release}/views/{file}': read('GetUiView', 'A view module of the web catalog page; immutable when {release} is the current one', {
        200: { description: 'The module', content: { 'text/javascript': {} } },
        ...errorResponses('ResourceNotFound'),
      }, [uiRelease, {
        name: 'file', in: 'path', required: true,
        schema: { enum: UI_ASSETS.flatMap((f) => (f.startsWith('views/') ? [f.slice('views/'.length)] : [])) },
      }]),
      '/datasets': read('ListDatasets', 'Active images as DSAPI v1 manifests, newest first', {
        200: json({ type: 'array', items: ref('Dataset') }, 'Every active image'),
      }, [query('name', 'exact'), query('version', 'exact'), query('os', 'exact'), query('type', 'exact')]),
      '/datasets/{uuid}': read('GetDataset', 'One image as a DSAPI v1 manifest (active or disabled)', {
        200: json(ref('Dataset'), 'The image'), ...errorResponses('ResourceNotFound'),
      }, [uuidParam]),
      '/datasets/{uuid}/{path}': read('GetDatasetFile', 'A file named by files[].path; "file" is files[0]',
        fileResponses, [uuidParam, { name: 'path', in: 'path', required: true, schema: { type: 'string' } }]),
    },
    components: { schemas },
  };
}
