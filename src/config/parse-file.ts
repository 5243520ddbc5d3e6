/**
 * Reads a configuration file and parses it as JSON (.json) or YAML (anything else).
 * Syntax errors are reported as `file:line:column`; nothing from the file's text is quoted,
 * since the line in question may hold a secret.
 */

import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, type ConfigIssue } from './errors.js';

export function parseConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory, not a file' : `cannot read the file (${code ?? 'unknown error'})`;
    throw new ConfigError([{ path: file, message: reason }]);
  }
  return file.toLowerCase().endsWith('.json') ? parseJson(file, text) : parseYaml(file, text);
}

function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const position = /at position (\d+)/.exec(message);
    if (position) {
      const { line, col } = lineAndColumn(text, Number(position[1]));
      const reason = message.replace(/\s*in JSON at position \d+.*$/s, '');
      throw new ConfigError([{ path: `${file}:${line}:${col}`, message: `JSON syntax error: ${reason}` }]);
    }
    // V8 quotes the surrounding text in this form of the message; only its first clause is kept.
    const reason = message.split(/,\s*"/)[0] ?? 'invalid JSON';
    throw new ConfigError([{ path: file, message: `JSON syntax error: ${reason}` }]);
  }
}

function parseYaml(file: string, text: string): unknown {
  const lineCounter = new LineCounter();
  // uniqueKeys: a repeated key is almost always a paste error, and YAML would silently keep the last one.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const issues: ConfigIssue[] = doc.errors.map((error) => {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      return { path: `${file}:${line}:${col}`, message: `YAML syntax error: ${error.message}` };
    });
    throw new ConfigError(issues);
  }
  return doc.toJS();
}

function lineAndColumn(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, col: (before.at(-1)?.length ?? 0) + 1 };
}
