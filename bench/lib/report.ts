// Shared pieces of the results files: the machine description and sections that each benchmark
// rewrites in place, so that several benchmarks can write one results file.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from './proc.js';

/** Table cells: a rounded integer with thousands separators, a fixed-point number, a ratio; 'n/a' when not finite. */
export const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
export const fmtMs = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
export const fmtRatio = (n: number, digits = 2): string => (Number.isFinite(n) ? `${n.toFixed(digits)}×` : 'n/a');

export function commandOutput(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

/** CPU count and model, Node.js, raftlock's version and commit, and the versions of the given tools. */
export function machineFacts(tools: { name: string; version: string }[]): string[] {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const commit = commandOutput('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD']);
  const dirty = commandOutput('git', ['-C', REPO_ROOT, 'status', '--porcelain']) === '' ? '' : ' (with uncommitted changes)';
  return [
    `- CPUs (\`nproc\`): ${commandOutput('nproc', [])}`,
    `- CPU model: ${cpuModel}`,
    `- Node.js: ${process.version}`,
    ...tools.map((t) => `- ${t.name}: ${t.version}`),
    `- raftlock: ${pkg.version}, commit ${commit}${dirty}`,
  ];
}

/** A machine-facts line: the 1-minute load average when the run started (`startLoad`, from loadavg()[0]) and now, as other work on the machine shows in it. */
export function loadFact(startLoad: number): string {
  return `- Load average (1 min, everything on the machine) when the run started: ${startLoad.toFixed(2)}; when it ended: ${loadavg()[0]!.toFixed(2)}`;
}

const begin = (name: string): string => `<!-- section ${name}: written by the benchmark, replaced on its next run -->`;
const end = (name: string): string => `<!-- end of section ${name} -->`;

/**
 * Writes `markdown` as section `name` of `file`: replaces that section if the file has it,
 * else appends it; the rest of the file (other benchmarks' sections) is kept. `title` heads a new file.
 */
export function writeSection(file: string, options: { name: string; title: string; markdown: string; order: string[] }): void {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : `${options.title}\n`;
  const block = `${begin(options.name)}\n\n${options.markdown.trim()}\n\n${end(options.name)}\n`;
  const sections = new Map<string, string>();
  for (const m of text.matchAll(/<!-- section (\S+): [^>]*-->\n[\s\S]*?<!-- end of section \1 -->\n/g)) sections.set(m[1]!, m[0]);
  sections.set(options.name, block);
  const head = text.split(/<!-- section \S+: /, 1)[0]!.trimEnd();
  const named = [...options.order.filter((n) => sections.has(n)), ...[...sections.keys()].filter((n) => !options.order.includes(n))];
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${head}\n\n${named.map((n) => sections.get(n)!).join('\n')}`);
}

/** Writes `markdown` as the head of `file` (all before its sections), keeping the sections other benchmarks wrote there. */
export function writeHead(file: string, markdown: string): void {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const at = text.search(/<!-- section \S+: /);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, at < 0 ? markdown : `${markdown.trimEnd()}\n\n${text.slice(at)}`);
}
