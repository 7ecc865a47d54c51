import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";

/**
 * The connection under a request, as far as the bus needs it. With HTTP/1.1 pipelining a response
 * may be queued behind another one on its connection: Node gives it no socket until its turn and
 * never emits its "close" if the connection dies first, so a held poll or stream that waited on the
 * response alone stayed subscribed forever. Everything here watches the socket too.
 */

/**
 * One "close" listener per socket, however many requests a keep-alive connection carries. Listeners
 * here are added with `on`, not `once`: each guards itself against a second call, and Node's `once`
 * wraps every listener in a state object and a bound function, about 150 bytes that each of ten
 * thousand held polls would keep for its whole wait.
 */
const socketWatchers = new WeakMap<Socket, Set<() => void>>();

function onSocketClose(socket: Socket, fn: () => void): () => void {
  let set = socketWatchers.get(socket);
  if (!set) {
    const watchers = (set = new Set());
    socketWatchers.set(socket, watchers);
    socket.on("close", () => {
      socketWatchers.delete(socket);
      for (const f of [...watchers]) f();
    });
  }
  set.add(fn);
  const watchers = set;
  return () => watchers.delete(fn);
}

function socketOf(req: IncomingMessage): Socket | undefined {
  return req.socket as Socket | undefined;
}

function socketGone(socket: Socket | null | undefined): boolean {
  return !socket || socket.destroyed;
}

/**
 * Calls `fn` when this request's client is gone: its response closed, or its connection did
 * (queued or not). Returns false, without calling `fn`, if it is gone already.
 *
 * A response that has its socket (its turn came: the bus's held polls and streams ask only then)
 * needs no watch of its own on the socket: Node listens there for the response it is writing and
 * emits the response's "close", once, when the connection goes. So `fn` is the response's listener
 * and nothing else is kept: ten thousand held polls or streams each kept a guard closure, a socket
 * listener, a Set and their contexts, about 500 bytes, for what Node tells them anyway.
 */
export function onClientGone(req: IncomingMessage, out: ServerResponse, fn: () => void): boolean {
  const socket = socketOf(req);
  if (out.destroyed || out.writableFinished || socketGone(socket)) return false;
  if (out.socket === socket) {
    out.on("close", fn);
    return true;
  }
  // Still queued behind another response (pipelining): Node will emit nothing for it if the connection dies.
  // The transports ask only once it is their turn (ownTurn), so today this is a guard for a caller that does not.
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    stopSocket();
    out.off("close", once);
    fn();
  };
  const stopSocket = onSocketClose(socket!, once);
  out.on("close", once);
  return true;
}

/**
 * Resolves true once this response is the one its connection is writing (not queued behind
 * another, pipelined), or false if the client goes first. A held poll or stream registers only
 * then: queued, it could not be written, only buffered.
 */
export function ownTurn(req: IncomingMessage, out: ServerResponse): Promise<boolean> | boolean {
  const socket = socketOf(req);
  if (socketGone(socket) || out.destroyed) return false;
  if (out.socket) return true;
  return new Promise<boolean>((resolve) => {
    const settle = (turn: boolean) => {
      stop();
      out.off("socket", onTurn);
      resolve(turn);
    };
    const onTurn = () => settle(true);
    const stop = onSocketClose(socket!, () => settle(false));
    out.once("socket", onTurn);
  });
}

/** Requests in flight per connection (responses not yet finished), to bound pipelining. */
const inFlight = new WeakMap<Socket, number>();

/**
 * Counts this request against its connection. A connection with more than `max` requests waiting
 * behind the one being answered (pipelined behind a response that is still open, e.g. a stream) is
 * closed: those requests could never be answered, and each costs memory. Returns false when it was closed.
 */
export function admitRequest(req: IncomingMessage, out: ServerResponse, max: number): boolean {
  const socket = socketOf(req);
  if (!socket) return true;
  const n = (inFlight.get(socket) ?? 0) + 1;
  if (n > max + 1) {
    socket.destroy();
    return false;
  }
  inFlight.set(socket, n);
  // Only "finish": a response that closes unfinished took its connection with it (Node destroys the
  // socket), and a count for a dead socket goes with it. One function for every response, no closure
  // per request: a stream or held poll kept its own for as long as it lasted.
  out.on("finish", releaseRequest);
  return true;
}

/** A response is written: one request fewer in flight on its connection (`this` is the response). */
function releaseRequest(this: ServerResponse): void {
  const socket = socketOf(this.req);
  if (!socket) return;
  const left = (inFlight.get(socket) ?? 1) - 1;
  if (left > 0) inFlight.set(socket, left);
  else inFlight.delete(socket);
}

/** Whether the request's client has already gone (its body read failed because it left). */
export function clientLeft(req: IncomingMessage): boolean {
  // Not `req.destroyed` alone: Node destroys a request once its body has been read in full, and the
  // client is still there to be answered (an error after the body was read went unanswered).
  return !!(req.readableAborted || (req.destroyed && !req.complete) || socketGone(socketOf(req)));
}

/**
 * A request answered without its body read (refused as too large, an unknown route), while the answer
 * waits behind another response on its connection (pipelining): the unread body would stop Node
 * reading the connection, so it would not even notice the client leave, and a stream ahead would stay
 * subscribed. The rest of the body is discarded now, as Node does itself once an answer is written.
 */
export function discardUnreadBody(req: IncomingMessage, out: ServerResponse): void {
  if (req.complete || out.socket) return;
  req.resume();
}
