export { MessageBus, type MessageBusOptions, type PublishOptions, type Published } from "./bus.js";
export type { Backend, BackendEvents, AppendRequest, StoredMessage, Snapshot, Targets, Id } from "./backend.js";
export { randomEpoch } from "./backend.js";
export { MemoryBackend } from "./backends/memory.js";
export type { Identity } from "./identity.js";
export type { Listening } from "./node.js";
export type { Message, StatusData } from "../src/envelope.js";
export { ProtocolError } from "../src/errors.js";
export { DEFAULT_LIMITS, type Limits } from "../src/limits.js";
