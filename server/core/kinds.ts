/** The kinds of subscriber: the four transports (long-poll held plain or chunked), and the server's own. */
export type TransportKind = "poll" | "long-poll" | "chunked" | "sse" | "websocket" | "server";
