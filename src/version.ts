/* The package version, read once from package.json at the repository root. */
import { readFileSync } from 'node:fs';

export const ROOT_URL = new URL('../../', import.meta.url);

export const VERSION: string = JSON.parse(readFileSync(new URL('package.json', ROOT_URL), 'utf8')).version;
