export { MessageBus, type AttachOptions, type DrainOptions, type NodeHandler, type MessageBusOptions, type PublishOptions, type Published, type RequestContext } from "./bus.js";
export type { Backend, BackendEvents, AppendRequest, StoredMessage, Snapshot, Targets, Id } from "./core/backend.js";
export { BackendUnavailableError, BusClosedError, randomEpoch } from "./core/backend.js";
export { MemoryBackend } from "./backends/memory.js";
// The Redis and PostgreSQL backends are `cometbus/redis` and `cometbus/postgres`: this entry loads neither driver.
export type { Identity } from "./core/targeting.js";
export type { Listening } from "./node/listen.js";
export type { Message, StatusData } from "../src/envelope.js";
export { ProtocolError } from "../src/errors.js";
export { DEFAULT_LIMITS, type Limits } from "../src/limits.js";
