/*
 * How much CPU the rest of the machine used while the bench ran. On a
 * 2-core box another job (a test suite, a build) skews every figure, so the
 * report states it instead of leaving the reader to guess.
 *
 * Machine CPU comes from /proc/stat (user + nice + system); the bench's own
 * from /proc/self/stat, whose cutime/cstime include every child it has
 * reaped (our server, nginx and its worker, wrk, curl), so read it after
 * they have all exited. Interrupt time is left out on both sides, since the
 * kernel may charge loopback traffic to either.
 */
import fs from 'node:fs';
import os from 'node:os';

const TICK = 100; // USER_HZ: 100 on every Linux we run on

function machineTicks() {
  const [user, nice, system] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 4).map(Number);
  return user + nice + system;
}

function ownTicks() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14–17 of proc(5) (utime stime cutime cstime), counted after "pid (comm)".
  return f.slice(11, 15).map(Number).reduce((a, b) => a + b, 0);
}

export function cpuMark() {
  return { machine: machineTicks(), own: ownTicks(), at: Date.now() };
}

/** CPU seconds used by others since `mark`, and that as a share of the machine's capacity. */
export function foreignCpu(mark) {
  const now = cpuMark();
  const seconds = Math.max(0, (now.machine - mark.machine) - (now.own - mark.own)) / TICK;
  const capacity = ((now.at - mark.at) / 1000) * os.availableParallelism();
  return { seconds, share: seconds / capacity };
}
