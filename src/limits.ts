/** Every limit of the protocol (docs/protocol.md#11-limits) with its default. Each is an option of the server (`limits`). */
export interface Limits {
  /** Largest request body in bytes (subscriptions, publish API). */
  maxBodyBytes: number;
  /** Most channels in one subscription. */
  maxChannels: number;
  /** Largest published message, as encoded JSON, in bytes. */
  maxMessageBytes: number;
  /** Largest WebSocket frame a client may send, in bytes. */
  maxFrameBytes: number;
  /**
   * Bytes written to one connection (WebSocket, SSE, chunked long-poll) that its client has not yet
   * taken; past it the connection is cut (WebSocket: close 1013) and the client resumes from the
   * backlog. A catch-up is written in pages of a quarter of this, each once the last was taken, and
   * a poll's answer holds at most a quarter of it (the rest comes with the next poll).
   */
  maxBufferedBytes: number;
  /**
   * A catch-up page the client has not taken within this long (ms) cuts the connection, and the
   * client resumes where it got. With the defaults (pages of 256 KiB) a catch-up read slower than
   * about 8.7 KB/s is cut. (Node cannot see finer progress: the kernel wakes a blocked writer only
   * once a good part of the socket's buffer has drained.)
   */
  maxStallMs: number;
  /** Requests one connection may have waiting behind an unfinished response (HTTP/1.1 pipelining); past it the connection is closed. */
  maxQueuedRequests: number;
  /** Longest channel name in bytes. */
  maxChannelBytes: number;
  /** Client ids one connection may speak for besides its own (`__clients`, docs/protocol.md#14-shared-connections). */
  maxSharedClients: number;
  /** Requests of one client waiting or running at once (docs/protocol.md#12-requests); past it a request is answered 429. */
  maxRequestsInFlight: number;
  /** Requests one client may make per second, on average (bursts up to twice that); past it, 429. */
  maxRequestsPerSecond: number;
  /** Requests in one HTTP body or WebSocket frame. */
  maxRequestsPerBatch: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 64 * 1024,
  maxChannels: 100,
  maxMessageBytes: 256 * 1024,
  maxFrameBytes: 64 * 1024,
  maxBufferedBytes: 1024 * 1024,
  maxStallMs: 30_000,
  maxQueuedRequests: 16,
  maxChannelBytes: 256,
  maxSharedClients: 32,
  maxRequestsInFlight: 32,
  maxRequestsPerSecond: 50,
  maxRequestsPerBatch: 32,
};

/** A catch-up page, and the most a poll answers at once. */
export function pageBytes(limits: Pick<Limits, "maxBufferedBytes">): number {
  return Math.max(1024, Math.floor(limits.maxBufferedBytes / 4));
}
