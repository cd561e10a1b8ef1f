/*
 * What the web catalog's browser tests share: Debian's chromium driven
 * headless by playwright-core (no downloaded browser), a fresh profile per
 * test, every request the page makes recorded, page errors collected, a
 * generated catalog of images on disk, and the test output folder.
 *
 * A developer without /usr/bin/chromium gets the tests skipped, with the
 * package to install in the title; under CI (CI=true) a missing chromium is
 * a failure, never a skip.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { REPO_ROOT, sha1, writeImage } from '../helpers/images.js';
import { OPERATOR } from '../helpers/server.js';

/* Names that exist inside the page, where the page.evaluate() callbacks run. */
declare const document: any;
declare const window: any;
type HTMLElement = any;

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const IN_CI = ['true', '1', 'yes'].includes((process.env.CI ?? '').toLowerCase());
/** Screenshots and timings (gitignored). */
export const OUT_DIR = path.join(REPO_ROOT, 'test-output', 'web');

type Impl = (t: ExecutionContext) => Promise<void>;

function chromiumThere(): boolean {
  try {
    fs.accessSync(CHROMIUM, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `test.serial` when chromium is installed; a skip, or under CI a failure, when it is not. */
export function browserTest(title: string, impl: Impl): void {
  if (chromiumThere()) {
    test.serial(title, impl);
    return;
  }
  const message = `${CHROMIUM} is not installed: apt-get install -y chromium`;
  if (IN_CI) test.serial(title, (t) => t.fail(message));
  else test.serial.skip(`${title} (${message})`, impl);
}

export interface Browsing {
  context: BrowserContext;
  page: Page;
  /** Every URL the browser requested, in order. */
  requests: string[];
  /** Uncaught exceptions and console errors other than failed API answers. */
  errors: string[];
}

/** A headless chromium with a fresh profile, closed when the test ends. */
export async function openBrowser(
  t: ExecutionContext,
  opts: { viewport?: { width: number; height: number }; httpCredentials?: { username: string; password: string } } = {},
): Promise<Browsing> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'imgsrv-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: opts.viewport ?? { width: 1280, height: 800 },
    ...(opts.httpCredentials ? { httpCredentials: opts.httpCredentials } : {}),
  });
  t.teardown(async () => {
    await context.close().catch(() => undefined);
    fs.rmSync(profile, { recursive: true, force: true });
  });
  const requests: string[] = [];
  const errors: string[] = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    // A refused API call is logged by chromium as a failed resource: expected in the refusal tests.
    if (msg.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text())) {
      errors.push(`console: ${msg.text()}`);
    }
  });
  return { context, page, requests, errors };
}

/** Every request went to `origin` and nowhere else (no CDN, font, update check …). */
export function assertOnlyOrigin(t: ExecutionContext, requests: string[], origin: string): void {
  t.true(requests.length > 0, 'the page made requests');
  const foreign = requests.filter((u) => !u.startsWith(`${origin}/`));
  t.deepEqual(foreign, [], `requests to other hosts than ${origin}`);
}

export function outFile(name: string): string {
  fs.mkdirSync(OUT_DIR, { recursive: true });
  return path.join(OUT_DIR, name);
}

/** Waits until the catalog has loaded (or failed) and drawn itself. */
export async function catalogReady(page: Page): Promise<void> {
  await page.waitForFunction(() => document.body.dataset.catalog === 'ready' && (window as any).imageServerCatalog !== undefined);
}

/** Opens the catalog at `url` and signs in as the test servers' operator through the dialog. */
export async function signIn(b: Browsing, url: string): Promise<void> {
  await b.page.goto(`${url}/`);
  await catalogReady(b.page);
  await b.page.click('#signin-button');
  await b.page.fill('#signin-user', OPERATOR.user);
  await b.page.fill('#signin-password', OPERATOR.password);
  await b.page.click('#signin-submit');
  await b.page.waitForSelector('#upload-link:not([hidden])');
}

/** The numbers the catalog's status line carries: images matching, and all images. */
export async function counts(page: Page): Promise<{ count: number; total: number }> {
  return page.$eval('#catalog-status', (el) => ({
    count: Number((el as HTMLElement).dataset.count),
    total: Number((el as HTMLElement).dataset.total),
  }));
}

/** The uuids of the rows drawn now, in order. */
export function drawnRows(page: Page): Promise<{ uuid: string; name: string; version: string; os: string; type: string; state: string }[]> {
  return page.$$eval('#catalog-table tbody tr.row', (rows) => rows.map((tr) => {
    const text = (cls: string) => (tr.querySelector(`td.${cls}`)?.textContent ?? '').trim();
    return {
      uuid: (tr as HTMLElement).dataset.uuid ?? '',
      name: (tr.querySelector('td.name a')?.textContent ?? '').trim(),
      version: text('version'),
      os: text('os'),
      type: text('type'),
      state: text('state'),
    };
  }));
}

/* --- a generated catalog ------------------------------------------------- */

export interface CatalogImage {
  uuid: string;
  name: string;
  version: string;
  os: string;
  type: string;
  state: string;
  public: boolean;
  published_at: string;
  description: string;
  sha1: string;
  size: number;
  origin?: string;
}

const FAMILIES: { name: string; os: string; type: string; what: string }[] = [
  { name: 'base-64', os: 'smartos', type: 'zone-dataset', what: 'SmartOS base zone, 64-bit pkgsrc' },
  { name: 'base-64-lts', os: 'smartos', type: 'zone-dataset', what: 'SmartOS base zone, long-term support pkgsrc' },
  { name: 'minimal-64', os: 'smartos', type: 'zone-dataset', what: 'Minimal SmartOS zone' },
  { name: 'pkgbuild', os: 'smartos', type: 'zone-dataset', what: 'pkgsrc package build zone' },
  { name: 'ubuntu-22.04', os: 'linux', type: 'lx-dataset', what: 'Ubuntu 22.04 LTS container' },
  { name: 'ubuntu-24.04', os: 'linux', type: 'lx-dataset', what: 'Ubuntu 24.04 LTS container' },
  { name: 'debian-12', os: 'linux', type: 'lx-dataset', what: 'Debian 12 (bookworm) container' },
  { name: 'alpine-3', os: 'linux', type: 'lx-dataset', what: 'Alpine Linux container' },
  { name: 'ubuntu-kvm', os: 'linux', type: 'zvol', what: 'Ubuntu server for bhyve and KVM' },
  { name: 'debian-kvm', os: 'linux', type: 'zvol', what: 'Debian server for bhyve and KVM' },
  { name: 'rocky-9', os: 'linux', type: 'zvol', what: 'Rocky Linux 9 for bhyve' },
  { name: 'freebsd-14', os: 'bsd', type: 'zvol', what: 'FreeBSD 14 for bhyve' },
  { name: 'openbsd-7', os: 'bsd', type: 'zvol', what: 'OpenBSD 7 for bhyve' },
  { name: 'windows-2022', os: 'windows', type: 'zvol', what: 'Windows Server 2022 evaluation' },
  { name: 'omnios-r151', os: 'illumos', type: 'zvol', what: 'OmniOS for bhyve' },
  { name: 'nginx-edge', os: 'smartos', type: 'zone-dataset', what: 'Web front with nginx' },
  { name: 'postgresql-16', os: 'smartos', type: 'zone-dataset', what: 'PostgreSQL 16 database zone' },
  { name: 'redis', os: 'linux', type: 'docker', what: 'Redis cache' },
  { name: 'fifo-aio', os: 'smartos', type: 'zone-dataset', what: 'project-fifo all in one' },
  { name: 'java-21', os: 'smartos', type: 'zone-dataset', what: 'OpenJDK 21 runtime zone' },
];

/**
 * Writes `n` images into serve_dir `root`: 20 families with many versions
 * each (year.quarter.build, as SmartOS images are numbered), published at
 * distinct times (so the newest is known), files of 1 to 48 KiB, mostly
 * active, some disabled, unactivated or private, and a three-long origin
 * chain.
 */
export function writeCatalog(root: string, n: number): CatalogImage[] {
  const images: CatalogImage[] = [];
  const start = Date.parse('2019-01-07T09:00:00.000Z');
  const span = Date.parse('2025-06-30T00:00:00.000Z') - start;
  const pool = randomBytes(48 * 1024);
  const builds = new Map<string, number>();
  const files = new Map<string, Buffer>();
  for (let i = 0; i < n; i += 1) {
    const family = FAMILIES[i % FAMILIES.length]!;
    const when = new Date(start + Math.floor((span * i) / n) + (i % 7) * 60_000);
    const quarter = `${when.getUTCFullYear() % 100}.${Math.floor(when.getUTCMonth() / 3) + 1}`;
    const build = builds.get(`${family.name} ${quarter}`) ?? 0;
    builds.set(`${family.name} ${quarter}`, build + 1);
    const version = `${quarter}.${build}`;
    const k = Math.floor(i / FAMILIES.length);
    const bytes = pool.subarray(0, 1024 + ((i * 7919) % (47 * 1024)));
    const state = i % 23 === 5 ? 'disabled' : i % 31 === 7 ? 'unactivated' : 'active';
    const image: CatalogImage = {
      uuid: randomUUID(),
      name: family.name,
      version,
      os: family.os,
      type: family.type,
      state,
      public: i % 17 !== 3,
      published_at: when.toISOString(),
      description: `${family.what}, build ${k}`,
      sha1: sha1(bytes),
      size: bytes.length,
    };
    images.push(image);
    files.set(image.uuid, bytes);
  }
  // base-64-lts: its three newest builds form an origin chain, newest on top.
  const lts = images.filter((m) => m.name === 'base-64-lts' && m.state === 'active' && m.public).slice(-3);
  if (lts.length === 3) {
    lts[1]!.origin = lts[0]!.uuid;
    lts[2]!.origin = lts[1]!.uuid;
  }
  for (const image of images) {
    const unactivated = image.state === 'unactivated';
    const manifest: Record<string, unknown> = {
      v: 2,
      uuid: image.uuid,
      owner: '930896af-bf8c-48d4-885c-6573a94b1853',
      name: image.name,
      version: image.version,
      state: image.state,
      disabled: image.state === 'disabled',
      public: image.public,
      type: image.type,
      os: image.os,
      files: unactivated ? [] : [{ sha1: image.sha1, size: image.size, compression: 'none' }],
      description: image.description,
    };
    if (!unactivated) manifest.published_at = image.published_at;
    if (image.origin) manifest.origin = image.origin;
    // What imgmanifest requires of a zvol, which the server holds every folder to.
    if (image.type === 'zvol') Object.assign(manifest, { requirements: { brand: 'bhyve' }, image_size: 10240, nic_driver: 'virtio', disk_driver: 'virtio', cpu_type: 'host' });
    if (image.type === 'docker') manifest.tags = { 'docker:repo': 'library/redis', 'docker:id': `sha256:${sha1(image.uuid)}${sha1(image.uuid).slice(0, 24)}` };
    writeImage(root, manifest, { bytes: files.get(image.uuid)!, fileName: 'file0.zfs', md5: true });
  }
  return images;
}
