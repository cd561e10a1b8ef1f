/*
 * Debian programs some tests drive for real (xmllint, nginx). A developer
 * without one gets those tests skipped, with the package to install in the
 * title; under CI (CI=true) a missing program is a failure, never a skip,
 * so a green CI run has really run them.
 */
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';

export const IN_CI = ['true', '1', 'yes'].includes((process.env.CI ?? '').toLowerCase());

/** The absolute path of `name` on PATH or in the sbin folders (nginx lives in /usr/sbin), or undefined. */
export function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

type Impl = (t: ExecutionContext) => Promise<void> | void;
export interface ToolTest {
  (title: string, impl: Impl): void;
  serial(title: string, impl: Impl): void;
}

/**
 * `test` when the program is there; otherwise a skip (or, under CI, a
 * failing test that says which Debian package to install).
 */
export function testNeeding(tool: string | undefined, name: string, debianPackage: string): ToolTest {
  if (tool) {
    return Object.assign((title: string, impl: Impl) => test(title, impl), {
      serial: (title: string, impl: Impl) => test.serial(title, impl),
    });
  }
  const message = `${name} is not installed: apt-get install -y ${debianPackage}`;
  if (IN_CI) {
    return Object.assign((title: string) => test(title, (t) => t.fail(message)), {
      serial: (title: string) => test.serial(title, (t) => t.fail(message)),
    });
  }
  return Object.assign((title: string, impl: Impl) => test.skip(`${title} (${message})`, impl), {
    serial: (title: string, impl: Impl) => test.serial.skip(`${title} (${message})`, impl),
  });
}
