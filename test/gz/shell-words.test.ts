/*
 * shellWords: split like a POSIX shell, expand nothing, refuse what a shell
 * would act on. Every accepted case is checked against bash itself too
 * (with expansion made impossible by the refusals), so "like a shell" is
 * measured, not assumed.
 */
import { spawnSync } from 'node:child_process';
import test from 'ava';
import { ShellWordsError, shellWords } from '../../src/cli/shell-words.js';
import { shquote } from '../ssh/sshd.js';

/** What bash makes of `line` as the arguments of a command. */
function bashWords(line: string): string[] {
  const r = spawnSync('bash', ['-c', `for w in ${line}; do printf '%s\\0' "$w"; done`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.split('\0').slice(0, -1);
}

const accepted: [string, string[]][] = [
  ['import-image a 1.0.0 d', ['import-image', 'a', '1.0.0', 'd']],
  ['  leading   and\ttabs  ', ['leading', 'and', 'tabs']],
  ["'single quoted words'", ['single quoted words']],
  ['"double quoted words"', ['double quoted words']],
  ["it'll''be'\"fine\"", ['itllbefine']],
  ["''", ['']],
  ['""', ['']],
  ["a '' b", ['a', '', 'b']],
  ["'it'\\''s'", ["it's"]],
  ["'; rm -rf / && `id` $(id) $x | > < * ? ~ # !'", ['; rm -rf / && `id` $(id) $x | > < * ? ~ # !']],
  ['"a \\"quoted\\" word"', ['a "quoted" word']],
  ['"back\\\\slash"', ['back\\slash']],
  ['"keeps \\n and \\a"', ['keeps \\n and \\a']],
  ['escaped\\ space', ['escaped space']],
  ['\\;\\&\\|\\$\\`', [';&|$`']],
  ['line\\\ncontinued', ['linecontinued']],
  ["'new\nline inside'", ['new\nline inside']],
  ['"new\nline inside"', ['new\nline inside']],
  ['--tag=k=v --requirement brand="lx"', ['--tag=k=v', '--requirement', 'brand=lx']],
  ['min_platform=\'{"7.0":"20240104T000000Z"}\'', ['min_platform={"7.0":"20240104T000000Z"}']],
  ['unicode: déjà vu ✓', ['unicode:', 'déjà', 'vu', '✓']],
  ['', []],
];

for (const [line, words] of accepted) {
  test(`splits ${JSON.stringify(line)}`, (t) => {
    t.deepEqual(shellWords(line), words);
  });
}

test('every accepted line splits as bash splits it', (t) => {
  for (const [line, words] of accepted) {
    t.deepEqual(bashWords(line), words, line);
  }
});

test('inside double quotes $ and backticks are literal (nothing is expanded, unlike a shell)', (t) => {
  t.deepEqual(shellWords('"$HOME $(id) `id` ${x}"'), ['$HOME $(id) `id` ${x}']);
  t.deepEqual(shellWords('"\\$HOME"'), ['$HOME']);
});

test('shquote round-trips any argument, however hostile', (t) => {
  const args = [
    '', ' ', "'", "''", "'\\''", '"', '\\', '$(touch /tmp/x)', '`id`', '; rm -rf /', 'a\nb', 'a\tb',
    "it's \"all\" $x `y` \\z; & | < > * ? ~ # !", 'ünïcödé ✓', '-c', '--config=/x',
  ];
  t.deepEqual(shellWords(args.map(shquote).join(' ')), args);
  t.deepEqual(bashWords(args.map(shquote).join(' ')), args);
});

const refused: [string, RegExp][] = [
  ['a; b', /";" must be quoted/],
  ['a && b', /"&" must be quoted/],
  ['a & b', /"&" must be quoted/],
  ['a | b', /"\|" must be quoted/],
  ['a > f', /">" must be quoted/],
  ['a < f', /"<" must be quoted/],
  ['a $(id)', /"\$" must be quoted/],
  ['a $x', /"\$" must be quoted/],
  ['a `id`', /"`" must be quoted/],
  ['a (b)', /"\(" must be quoted/],
  ['a {b,c}', /"\{" must be quoted/],
  ['a *', /"\*" must be quoted/],
  ['a b?', /"\?" must be quoted/],
  ['a [b]', /"\[" must be quoted/],
  ['~/x', /"~" must be quoted/],
  ['a # comment', /"#" must be quoted/],
  ['!a', /"!" must be quoted/],
  ['a\nb', /a newline must be quoted/],
  ['a\rb', /control characters/],
  ['a\0b', /control characters/],
  ["'open", /unterminated single quote/],
  ['"open', /unterminated double quote/],
  ['"open \\"', /unterminated double quote/],
  ['trailing\\', /a backslash ends the command/],
];

for (const [line, message] of refused) {
  test(`refuses ${JSON.stringify(line)}`, (t) => {
    const err = t.throws(() => shellWords(line), { instanceOf: ShellWordsError });
    t.regex(err!.message, message);
  });
}
