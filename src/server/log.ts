/**
 * Structured logs on pino: one JSON line per event on stderr, written synchronously (a line logged
 * just before the process exits is not lost), never one per command:
 * {"level":"info","time":"2025-01-01T00:00:00.000Z","node":"n1",...fields,"msg":"..."}.
 */
import pino from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** write: where each line goes (default: stderr). */
export function createLogger(options: { level: LogLevel | 'silent'; nodeId: string; write?: (line: string) => void }): Logger {
  const destination: pino.DestinationStream = options.write === undefined ? pino.destination({ dest: 2, sync: true }) : { write: options.write };
  const log = pino({
    level: options.level,
    base: { node: options.nodeId },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }), log: bigintsAsStrings },
  }, destination);
  const at = (level: LogLevel) => (msg: string, fields?: Record<string, unknown>): void => {
    if (fields === undefined) log[level](msg);
    else log[level](fields, msg);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Bigint fields (fencing tokens, say) as decimal strings: JSON numbers would lose their precision. */
function bigintsAsStrings(fields: Record<string, unknown>): Record<string, unknown> {
  if (!Object.values(fields).some((v) => typeof v === 'bigint')) return fields;
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, typeof v === 'bigint' ? v.toString() : v]));
}

const ignore = (): void => undefined;

export const SILENT: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };
