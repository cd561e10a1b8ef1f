/*
 * The SMF manifest (smf/image-server.xml) and `image-server smf`, judged by
 * xmllint: well-formed XML, every element svccfg import needs where it needs
 * it (service name, the two dependencies, start/stop/refresh with their
 * timeouts, the credential, the config property, the template), children in
 * the order of the service_bundle DTD, and the values `image-server smf` was
 * given in the right attributes. Then the start method is run the way
 * svc.startd runs it (`/sbin/sh -c "exec <exec>"`, only the manifest's
 * environment, its working directory, %{config/file} expanded), and refresh
 * (SIGHUP) and stop (SIGTERM) do what the manifest's comments promise.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { ExecutionContext } from 'ava';
import { buildConfig } from '../../src/config/config.js';
import { TEMPLATE_DEFAULTS, stopTimeoutFor } from '../../src/cli/smf.js';
import { runCli, writeConfig } from '../cli/spawn.js';
import { REPO_ROOT, tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { waitFor } from '../helpers/server.js';
import { testNeeding } from '../helpers/system-tools.js';
import { XMLLINT, contentModelErrors, elementTree, wellFormedError, xcount, xpath, xvalues } from './xml.js';

const test = testNeeding(XMLLINT, 'xmllint', 'libxml2-utils');
const TEMPLATE = path.join(REPO_ROOT, 'smf', 'image-server.xml');
const ROOT = REPO_ROOT.replace(/\/+$/, '');
/** The SIGTERM drain a config without drain_timeout_ms gets. */
const DEFAULT_DRAIN_S = buildConfig({}, '/nowhere/config.json').drain_timeout_ms / 1000;

const S = '/service_bundle/service';

interface Expected {
  user: string;
  group: string;
  prefix: string;
  config: string;
  node: string;
  /** Seconds the server may drain after SIGTERM: the stop timeout must be longer. */
  drainSeconds: number;
  stopTimeout?: number;
}

/** Everything svccfg needs, and each value where svc.startd will look for it. */
function assertManifest(t: ExecutionContext, file: string, want: Expected): void {
  t.is(wellFormedError(file), null, 'well-formed XML');
  const text = fs.readFileSync(file, 'utf8');
  t.regex(text, /^<\?xml version="1\.0"\?>\n<!DOCTYPE service_bundle SYSTEM "\/usr\/share\/lib\/xml\/dtd\/service_bundle\.dtd\.1">/,
    'the XML declaration and the DOCTYPE svccfg validates against');
  t.deepEqual(contentModelErrors(elementTree(file)), [], 'children in the order of the service_bundle DTD');

  t.is(xpath(file, 'string(/service_bundle/@type)'), 'manifest');
  t.is(xcount(file, S), 1, 'one service');
  t.is(xpath(file, `string(${S}/@name)`), 'site/image-server');
  t.is(xpath(file, `string(${S}/@type)`), 'service');
  t.is(xpath(file, `string(${S}/@version)`), '1');
  t.is(xcount(file, `${S}/instance[@name="default"][@enabled="false"]`), 1, 'instance default, enabled by svcadm enable');

  // Dependencies.
  const dep = (name: string) => `${S}/dependency[@name="${name}"]`;
  t.is(xcount(file, `${S}/dependency`), 2);
  t.is(xpath(file, `string(${dep('network')}/@grouping)`), 'require_all');
  t.is(xpath(file, `string(${dep('network')}/@restart_on)`), 'error');
  t.is(xpath(file, `string(${dep('network')}/@type)`), 'service');
  t.deepEqual(xvalues(file, `${dep('network')}/service_fmri`, 'value'), ['svc:/milestone/network:default']);
  t.is(xpath(file, `string(${dep('filesystem')}/@grouping)`), 'require_all');
  t.is(xpath(file, `string(${dep('filesystem')}/@restart_on)`), 'none');
  t.is(xpath(file, `string(${dep('filesystem')}/@type)`), 'service');
  t.deepEqual(xvalues(file, `${dep('filesystem')}/service_fmri`, 'value'), ['svc:/system/filesystem/local']);

  // Method context: an unprivileged user that may still bind port 80.
  const ctx = `${S}/method_context`;
  t.is(xcount(file, ctx), 1);
  t.is(xpath(file, `string(${ctx}/@working_directory)`), want.prefix);
  t.is(xcount(file, `${ctx}/method_credential`), 1);
  t.is(xpath(file, `string(${ctx}/method_credential/@user)`), want.user);
  t.is(xpath(file, `string(${ctx}/method_credential/@group)`), want.group);
  const privileges = xpath(file, `string(${ctx}/method_credential/@privileges)`).split(',');
  t.true(privileges.includes('basic') && privileges.includes('net_privaddr'), `privileges ${privileges.join(',')}`);
  t.false(privileges.some((p) => p === 'all' || p === 'zone'), 'no more than it needs');
  const env = Object.fromEntries(xvalues(file, `${ctx}/method_environment/envvar`, 'name')
    .map((name) => [name, xpath(file, `string(${ctx}/method_environment/envvar[@name="${name}"]/@value)`)]));
  t.is(env.NODE_ENV, 'production');
  t.is(env.HOME, want.prefix);
  t.true((env.PATH ?? '').split(':').includes('/opt/local/bin'), 'pkgsrc tools on PATH for anything node runs');

  // Methods, each with the attributes svccfg requires.
  const method = (name: string) => `${S}/exec_method[@type="method"][@name="${name}"]`;
  t.deepEqual(xvalues(file, `${S}/exec_method`, 'name').sort(), ['refresh', 'start', 'stop']);
  t.is(xcount(file, `${S}/exec_method[not(@exec) or not(@timeout_seconds) or not(@type) or not(@name)]`), 0);
  for (const name of ['start', 'stop', 'refresh']) {
    t.regex(xpath(file, `string(${method(name)}/@timeout_seconds)`), /^[1-9]\d*$/, `${name} has a finite timeout`);
  }
  const start = xpath(file, `string(${method('start')}/@exec)`);
  t.is(start, `${want.node} ${want.prefix}/dist/src/cli/image-server.js --config %{config/file} serve`,
    'node by its absolute path, the config from the property');
  t.true(path.isAbsolute(start.split(' ')[0]!), 'SMF methods get no /opt/local/bin on PATH');
  t.is(xpath(file, `string(${method('stop')}/@exec)`), ':kill');
  const stopTimeout = Number(xpath(file, `string(${method('stop')}/@timeout_seconds)`));
  t.true(stopTimeout > want.drainSeconds, `stop timeout ${stopTimeout} s outlasts the ${want.drainSeconds} s drain`);
  if (want.stopTimeout !== undefined) t.is(stopTimeout, want.stopTimeout);
  t.is(xpath(file, `string(${method('refresh')}/@exec)`), ':kill -HUP');

  // startd: node runs in the foreground.
  const startd = `${S}/property_group[@name="startd"][@type="framework"]`;
  t.is(xpath(file, `string(${startd}/propval[@name="duration"][@type="astring"]/@value)`), 'child');

  // The config property the start method expands.
  const config = `${S}/property_group[@name="config"][@type="application"]`;
  t.is(xcount(file, config), 1);
  t.is(xpath(file, `string(${config}/propval[@name="file"][@type="astring"]/@value)`), want.config);

  // A template svcs -x can show.
  t.regex(xpath(file, `normalize-space(${S}/template/common_name/loctext[@xml:lang="C"])`), /^SmartOS image server\b/);
  t.true(xpath(file, `normalize-space(${S}/template/description/loctext)`).length > 20);
  t.is(xpath(file, `string(${S}/template/documentation/doc_link[@name="README"]/@uri)`), `file://localhost${want.prefix}/README.md`);
  t.is(xpath(file, `string(${S}/template/pg_pattern[@name="config"]/prop_pattern/@name)`), 'file');

  // Attribute values from the DTD's enumerations.
  t.is(xcount(file, '//dependency[not(@grouping="require_all" or @grouping="require_any" or @grouping="exclude_all" or @grouping="optional_all")]'), 0);
  t.is(xcount(file, '//dependency[not(@restart_on="error" or @restart_on="restart" or @restart_on="refresh" or @restart_on="none")]'), 0);
  t.is(xcount(file, '//propval[not(@name) or not(@type) or not(@value)]'), 0);
  t.is(xcount(file, '//property_group[not(@name) or not(@type)]'), 0);
  t.is(xcount(file, '//envvar[not(@name) or not(@value)]'), 0);
  t.is(xcount(file, '//loctext[not(@xml:lang)]'), 0);
}

function generate(t: ExecutionContext, args: string[]): { file: string; xml: string; stderr: string } {
  const r = runCli(t, ['smf', ...args]);
  t.is(r.status, 0, r.stderr);
  const file = path.join(tmpDir(t, 'imgsrv-smf-'), 'image-server.xml');
  fs.writeFileSync(file, r.stdout);
  return { file, xml: r.stdout, stderr: r.stderr };
}

test('smf/image-server.xml is a complete manifest for the default install', (t) => {
  assertManifest(t, TEMPLATE, {
    user: TEMPLATE_DEFAULTS.user,
    group: TEMPLATE_DEFAULTS.group,
    prefix: TEMPLATE_DEFAULTS.prefix,
    config: TEMPLATE_DEFAULTS.config,
    node: TEMPLATE_DEFAULTS.node,
    drainSeconds: DEFAULT_DRAIN_S,
    stopTimeout: TEMPLATE_DEFAULTS.stopTimeout,
  });
});

test('image-server smf puts every option in its attribute, and nothing else changes', (t) => {
  const config = writeConfig(t, {});
  const prefix = tmpDir(t, 'imgsrv-prefix-');
  const node = '/usr/local/node-v22/bin/node';
  const { file, xml, stderr } = generate(t, ['--user', 'U', '--group', 'G', '--prefix', prefix, '--config', config, '--node', node]);
  t.is(stderr, '');
  assertManifest(t, file, { user: 'U', group: 'G', prefix, config, node, drainSeconds: DEFAULT_DRAIN_S, stopTimeout: 60 });
  // Outside the values it was given (and the comments, which describe the
  // default install), the output is the template.
  const template = fs.readFileSync(TEMPLATE, 'utf8');
  const neutral = (s: string, values: string[]) =>
    values.reduce((acc, v) => acc.replaceAll(v, '<V>'), s.replace(/<!--[\s\S]*?-->/g, ''));
  t.is(
    neutral(xml, [config, prefix, node, 'user="U"', 'group="G"']),
    neutral(template, [TEMPLATE_DEFAULTS.config, TEMPLATE_DEFAULTS.prefix, TEMPLATE_DEFAULTS.node, 'user="imgserver"', 'group="imgserver"']),
  );
  // --config may come before the subcommand too (it is the program's option).
  const before = runCli(t, ['--config', config, 'smf', '--user', 'U', '--group', 'G', '--prefix', prefix, '--node', node]);
  t.is(before.status, 0, before.stderr);
  t.is(before.stdout, xml);
});

test('image-server smf without options: this install, its config.json, pkgsrc node, user imgserver', (t) => {
  const { file } = generate(t, []);
  assertManifest(t, file, {
    user: 'imgserver',
    group: 'imgserver',
    prefix: ROOT,
    config: path.join(ROOT, 'config.json'),
    node: '/opt/local/bin/node',
    drainSeconds: DEFAULT_DRAIN_S,
  });
  // --user alone: the group of the same name, as useradd/groupadd make them.
  const { file: other } = generate(t, ['--user', 'images']);
  t.is(xpath(other, `string(${S}/method_context/method_credential/@group)`), 'images');
  // --prefix alone: the config in it.
  const { file: moved } = generate(t, ['--prefix', '/srv/imgs/']);
  t.is(xpath(moved, `string(${S}/property_group[@name="config"]/propval[@name="file"]/@value)`), '/srv/imgs/config.json');
  t.is(xpath(moved, `string(${S}/method_context/@working_directory)`), '/srv/imgs');
});

test('image-server smf: the stop timeout outlasts the configured drain', (t) => {
  const config = writeConfig(t, { drain_timeout_ms: 90_000 });
  const { file } = generate(t, ['--config', config]);
  assertManifest(t, file, {
    user: 'imgserver', group: 'imgserver', prefix: ROOT, config, node: '/opt/local/bin/node', drainSeconds: 90, stopTimeout: 120,
  });
  t.is(stopTimeoutFor(0), 60);
  t.is(stopTimeoutFor(20_000), 60);
  t.is(stopTimeoutFor(45_500), 76);
  // An unreadable config: the default drain, and a warning that says so.
  const missing = generate(t, ['--config', '/nonexistent/config.json']);
  t.regex(missing.stderr, /cannot read config \/nonexistent\/config\.json.*default drain of 20 s/);
  t.is(xpath(missing.file, `string(${S}/exec_method[@name="stop"]/@timeout_seconds)`), '60');
});

test('image-server smf -o FILE writes the same manifest; relative paths become absolute', (t) => {
  const dir = tmpDir(t, 'imgsrv-smf-');
  const out = path.join(dir, 'image-server.local.xml');
  const a = runCli(t, ['smf', '--prefix', '/opt/x', '-o', out]);
  t.is(a.status, 0, a.stderr);
  t.is(a.stdout, '');
  const b = runCli(t, ['smf', '--prefix', '/opt/x']);
  t.is(fs.readFileSync(out, 'utf8'), b.stdout);
  t.is(wellFormedError(out), null);
  // runCli runs in a fresh temp folder: a relative --config resolves there.
  const rel = runCli(t, ['smf', '--config', 'etc/config.json']);
  t.is(rel.status, 0, rel.stderr);
  const file = path.join(dir, 'rel.xml');
  fs.writeFileSync(file, rel.stdout);
  const value = xpath(file, `string(${S}/property_group[@name="config"]/propval[@name="file"]/@value)`);
  t.true(path.isAbsolute(value) && value.endsWith('/etc/config.json'), value);
});

test('image-server smf refuses values that the start method could not carry', (t) => {
  for (const [args, pattern] of [
    [['--prefix', '/opt/my images'], /--prefix .*only letters/],
    [['--config', '/etc/$(reboot).json'], /--config .*only letters/],
    [['--node', '/opt/local/bin/node;rm'], /--node .*only letters/],
    [['--config', '/etc/image-server/%{start/exec}'], /--config .*only letters/],
    [['--user', 'bad user'], /--user "bad user" is not a user or group name/],
    [['--group', '"><x/>'], /--group .* is not a user or group name/],
  ] as const) {
    const r = runCli(t, ['smf', ...args]);
    t.is(r.status, 1, args.join(' '));
    t.regex(r.stderr, pattern);
    t.is(r.stdout, '', 'no partial manifest');
  }
});

/* --- the methods, run as svc.startd runs them ---------------------------- */

/** The manifest's environment, exactly: svc.startd passes nothing else (but SMF_* variables). */
function methodEnvironment(file: string): Record<string, string> {
  const env: Record<string, string> = { SMF_FMRI: 'svc:/site/image-server:default', SMF_METHOD: 'start' };
  for (const name of xvalues(file, `${S}/method_context/method_environment/envvar`, 'name')) {
    env[name] = xpath(file, `string(${S}/method_context/method_environment/envvar[@name="${name}"]/@value)`);
  }
  return env;
}

/** %{pg/prop} tokens, from the service's property groups (svc.startd's token expansion, for what we use). */
function expandTokens(file: string, exec: string): string {
  return exec.replace(/%\{([\w-]+)\/([\w-]+)\}/g, (_all, pg: string, prop: string) => {
    const value = xpath(file, `string(${S}/property_group[@name="${pg}"]/propval[@name="${prop}"]/@value)`);
    if (!value) throw new Error(`%{${pg}/${prop}} is not a property of the manifest`);
    return value;
  }).replace(/%[{a-zA-Z%]/, (m) => {
    throw new Error(`unexpanded token ${m} in ${exec}`);
  });
}

test.serial('the generated start, refresh and stop methods work as svc.startd runs them', async (t) => {
  const serveDir = tmpDir(t);
  const config = writeConfig(t, {
    listen_port: 0,
    listen_address: '127.0.0.1',
    serve_dir: serveDir,
    // Only a rescan (the refresh method's SIGHUP) finds new images.
    scan_interval_ms: 3_600_000,
    full_scan_interval_ms: 3_600_000,
  });
  const user = os.userInfo();
  const { file } = generate(t, ['--user', user.username, '--prefix', ROOT, '--config', config, '--node', process.execPath]);

  const exec = expandTokens(file, xpath(file, `string(${S}/exec_method[@name="start"]/@exec)`));
  const cwd = xpath(file, `string(${S}/method_context/@working_directory)`);
  t.is(cwd, ROOT);
  const env = methodEnvironment(file);
  t.false('IMAGE_SERVER_CONFIG' in env);
  // The run's marker (scripts/run-tests) comes along, so a server left running is found and killed.
  const marker = process.env.IMGSRV_TEST_RUN ? { IMGSRV_TEST_RUN: process.env.IMGSRV_TEST_RUN } : {};
  const proc = spawn('/bin/sh', ['-c', `exec ${exec}`], { cwd, env: { ...env, ...marker }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  });
  let stderr = '';
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const logs: Record<string, unknown>[] = [];
  const where = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      const rec = JSON.parse(line) as Record<string, unknown>;
      logs.push(rec);
      if (rec.msg === 'listening') resolve(String(rec.where));
    });
    void exited.then((code) => reject(new Error(`the start method exited ${code}: ${stderr}`)));
  });
  // `exec` in sh -c: node is the process startd watches, so :kill signals reach it.
  const listening = logs.find((l) => l.msg === 'listening')!;
  t.is(listening.pid, proc.pid, 'the start method process is node itself');
  t.is(listening.serve_dir, serveDir, 'the config came from %{config/file}');
  t.is((await fetch(`${where}/ping`)).status, 200);

  // refresh: `:kill -HUP` rescans serve_dir, and the server keeps running.
  const bytes = randomBytes(2048);
  const img = writeImage(serveDir, v2Manifest(bytes), { bytes, md5: true });
  t.is((await fetch(`${where}/images/${img.uuid}`)).status, 404, 'not found before the refresh');
  proc.kill('SIGHUP');
  await waitFor(async () => (await fetch(`${where}/images/${img.uuid}`)).status === 200, 5000);
  t.is(proc.exitCode, null, 'still running after the refresh');

  // stop: `:kill` (SIGTERM) ends it with status 0 well within the stop timeout.
  const stopTimeout = Number(xpath(file, `string(${S}/exec_method[@name="stop"]/@timeout_seconds)`));
  const started = Date.now();
  proc.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([exited, new Promise((r) => (timer = setTimeout(() => r('timeout'), stopTimeout * 1000)))]);
  clearTimeout(timer);
  t.is(code, 0, 'exit 0: svc.startd sees a clean stop');
  t.true(Date.now() - started < stopTimeout * 1000);
});
