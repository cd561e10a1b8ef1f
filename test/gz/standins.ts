/*
 * A global zone on Linux, for mkimg: stand-in vmadm, zfs, sysinfo and
 * imgadm (small bash scripts first on PATH) that keep their state in a
 * folder and log every call. `zfs send` emits deterministic bytes and keeps
 * a copy, so a test can compare the published file with what was sent.
 *
 * Knobs (files in the state folder): fail-send (zfs send dies half-way,
 * exit 1), hold-send (zfs send stops after its first MiB, of which gzip
 * passes all but 256 KiB on, until a file named release appears or its
 * parent is gone), fail-imgadm. A hold, not a slow pace, gives a test a
 * moment "mid-stream" that no load on the machine can skip.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { tmpDir } from '../helpers/images.js';
import { collect, type Result, type Sshd } from '../ssh/sshd.js';
import { MKIMG } from './kit.js';

const VMADM = `#!/usr/bin/env bash
set -o errexit -o nounset -o pipefail
S=$MKIMG_STANDIN
printf '%s\\n' "vmadm $*" >>"$S/log"
uuid=\${2:-}
case $1 in
get)
    [[ -f $S/vm/$uuid.json ]] || { echo "vmadm: no such VM: $uuid" >&2; exit 1; }
    sed "s/__STATE__/$(cat "$S/vm/$uuid.state")/" "$S/vm/$uuid.json" ;;
stop) echo stopped >"$S/vm/$uuid.state" ;;
start) echo running >"$S/vm/$uuid.state" ;;
*) echo "vmadm stand-in: no $1" >&2; exit 2 ;;
esac
`;

const ZFS = `#!/usr/bin/env bash
set -o errexit -o nounset -o pipefail
S=$MKIMG_STANDIN
printf '%s\\n' "zfs $*" >>"$S/log"
touch "$S/snapshots" "$S/datasets"
last=\${!#}
case $1 in
snapshot)
    if grep -qxF -- "$last" "$S/snapshots"; then echo "cannot create snapshot '$last': dataset already exists" >&2; exit 1; fi
    echo "$last" >>"$S/snapshots" ;;
destroy)
    grep -qxF -- "$last" "$S/snapshots" || { echo "could not find any snapshots to destroy" >&2; exit 1; }
    grep -vxF -- "$last" "$S/snapshots" >"$S/snapshots.new" || true
    mv "$S/snapshots.new" "$S/snapshots" ;;
list)
    if grep -qxF -- "$last" "$S/snapshots" "$S/datasets"; then echo "$last"; else echo "cannot open '$last': dataset does not exist" >&2; exit 1; fi ;;
get) echo "\${ZFS_VOLSIZE:-10737418240}" ;;
send)
    grep -qxF -- "$last" "$S/snapshots" || { echo "cannot open '$last': dataset does not exist" >&2; exit 1; }
    fail=no
    [[ -f $S/fail-send ]] && fail=yes
    [[ -f $S/hold-send ]] && fail=$fail-hold
    seed=\${last%@*}
    [[ $2 == -i ]] && seed="$seed incremental from $3"
    exec node "$S/gen.cjs" "$seed" "\${ZFS_SEND_BYTES:-3000000}" "$fail" "$S/sent.bin" ;;
*) echo "zfs stand-in: no $1" >&2; exit 2 ;;
esac
`;

/** Deterministic bytes from a seed (sha256 in counter mode), also written to a file. */
const GEN = `
const crypto = require('crypto');
const fs = require('fs');
const [seed, size, fail, copy] = process.argv.slice(2);
const total = Number(size);
const blocks = [];
for (let i = 0; i * 32 < total; i++) blocks.push(crypto.createHash('sha256').update(seed + ':' + i).digest());
const bytes = Buffer.concat(blocks).subarray(0, total);
const failing = fail.startsWith('yes');
const pause = new Int32Array(new SharedArrayBuffer(4));
const limit = failing ? total >> 1 : total;
fs.writeFileSync(copy, bytes.subarray(0, limit));
const release = require('path').join(require('path').dirname(copy), 'release');
const parent = process.ppid;
let held = !fail.endsWith('-hold');
for (let at = 0; at < limit; ) {
  at += fs.writeSync(1, bytes, at, Math.min(65536, limit - at));
  while (!held && at >= 1048576) {
    held = fs.existsSync(release) || process.ppid !== parent;
    if (!held) Atomics.wait(pause, 0, 0, 20);
  }
}
if (failing) {
  process.stderr.write('zfs send stand-in: I/O error half-way\\n');
  setTimeout(() => process.exit(1), 200);
}
`;

const SYSINFO = `#!/usr/bin/env bash
printf '%s\\n' "sysinfo $*" >>"$MKIMG_STANDIN/log"
cat <<'EOF'
{
  "Live Image": "20240104T000000Z",
  "System Type": "SunOS",
  "SDC Version": "7.0",
  "Hostname": "gz-stand-in"
}
EOF
`;

const IMGADM = `#!/usr/bin/env bash
printf '%s\\n' "imgadm $*" >>"$MKIMG_STANDIN/log"
[[ ! -f $MKIMG_STANDIN/fail-imgadm ]]
`;

export const LIVE_IMAGE = '20240104T000000Z';

export interface GlobalZone {
  bin: string;
  state: string;
  env: Record<string, string>;
  /** Adds a VM as `vmadm get` shows it; state is kept apart so stop/start change it. */
  addVm(vm: Record<string, unknown> & { uuid: string; state: string }): void;
  vmState(uuid: string): string;
  addDataset(name: string): void;
  snapshots(): string[];
  /** Every call to a stand-in, in order. */
  log(): string[];
  clearLog(): void;
  sent(): Buffer;
  knob(name: 'fail-send' | 'hold-send' | 'release' | 'fail-imgadm', on?: boolean): void;
  mkimg(args: string[], env?: Record<string, string | undefined>): Promise<Result>;
  /** mkimg as a child the test can signal. */
  start(args: string[], env?: Record<string, string | undefined>): { child: ChildProcess; done: Promise<Result> };
}

export function globalZone(t: ExecutionContext, sshd: Sshd): GlobalZone {
  const root = tmpDir(t, 'imgsrv-gz-');
  const bin = path.join(root, 'bin');
  const state = path.join(root, 'state');
  fs.mkdirSync(bin);
  fs.mkdirSync(path.join(state, 'vm'), { recursive: true });
  for (const [name, text] of Object.entries({ vmadm: VMADM, zfs: ZFS, sysinfo: SYSINFO, imgadm: IMGADM })) {
    fs.writeFileSync(path.join(bin, name), text, { mode: 0o755 });
  }
  fs.writeFileSync(path.join(state, 'gen.cjs'), GEN);
  fs.writeFileSync(path.join(state, 'log'), '');
  const home = path.join(root, 'home');
  fs.mkdirSync(home);
  const noConfig = path.join(root, 'empty.conf');
  fs.writeFileSync(noConfig, '# nothing\n');
  // Nothing from the developer's own environment leaks in.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MKIMG_') && k !== 'TRACE'));
  const env: Record<string, string> = {
    ...(base as Record<string, string>),
    PATH: `${bin}:${process.env.PATH}`,
    HOME: home,
    MKIMG_STANDIN: state,
    MKIMG_CONFIG: noConfig,
    MKIMG_SERVER: '127.0.0.1',
    MKIMG_LOGIN: sshd.user,
    MKIMG_SSH_OPTS: sshd.clientOptions.join(' '),
  };
  const file = (name: string) => path.join(state, name);
  const read = (name: string) => (fs.existsSync(file(name)) ? fs.readFileSync(file(name), 'utf8') : '');
  return {
    bin,
    state,
    env,
    addVm(vm) {
      fs.writeFileSync(file(`vm/${vm.uuid}.json`), JSON.stringify({ ...vm, state: '__STATE__' }, null, 2));
      fs.writeFileSync(file(`vm/${vm.uuid}.state`), vm.state);
    },
    vmState: (uuid) => read(`vm/${uuid}.state`).trim(),
    addDataset: (name) => fs.appendFileSync(file('datasets'), `${name}\n`),
    snapshots: () => read('snapshots').split('\n').filter(Boolean),
    log: () => read('log').split('\n').filter(Boolean).map((l) => l.trimEnd()),
    clearLog: () => fs.writeFileSync(file('log'), ''),
    sent: () => fs.readFileSync(file('sent.bin')),
    knob(name, on = true) {
      if (on) fs.writeFileSync(file(name), '');
      else fs.rmSync(file(name), { force: true });
    },
    mkimg(args, extra = {}) {
      return this.start(args, extra).done;
    },
    start(args, extra = {}) {
      const childEnv: Record<string, string> = { ...env };
      for (const [k, v] of Object.entries(extra)) {
        if (v === undefined) delete childEnv[k];
        else childEnv[k] = v;
      }
      const child = spawn(MKIMG, args, { env: childEnv, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      return { child, done: collect(child) };
    },
  };
}
