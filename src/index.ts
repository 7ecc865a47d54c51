export * from "./envelope.js";
export * from "./channel.js";
export * from "./errors.js";
export * from "./limits.js";
export * from "./subscription.js";
export * from "./wire.js";
export * from "./text.js";
export * from "./fallback.js";
