/**
 * Graceful HTTP drain for SIGTERM with keep-alive clients: no request that reached the server is reset.
 *
 * Why not `server.close()` + `closeIdleConnections()`: Node counts a keep-alive socket as idle as soon as its last
 * response is written, and `http.Server#close` (Node >= 19) and `closeIdleConnections` then `destroy()` it. A busy
 * client has usually sent its next request by then: its bytes sit in the receive buffer or are being parsed, and
 * closing a socket with unread data makes the kernel send RST, so the client gets ECONNRESET with no answer.
 *
 * Here, once draining:
 * - the listener stops accepting (the plain `net.Server` close, which leaves open sockets alone);
 * - every response not yet started carries `Connection: close`, and Node ends its socket (FIN) after writing it;
 * - a socket with nothing in flight (no response pending, no byte of a new request read) is half-closed with
 *   `end()` (FIN, never RST) only once its last answer is `quietMs` old: a busy client sends its next request
 *   long before that, and gets it answered with `Connection: close`. A request sent at the very moment a quiet
 *   socket is closed is the one unavoidable race of HTTP/1.1 keep-alive (see the README). Such a request is
 *   read but never handed to the app: no answer could reach the client, so it must not take effect either;
 * - at the cutoff, whatever is left is destroyed, so the drain stays within its budget.
 */
import http from 'node:http';
import net from 'node:net';

/** How long a socket must be quiet before the drain closes it: far longer than a busy client's think time. */
export const DEFAULT_DRAIN_QUIET_MS = 500;

interface TrackedSocket {
  /** Requests whose response has not closed yet (more than one when the client pipelines). */
  inFlight: number;
  /** bytesRead when the last response closed: any byte read since belongs to a request on its way in. */
  bytesAnswered: number;
  answeredAt: number;
}

export interface DrainOutcome {
  /** connections still open at the cutoff, destroyed (their clients may see a reset) */
  destroyedAtCutoff: number;
}

export interface DrainableServer {
  readonly server: http.Server;
  /**
   * Stops accepting and closes every connection gracefully; resolves once all are closed, destroying those still
   * open after `graceMs`, with how many it had to destroy (0: every one closed gracefully).
   */
  drain(graceMs: number): Promise<DrainOutcome>;
}

/** An http.Server for `app` that tracks its connections, so that drain() can close each one at a safe moment. */
export function createDrainableServer(app: http.RequestListener, options: { quietMs?: number } = {}): DrainableServer {
  const quietMs = options.quietMs ?? DEFAULT_DRAIN_QUIET_MS;
  const sockets = new Map<net.Socket, TrackedSocket>();
  const inFlightResponses = new Set<http.ServerResponse>();
  let draining = false;

  /** Its last response closed: bytes read from now on belong to a request on its way in. */
  function answered(socket: net.Socket, tracked: TrackedSocket): void {
    tracked.bytesAnswered = socket.bytesRead;
    tracked.answeredAt = Date.now();
  }
  // Shared listeners (`this` is the response or request; each emits its event once), not closures per request:
  // this runs on every request, and those closures were a visible share of a cache hit's CPU (issue 29).
  function onResponseClose(this: http.ServerResponse): void {
    inFlightResponses.delete(this);
    const socket = this.req.socket;
    const tracked = sockets.get(socket);
    if (!tracked) return;
    tracked.inFlight -= 1;
    if (tracked.inFlight === 0) answered(socket, tracked);
  }
  // A body the app did not read is discarded after the response: those bytes are not a new request.
  function onRequestEnd(this: http.IncomingMessage): void {
    const tracked = sockets.get(this.socket);
    if (tracked && tracked.inFlight === 0) answered(this.socket, tracked);
  }

  const server = http.createServer((req, res) => {
    // req.socket, not res.socket: a pipelined response gets its socket only when the one before it is done.
    const socket = req.socket;
    if (socket.writableEnded) {
      // It lost the race with our FIN: the client gets an error whatever happens, so the request must not act.
      socket.destroy();
      return;
    }
    if (draining) res.shouldKeepAlive = false;
    inFlightResponses.add(res);
    const tracked = sockets.get(socket);
    if (tracked) {
      tracked.inFlight += 1;
      req.on('end', onRequestEnd);
    }
    res.on('close', onResponseClose);
    app(req, res);
  });

  server.on('connection', (socket: net.Socket) => {
    sockets.set(socket, { inFlight: 0, bytesAnswered: socket.bytesRead, answeredAt: Date.now() });
    socket.once('close', () => sockets.delete(socket));
  });

  /** FIN (and keep reading: the socket closes on the client's FIN) for sockets with nothing in flight for quietMs. */
  function closeQuietSockets(): void {
    for (const [socket, tracked] of sockets) {
      if (tracked.inFlight > 0 || socket.writableEnded) continue;
      // Bytes of a request not yet complete: it will be answered (or cut by headersTimeout or the cutoff).
      if (socket.bytesRead > tracked.bytesAnswered) continue;
      if (Date.now() - tracked.answeredAt >= quietMs) socket.end();
    }
  }

  return {
    server,
    drain(graceMs) {
      draining = true;
      // Responses already being handled but not yet started close their socket after they are written.
      for (const res of inFlightResponses) if (!res.headersSent) res.shouldKeepAlive = false;
      return new Promise<DrainOutcome>((resolve) => {
        let destroyedAtCutoff = 0;
        const sweep = setInterval(closeQuietSockets, Math.max(10, Math.min(50, quietMs / 4)));
        const cutoff = setTimeout(() => {
          for (const socket of sockets.keys()) {
            destroyedAtCutoff += 1;
            socket.destroy();
          }
        }, graceMs);
        sweep.unref();
        cutoff.unref();
        const finish = () => {
          clearInterval(sweep);
          clearTimeout(cutoff);
          resolve({ destroyedAtCutoff });
        };
        // The net.Server close: stops listening and calls back once every connection is closed. http.Server#close
        // would destroy the idle keep-alive sockets at once (Node >= 19), which is the reset this module avoids.
        if (server.listening) net.Server.prototype.close.call(server, finish);
        else if (sockets.size === 0) finish();
        else server.once('close', finish);
        closeQuietSockets();
      });
    },
  };
}
