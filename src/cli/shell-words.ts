/*
 * Splits an SSH_ORIGINAL_COMMAND into words the way a POSIX shell would,
 * honouring single quotes, double quotes and backslashes, but expanding
 * nothing: no variables, no command substitution, no globs. Characters a
 * shell would act on are refused outside quotes, so a command that would
 * mean something else to a shell is never run at all.
 */
const SPECIAL_UNQUOTED = new Set([...';&|<>()$`{}*?[]~!#']);
// Inside double quotes a backslash escapes only these; elsewhere it stays.
const DQ_ESCAPABLE = new Set(['$', '`', '"', '\\', '\n']);

export class ShellWordsError extends Error {}

export function shellWords(command: string): string[] {
  if (/[\0\r]/.test(command)) throw new ShellWordsError('control characters are not allowed');
  const words: string[] = [];
  let word: string | null = null;
  let i = 0;
  const add = (s: string) => {
    word = (word ?? '') + s;
  };
  while (i < command.length) {
    const c = command[i]!;
    if (c === '\n') {
      // To a shell an unquoted newline ends the command, as ";" does.
      throw new ShellWordsError('a newline must be quoted: one command only');
    } else if (c === ' ' || c === '\t') {
      if (word !== null) words.push(word);
      word = null;
      i++;
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1);
      if (end === -1) throw new ShellWordsError('unterminated single quote');
      add(command.slice(i + 1, end));
      i = end + 1;
    } else if (c === '"') {
      i = readDoubleQuoted(command, i + 1, add);
    } else if (c === '\\') {
      if (i + 1 >= command.length) throw new ShellWordsError('a backslash ends the command');
      // backslash-newline continues the line, as in a shell
      if (command[i + 1] !== '\n') add(command[i + 1]!);
      i += 2;
    } else if (SPECIAL_UNQUOTED.has(c)) {
      throw new ShellWordsError(`"${c}" must be quoted (no shell runs here: one command, nothing expanded)`);
    } else {
      add(c);
      i++;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/** Reads up to the closing quote; returns the index after it. */
function readDoubleQuoted(command: string, start: number, add: (s: string) => void): number {
  let i = start;
  let text = '';
  while (i < command.length) {
    const c = command[i]!;
    if (c === '"') {
      add(text);
      return i + 1;
    }
    if (c === '\\' && i + 1 < command.length && DQ_ESCAPABLE.has(command[i + 1]!)) {
      if (command[i + 1] !== '\n') text += command[i + 1];
      i += 2;
      continue;
    }
    text += c;
    i++;
  }
  throw new ShellWordsError('unterminated double quote');
}
