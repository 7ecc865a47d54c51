/** Every limit of DESIGN §5 with its default. Each is an option of the server (`limits`). */
export interface Limits {
  /** Largest request body in bytes (subscriptions, publish API). */
  maxBodyBytes: number;
  /** Most channels in one subscription. */
  maxChannels: number;
  /** Largest published message, as encoded JSON, in bytes. */
  maxMessageBytes: number;
  /** Largest WebSocket frame a client may send, in bytes. */
  maxFrameBytes: number;
  /** A WebSocket whose unsent buffer passes this many bytes is closed (1013) and resumes from the backlog. */
  maxWsBufferedBytes: number;
  /** Longest channel name in bytes. */
  maxChannelBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 64 * 1024,
  maxChannels: 100,
  maxMessageBytes: 256 * 1024,
  maxFrameBytes: 64 * 1024,
  maxWsBufferedBytes: 1024 * 1024,
  maxChannelBytes: 256,
};
