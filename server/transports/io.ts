import type { SharedText } from "../core/shared-text.js";

/**
 * What the transports need from the runtime that serves them, and nothing more. The transport layer
 * owns these interfaces; a runtime adapter implements them (server/node/ for node:http and `ws`,
 * server/http/web-exchange.ts for any web-standard runtime), so no transport knows which one runs it.
 */

/** Who is told when a stream ends. An object, not a closure: see Sink. */
export interface SinkOwner {
  finish(): void;
}

/** A response that stays open and is written to as messages come (SSE, chunked long-poll). */
export interface Sink {
  write(chunk: string): void;
  /** Text many other sinks get too: the runtime prepares its bytes once for all of them. */
  writeShared(text: SharedText): void;
  /** Writes, and resolves true once `chunk` is on the network; false if that takes `ms` or the client goes. */
  writeAndWait(chunk: string, ms: number): Promise<boolean>;
  /** Ends the response; with `close`, the connection too once it is written (a drain: come back through the load balancer). */
  end(last?: string, close?: boolean): void;
  /** Cuts the connection at once: what is buffered for a client that does not read is freed. */
  destroy(): void;
  /** Bytes written but not yet taken by the network. */
  readonly buffered: number;
  readonly closed: boolean;
}

/** An answer decided later (a held long-poll). */
export interface LaterAnswer {
  /** With `close`, the connection is closed after it (a drain). */
  answer(body: string, close?: boolean): void;
  /** What the request handler returns now. */
  readonly response: Response | Promise<Response>;
}

/** One HTTP request, as a transport sees it: what was asked, and the ways to answer it. */
export interface Exchange {
  /** A request header, by lower-case name. */
  header(name: string): string | undefined;
  /** The query string of the request target (`?…`, or ""). */
  readonly search: string;
  /** Whether the request came over HTTP/1.1 (a chunked answer needs it). */
  readonly http11: boolean;
  /**
   * Resolves true once this answer is the one its connection is writing (not queued behind
   * another, pipelined), false if the client goes first.
   */
  turn(): boolean | Promise<boolean>;
  /** Calls `fn` once the client is gone; false (and `fn` not kept) if it is gone already. */
  onGone(fn: () => void): boolean;
  /** A JSON answer now, with the bus's headers (and these). */
  json(body: string, headers?: Record<string, string>): Response;
  /** A JSON answer due later (a held long-poll); `headers` are asked for when it is answered. */
  later(headers?: () => Record<string, string>): LaterAnswer;
  /**
   * Opens a response that stays open. The owner is told when it ends: the client left, or the
   * stream was ended or cut. (An object, not a closure: a closure made where the stream is opened
   * would keep that function's whole context, the request and the parsed subscription, alive as
   * long as the stream; ten thousand idle streams each keep one sink.)
   */
  stream(headers: Record<string, string>, owner: SinkOwner): { sink: Sink; response: Response };
  /** What to return when the client is gone and nothing is to be written. */
  gone(): Response;
}

/** A WebSocket, as the WebSocket transport sees it. The runtime hands it incoming frames. */
export interface WsSocket {
  readonly open: boolean;
  /** Bytes sent but not yet taken by the network. */
  readonly bufferedAmount: number;
  send(text: string): void;
  /** A live frame many sockets get too: the runtime prepares it once for all of them. */
  sendShared(frame: SharedText): void;
  /** Sends, and resolves true once the frame is on the network; false if that takes `ms` or the socket goes. */
  sendAndWait(text: string, ms: number): Promise<boolean>;
  /** Closes with a code and a reason (cut to the protocol's 123 bytes); never throws. */
  close(code: number, reason: string): void;
  /** Drops the connection at once. */
  terminate(): void;
  /** Reads no more frames for now (a subscribe is being answered) / again. */
  pause(): void;
  resume(): void;
}

/** What the runtime tells the WebSocket transport of its socket: each frame, and its end. */
export interface WsPeer {
  /** A frame: its text (null for a binary frame) and its size in bytes. */
  receive(text: string | null, bytes: number): void;
  gone(): void;
}
