/*
 * xmllint (Debian's libxml2-utils) as the judge of SMF manifests: well-formed
 * XML, XPath queries, and the element tree (its `du` shell command) checked
 * against the content models of SMF's service_bundle DTD for the elements a
 * manifest like ours uses, so an element out of order, which svccfg import
 * refuses, fails here on Linux too.
 */
import { spawnSync } from 'node:child_process';
import { findTool } from '../helpers/system-tools.js';

export const XMLLINT = findTool('xmllint');

function xmllint(args: string[], input?: string) {
  if (!XMLLINT) throw new Error('xmllint is not installed (apt-get install -y libxml2-utils)');
  return spawnSync(XMLLINT, ['--nonet', ...args], { encoding: 'utf8', input });
}

/** null when xmllint parses the file, else its complaint. */
export function wellFormedError(file: string): string | null {
  const r = xmllint(['--noout', file]);
  return r.status === 0 ? null : `${r.stderr}`.trim() || `xmllint exited ${r.status}`;
}

/** The value of an XPath expression that yields a string, number or boolean (string(), count(), …). */
export function xpath(file: string, expr: string): string {
  const r = xmllint(['--xpath', expr, file]);
  if (r.status !== 0) throw new Error(`xmllint --xpath '${expr}' ${file}: exit ${r.status}: ${r.stderr}`);
  return r.stdout.replace(/\n$/, '');
}

export const xcount = (file: string, expr: string) => Number(xpath(file, `count(${expr})`));

/** Values of one attribute of every node an expression selects, in document order. */
export function xvalues(file: string, nodes: string, attr: string): string[] {
  const n = xcount(file, nodes);
  const out: string[] = [];
  for (let i = 1; i <= n; i++) out.push(xpath(file, `string((${nodes})[${i}]/@${attr})`));
  return out;
}

export interface XmlNode {
  name: string;
  path: string;
  children: XmlNode[];
}

/** The element tree, from `du` in xmllint's shell (two spaces of indent per level). */
export function elementTree(file: string): XmlNode {
  const r = xmllint(['--shell', file], 'du\n');
  if (r.status !== 0) throw new Error(`xmllint --shell ${file}: exit ${r.status}: ${r.stderr}`);
  const root: XmlNode = { name: '#document', path: '', children: [] };
  const stack: { depth: number; node: XmlNode }[] = [{ depth: -1, node: root }];
  for (const line of r.stdout.split('\n')) {
    const m = /^( *)([A-Za-z_][\w.:-]*)$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 2;
    while (stack[stack.length - 1]!.depth >= depth) stack.pop();
    const parent = stack[stack.length - 1]!.node;
    const node: XmlNode = { name: m[2]!, path: `${parent.path}/${m[2]!}`, children: [] };
    parent.children.push(node);
    stack.push({ depth, node });
  }
  return root;
}

/*
 * Content models of the service_bundle DTD (smf(5)'s service_bundle(4)),
 * written as patterns over the space-separated child names. EMPTY and
 * text-only elements have no children.
 */
const seq = (...parts: string[]) => new RegExp(`^${parts.join('')}$`);
const one = (n: string) => `(?:${n} )`;
const opt = (n: string) => `(?:${n} )?`;
const any = (n: string) => `(?:${n} )*`;
const some = (n: string) => `(?:${n} )+`;

export const CONTENT_MODELS: Record<string, RegExp> = {
  '#document': seq(one('service_bundle')),
  service_bundle: seq(any('service')),
  service: seq(
    opt('create_default_instance'), opt('single_instance'), opt('restarter'), any('dependency'), any('dependent'),
    opt('method_context'), any('exec_method'), any('property_group'), any('instance'), opt('stability'), opt('template'),
  ),
  instance: seq(
    opt('restarter'), any('dependency'), any('dependent'), opt('method_context'), any('exec_method'),
    any('property_group'), opt('template'),
  ),
  dependency: seq(any('service_fmri'), opt('stability'), any('(?:propval|property)')),
  dependent: seq(one('service_fmri'), opt('stability'), any('(?:propval|property)')),
  method_context: seq(opt('(?:method_profile|method_credential)'), opt('method_environment')),
  method_environment: seq(some('envvar')),
  exec_method: seq(opt('method_context'), opt('stability'), any('(?:propval|property)')),
  property_group: seq(opt('stability'), any('(?:propval|property)')),
  template: seq(one('common_name'), opt('description'), opt('documentation'), any('pg_pattern')),
  common_name: seq(some('loctext')),
  description: seq(some('loctext')),
  documentation: seq(any('(?:doc_link|manpage)')),
  pg_pattern: seq(opt('common_name'), opt('description'), any('prop_pattern')),
  prop_pattern: seq(
    opt('common_name'), opt('description'), opt('units'), opt('visibility'), opt('cardinality'),
    opt('internal_separators'), opt('values'), opt('constraints'), opt('choices'),
  ),
};
const LEAVES = new Set([
  'create_default_instance', 'single_instance', 'service_fmri', 'method_credential', 'method_profile', 'envvar',
  'propval', 'stability', 'loctext', 'doc_link', 'manpage', 'cardinality', 'visibility', 'units',
]);

/** Every element that breaks its parent's content model, or that SMF does not know. */
export function contentModelErrors(tree: XmlNode): string[] {
  const errors: string[] = [];
  const walk = (node: XmlNode) => {
    const names = node.children.map((c) => `${c.name} `).join('');
    const model = CONTENT_MODELS[node.name];
    if (model) {
      if (!model.test(names)) errors.push(`${node.path || '/'}: children "${names.trim()}" do not match ${model.source}`);
    } else if (LEAVES.has(node.name)) {
      if (node.children.length) errors.push(`${node.path}: must be empty or text, has ${names.trim()}`);
    } else {
      errors.push(`${node.path}: not an element of service_bundle manifests (or not one this check knows)`);
    }
    node.children.forEach(walk);
  };
  walk(tree);
  return errors;
}
