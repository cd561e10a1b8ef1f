/*
 * Everything the bench creates is registered here, so a normal end, a
 * failure and Ctrl-C all leave the machine as it was: child processes are
 * killed by their own pid (or by the process group we made for them, never
 * by name) and the temp folder is removed.
 *
 * Teardown must also work from an 'exit' handler, where nothing async runs,
 * so the forced path is synchronous: SIGKILL and fs.rmSync.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const children = new Set();
const tempDirs = new Set();
let installed = false;

/** A fresh folder under the OS temp dir that is removed however the bench ends. */
export function makeTempDir(prefix = 'imgsrv-bench-') {
  installSignalHandlers();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/**
 * Tracks a spawned ChildProcess until it exits. `group` says it was spawned
 * detached, so killing -pid also reaches processes it forked (nginx workers).
 */
export function track(child, { group = false } = {}) {
  installSignalHandlers();
  const entry = { child, group };
  children.add(entry);
  child.once('exit', () => children.delete(entry));
  return child;
}

function killNow(entry) {
  const { child, group } = entry;
  try {
    if (group) process.kill(-child.pid, 'SIGKILL');
    else child.kill('SIGKILL');
  } catch {
    // already gone
  }
}

/** Kills every tracked child and removes every temp folder, synchronously. */
export function forceCleanup() {
  for (const entry of children) killNow(entry);
  children.clear();
  for (const dir of tempDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      process.stderr.write(`bench: could not remove ${dir}: ${err.message}\n`);
    }
  }
  tempDirs.clear();
}

function installSignalHandlers() {
  if (installed) return;
  installed = true;
  process.on('exit', forceCleanup);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, cleaning up\n`);
      forceCleanup();
      process.exit(128 + os.constants.signals[signal]);
    });
  }
}
