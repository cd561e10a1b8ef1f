/*
 * verify, prune, rollback and `images` as an operator runs them: the real
 * CLI against a serve_dir that a running server is serving.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { tmpDir, v2Manifest, writeImage, type ImageOnDisk } from '../helpers/images.js';
import { startServer, waitFor } from '../helpers/server.js';
import { runCli, writeConfig } from '../cli/spawn.js';

function image(root: string, fields: Record<string, unknown> = {}): ImageOnDisk {
  const bytes = randomBytes(3000);
  return writeImage(root, v2Manifest(bytes, fields), { bytes, md5: true });
}

function cli(t: ExecutionContext, root: string, ...args: string[]) {
  return runCli(t, ['--config', writeConfig(t, { serve_dir: root }), ...args]);
}

function listing(root: string): string[] {
  return fs.readdirSync(root).filter((n) => !n.startsWith('.')).sort();
}

async function state(url: string, uuid: string): Promise<string> {
  return ((await (await fetch(`${url}/images/${uuid}`)).json()) as { state: string }).state;
}

test('verify finds a flipped byte, a truncated file and a missing file; --repair disables exactly those', async (t) => {
  const root = tmpDir(t);
  const good = [image(root), image(root)];
  const flipped = image(root);
  const truncated = image(root);
  const missing = image(root);
  const server = await startServer(t, { serveDir: root });
  const f = path.join(flipped.dir, flipped.fileName);
  const b = fs.readFileSync(f);
  b[1234] = b[1234]! ^ 0xff;
  fs.writeFileSync(f, b);
  fs.truncateSync(path.join(truncated.dir, truncated.fileName), 1000);
  fs.rmSync(path.join(missing.dir, missing.fileName));

  const check = cli(t, root, 'verify');
  t.is(check.status, 1, 'problems make verify fail');
  const reported = check.stdout.split('\n').filter((l) => l.startsWith('CORRUPT ')).map((l) => l.split(' ')[1]).sort();
  t.deepEqual(reported, [flipped.uuid, truncated.uuid, missing.uuid].sort());
  t.is(server.store.get(flipped.uuid)?.manifest.state, 'active', 'verify alone changes nothing');

  const fix = cli(t, root, 'verify', '--repair');
  const disabled = fix.stdout.split('\n').filter((l) => l.startsWith('DISABLED ')).map((l) => l.split(' ')[1]).sort();
  t.deepEqual(disabled, [flipped.uuid, truncated.uuid, missing.uuid].sort());
  for (const img of [flipped, truncated, missing]) {
    const m = JSON.parse(fs.readFileSync(path.join(img.dir, 'manifest.json'), 'utf8')) as { state: string; disabled: boolean };
    t.is(m.state, 'disabled', img.uuid);
    t.true(m.disabled);
    t.true(fs.existsSync(img.dir), 'never deleted');
  }
  for (const img of good) t.is(await state(server.url, img.uuid), 'active');
  await waitFor(async () => (await state(server.url, flipped.uuid)) === 'disabled', 2000);
  t.false((await (await fetch(`${server.url}/datasets`)).json() as { uuid: string }[]).some((d) => d.uuid === flipped.uuid));
});

test('verify --rate limits the reading speed', (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(2_000_000);
  writeImage(root, v2Manifest(bytes), { bytes });
  const started = Date.now();
  t.is(cli(t, root, 'verify', '--rate', '1').status, 0);
  t.true(Date.now() - started >= 1500, 'two MB at one MB/s take about two seconds');
});

function chain(root: string) {
  const at = (minute: number) => new Date(Date.UTC(2024, 0, 1, 0, minute)).toISOString();
  const b1 = image(root, { name: 'base', version: '1', published_at: at(1) });
  const b2 = image(root, { name: 'base', version: '2', published_at: at(2) });
  const c1 = image(root, { name: 'app', version: '1', origin: b1.uuid, published_at: at(3) });
  const c2 = image(root, { name: 'app', version: '2', origin: b1.uuid, published_at: at(4) });
  const c3 = image(root, { name: 'app', version: '3', origin: b2.uuid, published_at: at(5) });
  return { b1, b2, c1, c2, c3 };
}

test('prune --dry-run prints the plan and changes nothing', (t) => {
  const root = tmpDir(t);
  const { b1, c1, c2 } = chain(root);
  const before = listing(root);
  const r = cli(t, root, 'prune', '--keep', '1', '--dry-run');
  t.is(r.status, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n').map((l) => l.split(' ')[2]).sort(), [b1.uuid, c1.uuid, c2.uuid].sort());
  t.deepEqual(listing(root), before);
});

test('prune keeps the N newest active versions and every origin still needed', (t) => {
  const root = tmpDir(t);
  const { b1, b2, c1, c2, c3 } = chain(root);
  t.is(cli(t, root, 'prune', '--keep', '2').status, 0);
  t.deepEqual(listing(root), [b1, b2, c2, c3].map((i) => i.uuid).sort(), 'app 2 still needs base 1');
  t.is(cli(t, root, 'prune', '--keep', '1').status, 0);
  t.deepEqual(listing(root), [b2, c3].map((i) => i.uuid).sort());
  t.true(fs.existsSync(path.join(root, '.deleted', c1.uuid)), 'a pruned uuid is never reused');
});

test('prune never removes an origin of a disabled image, nor anything of another name with --name', (t) => {
  const root = tmpDir(t);
  const { b1, b2, c1, c2, c3 } = chain(root);
  const held = image(root, { name: 'legacy', version: '1', origin: b1.uuid, state: 'disabled', disabled: true });
  t.is(cli(t, root, 'prune', '--keep', '1', '--name', 'base').status, 0);
  t.deepEqual(listing(root), [b1, b2, c1, c2, c3, held].map((i) => i.uuid).sort());
});

test('a bad --keep is refused with one line', (t) => {
  const r = cli(t, tmpDir(t), 'prune', '--keep', '0');
  t.is(r.status, 1);
  t.is(r.stderr, 'image-server: --keep must be a whole number, at least 1\n');
});

test('rollback: disabling the newest makes the previous version the newest for both APIs', async (t) => {
  const root = tmpDir(t);
  const v1 = image(root, { name: 'web', version: '1.0' });
  const v2 = image(root, { name: 'web', version: '2.0' });
  const server = await startServer(t, { serveDir: root, config: { scan_interval_ms: 1000 } });
  const newest = async () => {
    const imgapi = (await (await fetch(`${server.url}/images?name=web`)).json()) as { uuid: string }[];
    const dsapi = (await (await fetch(`${server.url}/datasets?name=web`)).json()) as { uuid: string }[];
    return [imgapi.at(-1)?.uuid, dsapi[0]?.uuid];
  };
  t.deepEqual(await newest(), [v2.uuid, v2.uuid]);
  const r = cli(t, root, 'images', 'disable', v2.uuid);
  t.is(r.status, 0, r.stderr);
  await waitFor(async () => (await newest())[0] === v1.uuid, 2000);
  t.deepEqual(await newest(), [v1.uuid, v1.uuid]);
  t.is(cli(t, root, 'images', 'enable', v2.uuid).status, 0);
  await waitFor(async () => (await newest())[0] === v2.uuid, 2000);
  t.is(cli(t, root, 'images', 'delete', v2.uuid).status, 0);
  await waitFor(async () => (await newest())[0] === v1.uuid, 2000);
});

test('images list, show, and a refused delete of an origin', (t) => {
  const root = tmpDir(t);
  const { b1, c1 } = chain(root);
  const list = cli(t, root, 'images', 'list');
  t.is(list.stdout.trim().split('\n').length, 5);
  t.true(list.stdout.includes(`${c1.uuid}  app  1  active`));
  const shown = JSON.parse(cli(t, root, 'images', 'show', c1.uuid).stdout) as { origin: string };
  t.is(shown.origin, b1.uuid);
  const refused = cli(t, root, 'images', 'delete', b1.uuid);
  t.is(refused.status, 1);
  t.regex(refused.stderr, /is the origin of/);
  t.true(fs.existsSync(b1.dir));
  t.is(cli(t, root, 'images', 'show', '00000000-0000-4000-8000-000000000000').stderr,
    'image-server: no image 00000000-0000-4000-8000-000000000000\n');
});
