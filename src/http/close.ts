/*
 * Closing a connection whose request body was not read (a refusal): Node
 * would otherwise keep it alive and read the rest of the body for as long
 * as the client cares to send it. The answer goes out with Connection:
 * close; then our side shuts, and what the client still sends is read and
 * dropped for a short while, so that a client in mid-upload reads the
 * answer instead of a reset; then the socket goes, whatever the client does.
 */
import type http from 'node:http';
import type net from 'node:net';

const LINGER_MS = 2000;

type Closable = net.Socket & { destroySoon?: () => void };

export function closeAfterResponse(res: http.ServerResponse): void {
  res.shouldKeepAlive = false;
  const socket = res.socket as Closable | null;
  if (!socket) return;
  // Node calls this once the last response on the connection is flushed;
  // its own version destroys the socket at once, unread bytes and all (a reset).
  socket.destroySoon = () => {
    socket.end();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    socket.once('close', () => clearTimeout(timer));
  };
}
