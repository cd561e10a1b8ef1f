/*
 * mkimg when things go wrong. Whatever stage of `zfs send | gzip | ssh
 * import-image` fails (or mkimg is interrupted), mkimg fails, nothing is
 * published, the snapshot is destroyed and a zone that was running runs
 * again. Problems found before the zone is touched leave it alone.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { waitFor } from '../helpers/server.js';
import { shquote, sshTest, startSshd, type Sshd } from '../ssh/sshd.js';
import { fingerprint, imageDirs, importImage, randomGzip, served, type Served } from './kit.js';
import { globalZone, type GlobalZone } from './standins.js';
import { assertConforms, stagingEntries } from '../helpers/conformance.js';

interface World {
  s: Served;
  sshd: Sshd;
  gz: GlobalZone;
  zone: string;
  before: Record<string, string>;
}

async function world(t: ExecutionContext, config: Record<string, unknown> = {}): Promise<World> {
  const s = served(t, config);
  // An image published earlier: it must come through every failure untouched.
  const first = await importImage(s, ['earlier', '1.0.0', 'already there'], randomGzip());
  t.is(first.status, 0, first.stderr);
  const sshd = await startSshd(t, s.configFile);
  const gz = globalZone(t, sshd);
  const zone = randomUUID();
  gz.addVm({ uuid: zone, brand: 'joyent', state: 'running', zfs_filesystem: `zones/${zone}` });
  return { s, sshd, gz, zone, before: fingerprint(s.serveDir) };
}

function script(gz: GlobalZone, name: string, text: string): string {
  const file = path.join(gz.bin, name);
  fs.writeFileSync(file, `#!/usr/bin/env bash\n${text}\n`, { mode: 0o755 });
  return file;
}

/** After a failed run: nothing published, nothing staged, snapshot gone, zone running. */
async function nothingLeft(t: ExecutionContext, w: World, what: string): Promise<void> {
  // import-image on the far side may still be finding out that its stream was cut.
  await waitFor(() => stagingEntries(w.s.serveDir).length === 0, 10_000);
  t.deepEqual(fingerprint(w.s.serveDir), w.before, `${what}: serve_dir unchanged`);
  assertConforms(t, w.s.serveDir, what);
  t.deepEqual(w.gz.snapshots(), [], `${what}: snapshot destroyed`);
  t.is(w.gz.vmState(w.zone), 'running', `${what}: the zone runs again`);
  const log = w.gz.log();
  const snap = log.find((l) => l.startsWith('zfs snapshot '))?.slice('zfs snapshot '.length);
  if (snap) {
    t.true(log.includes(`zfs destroy ${snap}`), `${what}: zfs destroy ${snap}`);
    t.true(log.includes(`vmadm start ${w.zone}`), what);
  }
}

async function fails(t: ExecutionContext, w: World, what: string, args: string[], env: Record<string, string | undefined>, message: RegExp) {
  const r = await w.gz.mkimg(args, env);
  t.is(r.status, 1, `${what}: ${r.stderr}`);
  t.is(r.stdout, '', what);
  t.regex(r.stderr, message, what);
  await nothingLeft(t, w, what);
  return r;
}

sshTest('zfs send failing half-way: nothing is published, snapshot destroyed, zone started', async (t) => {
  const w = await world(t);
  w.gz.knob('fail-send');
  const r = await fails(t, w, 'zfs send exits 1', [w.zone, 'img', '1.0.0', 'd'], {},
    /zfs send \| gzip \| hash exited 1 0 0: the stream is not sealed/);
  t.regex(r.stderr, /import-image: the stream ended without its seal/, 'the server refused the unsealed stream');
  t.regex(r.stderr, /nothing was published/);
  t.true(w.gz.log().some((l) => /^zfs send zones\/\S+@mkimg-/.test(l)));
});

sshTest('gzip failing: after a complete stream, or killed mid-way', async (t) => {
  const w = await world(t);
  // The nastiest case: every byte is there and valid, but gzip says it failed.
  const late = script(w.gz, 'gzip-fails-late', 'gzip -c "$@"; exit 1');
  await fails(t, w, 'gzip exits 1 after a whole stream', [w.zone, 'img', '1.0.0', 'd'], { MKIMG_GZIP: late },
    /exited 0 1 0: the stream is not sealed/);
  const killed = script(w.gz, 'gzip-killed', 'gzip -c "$@" | head -c 100000\nkill -KILL $$');
  w.gz.clearLog();
  await fails(t, w, 'gzip killed', [w.zone, 'img', '1.0.0', 'd'], { MKIMG_GZIP: killed },
    /exited \d+ 137 0: the stream is not sealed/);
});

sshTest('ssh failing: the connection cut mid-stream, or ssh killed', async (t) => {
  const w = await world(t);
  // Passes the check through, cuts the real stream after 200 kB.
  const cut = script(w.gz, 'ssh-cut', [
    'for a in "$@"; do [[ $a == *--sealed* ]] && { head -c 200000 | ssh "$@"; exit 255; }; done',
    'exec ssh "$@"',
  ].join('\n'));
  await fails(t, w, 'ssh cut', [w.zone, 'img', '1.0.0', 'd'], { MKIMG_SSH: cut }, /nothing was published/);

  w.gz.knob('hold-send');
  const staged = path.join(w.s.serveDir, '.staging');
  const dies = script(w.gz, 'ssh-dies', [
    'for a in "$@"; do',
    '  if [[ $a == *--sealed* ]]; then',
    '    ssh "$@" <&0 &',
    '    pid=$!',
    // once the server has stored part of the stream
    // An import's transaction (<pid>-<uuid>), not the server writing its index snapshot.
    `    until compgen -G '${staged}/*-[0-9a-f]*/*' >/dev/null; do sleep 0.05; done`,
    '    kill -KILL $pid; wait $pid; touch "$MKIMG_STANDIN/release"; exit 255',
    '  fi',
    'done',
    'exec ssh "$@"',
  ].join('\n'));
  w.gz.clearLog();
  await fails(t, w, 'ssh killed', [w.zone, 'img', '1.0.0', 'd'], { MKIMG_SSH: dies }, /nothing was published/);
});

sshTest('import-image refusing mid-stream (too large): nothing published, zone started', async (t) => {
  const w = await world(t, { max_upload_bytes: 1024 * 1024 });
  const r = await fails(t, w, 'too large', [w.zone, 'big', '1.0.0', 'd'], {}, /nothing was published/);
  t.regex(r.stderr, /import-image: the file is larger than the 1048576 bytes allowed/);
});

sshTest('interrupted (SIGTERM, SIGINT, SIGHUP) mid-stream: the stream stops, nothing is published, the trap cleans up', async (t) => {
  const w = await world(t);
  w.gz.knob('hold-send');
  for (const [signal, status] of [['SIGTERM', 143], ['SIGINT', 130], ['SIGHUP', 129]] as const) {
    w.gz.clearLog();
    const { child, done } = w.gz.start([w.zone, 'img', '1.0.0', 'd']);
    await waitFor(() => stagingEntries(w.s.serveDir).some((e) => {
      try {
        return fs.readdirSync(path.join(w.s.serveDir, '.staging', e)).length > 0;
      } catch {
        return false;
      }
    }), 90_000);
    child.kill(signal);
    const r = await done;
    t.is(r.status, status, `${signal}: ${r.stderr}`);
    t.is(r.stdout, '');
    t.regex(r.stderr, /interrupted before the stream was sealed: nothing was published/);
    await nothingLeft(t, w, signal);
  }
});

sshTest('refused before the zone is touched: name taken, server unreachable, missing tools', async (t) => {
  const w = await world(t);
  const untouched = (what: string) => {
    t.false(w.gz.log().some((l) => /^(vmadm stop|vmadm start|zfs snapshot|zfs send)/.test(l)), `${what}: zone untouched`);
    t.is(w.gz.vmState(w.zone), 'running');
    t.deepEqual(fingerprint(w.s.serveDir), w.before);
  };
  let r = await w.gz.mkimg([w.zone, 'earlier', '1.0.0', 'd']);
  t.is(r.status, 1);
  t.regex(r.stderr, /import-image: earlier 1\.0\.0 is already taken by image/);
  t.regex(r.stderr, /--check failed \(see above\); zone \S+ was not touched/);
  untouched('name taken');

  r = await w.gz.mkimg([w.zone, 'img', '1.0.0', 'd'], { MKIMG_SSH_OPTS: w.sshd.clientOptions.join(' ').replace(/-p \d+/, '-p 1') });
  t.is(r.status, 1);
  t.regex(r.stderr, /ssh .*--check failed/);
  untouched('unreachable');

  r = await w.gz.mkimg([w.zone, 'img', '1.0.0', 'd'], { MKIMG_LOGIN: 'nobody' });
  t.is(r.status, 1);
  untouched('wrong login');

  // A PATH without vmadm: mkimg stops before it runs anything.
  const partial = path.join(w.gz.bin, '..', 'partial-bin');
  fs.mkdirSync(partial);
  for (const tool of ['zfs', 'sysinfo', 'imgadm']) fs.symlinkSync(path.join(w.gz.bin, tool), path.join(partial, tool));
  w.gz.clearLog();
  r = await w.gz.mkimg([w.zone, 'img', '1.0.0', 'd'], { PATH: `${partial}:/usr/bin:/bin` });
  t.is(r.status, 1);
  t.regex(r.stderr, /^mkimg: vmadm is not installed or not on PATH \(mkimg runs in the SmartOS global zone\)$/m);
  t.deepEqual(w.gz.log(), []);

  // The forced command refuses anything but import-image, even from mkimg's config.
  r = await w.gz.mkimg([w.zone, 'img', '1.0.0', 'd'], { MKIMG_IMPORT: '/bin/rm' });
  t.is(r.status, 1);
  t.regex(r.stderr, /refused: this key runs only import-image, not "\/bin\/rm"/);
  untouched('another command');

  // A zone neither running nor stopped
  const odd = randomUUID();
  w.gz.addVm({ uuid: odd, brand: 'joyent', state: 'provisioning', zfs_filesystem: `zones/${odd}` });
  r = await w.gz.mkimg([odd, 'img', '1.0.0', 'd']);
  t.is(r.status, 1);
  t.regex(r.stderr, /is provisioning; mkimg needs it running or stopped/);
  const other = randomUUID();
  r = await w.gz.mkimg([other, 'img', '1.0.0', 'd']);
  t.regex(r.stderr, /vmadm get \S+ failed: no such zone on this host/);
  t.deepEqual(w.gz.snapshots(), []);
});

sshTest('the quoting sent over ssh survives hostile names and descriptions', async (t) => {
  const w = await world(t);
  const description = "'; rm -rf / ; echo '$(id)' \"`id`\" \\ && | > *";
  const r = await w.gz.mkimg([w.zone, 'odd name/with slash', '1.0.0', description]);
  t.is(r.status, 0, r.stderr);
  const m = JSON.parse(fs.readFileSync(path.join(w.s.serveDir, r.stdout.trim(), 'manifest.json'), 'utf8'));
  t.is(m.description, description);
  t.is(m.name, 'odd name/with slash');
  t.is(shquote("it's"), "'it'\\''s'");
  t.is(imageDirs(w.s.serveDir).length, 2);
});
