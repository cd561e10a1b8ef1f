/*
 * mkimg end to end on Linux: stand-in vmadm, zfs, sysinfo and imgadm on
 * PATH, the real ssh client, a real sshd whose key runs the forced command,
 * and the real import-image behind it. What is asserted: the exact zfs
 * commands, the brand → type/requirements mapping in the published
 * manifest, that the file is exactly gzip of what `zfs send` emitted, and
 * the stop/start of a running zone.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { ExecutionContext } from 'ava';
import { tmpDir } from '../helpers/images.js';
import { sshTest, startSshd } from '../ssh/sshd.js';
import { imageDirs, imageFile, readManifest, served, sha1, UUID_LINE } from './kit.js';
import { globalZone, LIVE_IMAGE, type GlobalZone } from './standins.js';

const SNAP = '@mkimg-\\d{8}T\\d{6}Z-\\d+';
const MIN_PLATFORM = { '7.0': LIVE_IMAGE };

async function setup(t: ExecutionContext, config: Record<string, unknown> = {}) {
  const s = served(t, config);
  const sshd = await startSshd(t, s.configFile);
  const gz = globalZone(t, sshd);
  // Four pipe buffers' worth is enough to show the bytes arrive exactly; the
  // failure tests, which cut streams mid-way, keep the stand-in's 3 MB.
  gz.env.ZFS_SEND_BYTES = String(256 * 1024);
  return { s, sshd, gz };
}

/** The zfs and vmadm calls, with the snapshot name made a pattern. */
function calls(gz: GlobalZone): string[] {
  return gz.log().filter((l) => /^(zfs|vmadm) /.test(l));
}

function expectCalls(t: ExecutionContext, gz: GlobalZone, expected: string[]): string {
  const got = calls(gz);
  t.is(got.length, expected.length, got.join('\n'));
  let snapshot = '';
  expected.forEach((pattern, i) => {
    t.regex(got[i] ?? '', new RegExp(`^${pattern}$`), `call ${i}: ${got.join('\n')}`);
    const m = /(\S+@mkimg-\S+)/.exec(got[i] ?? '');
    if (m) {
      if (snapshot) t.is(m[1], snapshot, 'one snapshot name throughout');
      snapshot = m[1]!;
    }
  });
  return snapshot;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Publishes and checks what every successful run shares; returns the manifest. */
async function publish(t: ExecutionContext, s: ReturnType<typeof served>, gz: GlobalZone, args: string[]) {
  const r = await gz.mkimg(args);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, UUID_LINE, 'stdout is the uuid and nothing else');
  const uuid = r.stdout.trim();
  const m = readManifest(s.serveDir, uuid);
  const file = imageFile(s.serveDir, uuid);
  t.true(gunzipSync(file).equals(gz.sent()), 'the published file is gzip of exactly what zfs send emitted');
  t.deepEqual(m.files, [{ sha1: sha1(file), size: file.length, compression: 'gzip' }]);
  t.deepEqual(gz.snapshots(), [], 'the snapshot is destroyed');
  return { uuid, m, stderr: r.stderr };
}

sshTest('joyent, running: stop, snapshot, send, start, destroy; a zone-dataset image', async (t) => {
  const { s, gz } = await setup(t);
  const zone = randomUUID();
  gz.addVm({ uuid: zone, brand: 'joyent', state: 'running', zfs_filesystem: `zones/${zone}` });
  const description = 'it\'s "quoted"; $HOME `id` & | < > * done';
  const { m } = await publish(t, s, gz, [zone, 'base-64', '1.0.0', description]);
  t.like(m, { name: 'base-64', version: '1.0.0', description, type: 'zone-dataset', os: 'smartos', state: 'active' });
  t.deepEqual(m.requirements, { min_platform: MIN_PLATFORM });
  t.is(m.tags, undefined);
  t.is(m.image_size, undefined);
  const z = esc(`zones/${zone}`);
  expectCalls(t, gz, [
    `vmadm get ${zone}`,
    `vmadm stop ${zone}`,
    `vmadm get ${zone}`,
    `zfs snapshot ${z}${SNAP}`,
    `zfs send ${z}${SNAP}`,
    `vmadm start ${zone}`,
    `zfs destroy ${z}${SNAP}`,
  ]);
  t.is(gz.vmState(zone), 'running');
  t.false(gz.log().includes('imgadm update'), 'imgadm update is not the default');
});

sshTest('joyent-minimal, stopped: never started; a zone-dataset image', async (t) => {
  const { s, gz } = await setup(t);
  const zone = randomUUID();
  gz.addVm({ uuid: zone, brand: 'joyent-minimal', state: 'stopped', zfs_filesystem: `zones/${zone}` });
  const { m } = await publish(t, s, gz, [zone, 'minimal', '2.0.0', 'minimal zone']);
  t.like(m, { type: 'zone-dataset', os: 'smartos', requirements: { min_platform: MIN_PLATFORM } });
  const z = esc(`zones/${zone}`);
  expectCalls(t, gz, [`vmadm get ${zone}`, `zfs snapshot ${z}${SNAP}`, `zfs send ${z}${SNAP}`, `zfs destroy ${z}${SNAP}`]);
  t.is(gz.vmState(zone), 'stopped');
});

sshTest('lx: an lx-dataset with requirements.brand and the kernel_version tag, exactly as the zone has it', async (t) => {
  const { s, gz } = await setup(t);
  const zone = randomUUID();
  gz.addVm({ uuid: zone, brand: 'lx', state: 'running', zfs_filesystem: `zones/${zone}`, kernel_version: '4.10' });
  const { m } = await publish(t, s, gz, [zone, 'ubuntu', '24.04', 'lx zone']);
  t.like(m, { type: 'lx-dataset', os: 'linux' });
  t.deepEqual(m.requirements, { brand: 'lx', min_platform: MIN_PLATFORM });
  t.deepEqual(m.tags, { kernel_version: '4.10' }, '4.10 stays 4.10');
  t.is(gz.vmState(zone), 'running');
});

sshTest('lx without a kernel_version is refused before the zone is touched, unless --tag gives one', async (t) => {
  const { s, gz } = await setup(t);
  const zone = randomUUID();
  gz.addVm({ uuid: zone, brand: 'lx', state: 'running', zfs_filesystem: `zones/${zone}` });
  const r = await gz.mkimg([zone, 'lx', '1.0.0', 'd']);
  t.not(r.status, 0);
  t.regex(r.stderr, /has no kernel_version/);
  t.deepEqual(calls(gz), [`vmadm get ${zone}`]);
  const { m } = await publish(t, s, gz, ['--tag', 'kernel_version=5.4.0', zone, 'lx', '1.0.0', 'd']);
  t.deepEqual(m.tags, { kernel_version: '5.4.0' });
});

sshTest('kvm: a zvol from the -disk0 volume, with image_size, drivers, cpu_type and requirements.brand', async (t) => {
  const { s, gz } = await setup(t);
  const zone = randomUUID();
  gz.addVm({
    uuid: zone, brand: 'kvm', state: 'running', zfs_filesystem: `zones/${zone}`, cpu_type: 'host',
    disks: [{ zfs_filesystem: `zones/${zone}-disk0`, model: 'virtio', size: 10240, boot: true }],
    nics: [{ model: 'e1000', mac: '02:00:00:00:00:01' }],
  });
  const { m } = await publish(t, s, gz, ['--os', 'linux', zone, 'centos', '7.0', 'kvm vm']);
  t.like(m, { type: 'zvol', os: 'linux', image_size: 10240, nic_driver: 'e1000', disk_driver: 'virtio', cpu_type: 'host' });
  t.deepEqual(m.requirements, { brand: 'kvm', min_platform: MIN_PLATFORM });
  const d = esc(`zones/${zone}-disk0`);
  expectCalls(t, gz, [
    `vmadm get ${zone}`,
    `zfs get -Hpo value volsize ${d}`,
    `vmadm stop ${zone}`,
    `vmadm get ${zone}`,
    `zfs snapshot ${d}${SNAP}`,
    `zfs send ${d}${SNAP}`,
    `vmadm start ${zone}`,
    `zfs destroy ${d}${SNAP}`,
  ]);
});

sshTest('bhyve: a zvol with requirements.brand and bootrom; drivers from vmadm, cpu_type host by default', async (t) => {
  const { s, gz } = await setup(t);
  const zone = randomUUID();
  gz.addVm({
    uuid: zone, brand: 'bhyve', state: 'stopped', zfs_filesystem: `zones/${zone}`, bootrom: 'uefi',
    nic_driver: 'virtio', disk_driver: 'virtio',
    disks: [{ zfs_filesystem: `zones/${zone}-disk0`, model: 'nvme' }], nics: [{ model: 'e1000' }],
  });
  const { m } = await publish(t, s, gz, [zone, 'debian', '12', 'bhyve vm'], );
  t.like(m, { type: 'zvol', os: 'other', image_size: 10240, nic_driver: 'virtio', disk_driver: 'virtio', cpu_type: 'host' });
  t.deepEqual(m.requirements, { brand: 'bhyve', bootrom: 'uefi', min_platform: MIN_PLATFORM });
  const d = esc(`zones/${zone}-disk0`);
  expectCalls(t, gz, [
    `vmadm get ${zone}`, `zfs get -Hpo value volsize ${d}`,
    `zfs snapshot ${d}${SNAP}`, `zfs send ${d}${SNAP}`, `zfs destroy ${d}${SNAP}`,
  ]);
});

sshTest('--channel is passed through to import-image: the image lands in that channel', async (t) => {
  const { s, gz } = await setup(t, { channels: [{ name: 'release', description: 'r', default: true }, { name: 'dev', description: 'd' }] });
  const zone = randomUUID();
  gz.addVm({ uuid: zone, brand: 'joyent', state: 'stopped', zfs_filesystem: `zones/${zone}` });
  const { m } = await publish(t, s, gz, ['--channel', 'dev', zone, 'chan', '1.0.0', 'into dev']);
  t.deepEqual(m.channels, ['dev']);
  const r = await gz.mkimg(['--channel=nope', zone, 'chan', '1.0.1', 'nowhere']);
  t.not(r.status, 0);
  t.regex(r.stderr, /unknown channel: nope/);
  t.is(imageDirs(s.serveDir).length, 1, 'nothing published into an unknown channel');
});

sshTest('an incremental image: zfs send -i POOL/ORIGIN@final, and origin in the manifest', async (t) => {
  const { s, gz } = await setup(t);
  const baseZone = randomUUID();
  const origin = randomUUID();
  gz.addVm({ uuid: baseZone, brand: 'joyent', state: 'stopped', zfs_filesystem: `zones/${baseZone}` });
  const base = await publish(t, s, gz, ['--uuid', origin, baseZone, 'base', '1.0.0', 'the origin']);
  t.is(base.uuid, origin);
  // imgadm import of the origin left zones/<origin>@final on this host
  gz.addDataset(`zones/${origin}@final`);
  const zone = randomUUID();
  gz.addVm({ uuid: zone, brand: 'joyent', state: 'running', zfs_filesystem: `zones/${zone}` });
  gz.clearLog();
  const { m } = await publish(t, s, gz, ['-i', origin, zone, 'app', '1.0.0', 'on top of base']);
  t.is(m.origin, origin);
  const z = esc(`zones/${zone}`);
  expectCalls(t, gz, [
    `vmadm get ${zone}`,
    `zfs list -H -o name ${esc(`zones/${origin}@final`)}`,
    `vmadm stop ${zone}`,
    `vmadm get ${zone}`,
    `zfs snapshot ${z}${SNAP}`,
    `zfs send -i ${esc(`zones/${origin}@final`)} ${z}${SNAP}`,
    `vmadm start ${zone}`,
    `zfs destroy ${z}${SNAP}`,
  ]);
  // --origin UUID@SNAP picks another snapshot of the origin
  gz.addDataset(`zones/${origin}@v2`);
  gz.clearLog();
  const again = await publish(t, s, gz, ['--origin', `${origin}@v2`, zone, 'app', '1.0.1', 'again']);
  t.is(again.m.origin, origin);
  t.true(calls(gz).some((c) => new RegExp(`^zfs send -i ${esc(`zones/${origin}@v2`)} ${z}${SNAP}$`).test(c)));
});

sshTest('an origin snapshot missing on this host is refused before the zone is touched', async (t) => {
  const { gz } = await setup(t);
  const zone = randomUUID();
  const origin = randomUUID();
  gz.addVm({ uuid: zone, brand: 'joyent', state: 'running', zfs_filesystem: `zones/${zone}` });
  const r = await gz.mkimg(['-i', origin, zone, 'app', '1.0.0', 'd']);
  t.not(r.status, 0);
  t.regex(r.stderr, new RegExp(`the origin snapshot zones/${origin}@final does not exist`));
  t.deepEqual(calls(gz), [`vmadm get ${zone}`, `zfs list -H -o name zones/${origin}@final`]);
  t.is(gz.vmState(zone), 'running');
});

sshTest('--update runs imgadm update afterwards; a failing one is reported after the uuid', async (t) => {
  const { s, gz } = await setup(t);
  const zone = randomUUID();
  gz.addVm({ uuid: zone, brand: 'joyent', state: 'stopped', zfs_filesystem: `zones/${zone}` });
  await publish(t, s, gz, ['--update', zone, 'upd', '1.0.0', 'd']);
  t.is(gz.log().at(-1), 'imgadm update');
  gz.knob('fail-imgadm');
  const r = await gz.mkimg([zone, 'upd', '1.0.1', 'd'], { MKIMG_UPDATE: 'yes' });
  t.is(r.status, 1);
  t.regex(r.stdout, UUID_LINE, 'published all the same');
  t.regex(r.stderr, /is published, but imgadm update failed/);
});

sshTest('settings come from a config file (-f), parsed as data, never run', async (t) => {
  const { s, sshd, gz } = await setup(t);
  const zone = randomUUID();
  gz.addVm({ uuid: zone, brand: 'joyent', state: 'stopped', zfs_filesystem: `zones/${zone}` });
  const dir = tmpDir(t);
  const conf = path.join(dir, 'mkimg.conf');
  fs.writeFileSync(conf, [
    '# where images go',
    'MKIMG_SERVER=127.0.0.1',
    `MKIMG_LOGIN="${sshd.user}"   # the login`,
    `export MKIMG_SSH_OPTS='${sshd.clientOptions.join(' ')}'`,
    'MKIMG_IMPORT=import-image',
    'MKIMG_GZIP="gzip -6"',
    '',
  ].join('\n'));
  const unset = { MKIMG_SERVER: undefined, MKIMG_LOGIN: undefined, MKIMG_SSH_OPTS: undefined, MKIMG_CONFIG: undefined };
  const r = await gz.mkimg(['-f', conf, zone, 'conf', '1.0.0', 'd'], unset);
  t.is(r.status, 0, r.stderr);
  t.deepEqual(imageDirs(s.serveDir), [r.stdout.trim()]);
  // ~/.mkimg.conf is read when no file is named
  fs.copyFileSync(conf, path.join(gz.env.HOME!, '.mkimg.conf'));
  const home = await gz.mkimg([zone, 'conf', '1.0.1', 'd'], unset);
  t.is(home.status, 0, home.stderr);
  // flags beat the environment, which beats the file
  const flags = await gz.mkimg(['-s', '127.0.0.1', zone, 'conf', '1.0.2', 'd'], { ...unset, MKIMG_SERVER: '127.0.0.2' });
  t.is(flags.status, 0, flags.stderr);
  const env = await gz.mkimg([zone, 'conf', '1.0.3', 'd'], { ...unset, MKIMG_SERVER: '127.0.0.2' });
  t.not(env.status, 0, 'the environment beat the file');

  const canary = path.join(dir, 'pwned');
  const hostile: [string, RegExp][] = [
    [`MKIMG_LOGIN=$(touch ${canary})`, /mkimg\.conf:1: MKIMG_LOGIN: put the value in single quotes/],
    [`MKIMG_LOGIN=\`touch ${canary}\``, /:1: MKIMG_LOGIN: put the value in single quotes/],
    [`MKIMG_LOGIN="$(touch ${canary})"`, /:1: MKIMG_LOGIN: put the value in single quotes/],
    [`MKIMG_SERVER=x; touch ${canary}`, /:1: MKIMG_SERVER: put the value in single quotes/],
    [`touch ${canary}`, /:1: expected KEY=VALUE/],
    [`PATH=/tmp/evil`, /:1: unknown setting PATH/],
    [`MKIMG_LOGIN='$(touch ${canary})'`, /not a login name: \$\(touch/],
  ];
  for (const [line, message] of hostile) {
    fs.writeFileSync(conf, `${line}\nMKIMG_SERVER=127.0.0.1\n`);
    const bad = await gz.mkimg(['-f', conf, zone, 'conf', '9.9.9', 'd'], unset);
    t.is(bad.status, 1, line);
    t.regex(bad.stderr, message, line);
    t.false(fs.existsSync(canary), line);
  }
  t.is(imageDirs(s.serveDir).length, 3);
});

sshTest('usage errors and --help', async (t) => {
  const { gz } = await setup(t);
  const help = await gz.mkimg(['--help']);
  t.is(help.status, 0);
  t.regex(help.stdout, /^Usage: mkimg \[options\] ZONE_UUID NAME VERSION DESCRIPTION/);
  for (const args of [[], ['not-a-uuid', 'a', 'b', 'c'], ['--bogus'], ['-s'], [randomUUID(), 'a', 'b']]) {
    const r = await gz.mkimg(args);
    t.is(r.status, 2, args.join(' '));
    t.regex(r.stderr, /^mkimg: /, args.join(' '));
  }
  const noServer = await gz.mkimg([randomUUID(), 'a', '1', 'd'], { MKIMG_SERVER: undefined });
  t.is(noServer.status, 2);
  t.regex(noServer.stderr, /no server/);
  t.deepEqual(gz.log(), []);
});
