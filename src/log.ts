/*
 * Logging: pino writing bunyan's record format (name, hostname, pid, level
 * 10–60, msg, time as ISO text, v: 0) so the `bunyan` CLI reads our logs.
 * Components and requests get child loggers; nothing here knows secrets, and
 * the redact list keeps credentials out even if a caller logs headers.
 */
import os from 'node:os';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel, dest?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { name: 'image-server', hostname: os.hostname(), pid: process.pid, v: 0 },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      formatters: { level: (_label, number) => ({ level: number }) },
      redact: {
        paths: ['req.headers.authorization', 'headers.authorization', 'password', 'token', '*.password', '*.token'],
        censor: '[redacted]',
      },
    },
    dest ?? pino.destination({ fd: 1, sync: false }),
  );
}
