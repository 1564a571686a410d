import type { Redis } from 'ioredis';

/**
 * Makes the commands a connection sends in one event-loop turn go out in one socket write instead
 * of one write (one system call, and on loopback the receiving side's work too) each: the socket
 * is corked at the turn's first command and uncorked by `setImmediate`, which runs right after
 * the poll phase that delivered the calls. Unlike ioredis's auto-pipelining this never waits for
 * the replies of an earlier batch, so a lone command still leaves within its own turn. Commands
 * keep their order; Redis runs them as before.
 */
export function coalesceWrites(redis: Redis): void {
  const send = redis.sendCommand.bind(redis);
  let corked = false;
  // Named parameters rather than a rest array: this runs for every command the connection sends.
  redis.sendCommand = (command, stream) => {
    const socket = redis.stream as (typeof redis.stream & { writable?: boolean }) | undefined;
    if (!corked && socket?.writable) {
      corked = true;
      socket.cork();
      // The socket corked, even if the connection has moved to a new one since.
      setImmediate(() => {
        corked = false;
        socket.uncork();
      });
    }
    return send(command, stream);
  };
}
