import { MessageBus as Client } from "./bus.js";

export type { Callback, ClientOptions, Stats, TransportName } from "./types.js";
export { RequestError } from "./requests.js";
export type MessageBusClient = Client;

/** The default instance, as message-bus-client's global. */
const instance = new Client();

/**
 * Both message-bus-client's object (`MessageBus.baseUrl = "/"; MessageBus.subscribe(…)`, served by
 * the default instance) and a class (`new MessageBus({ transports: ["sse"] })`).
 */
export const MessageBus = new Proxy(Client, {
  get(target, key) {
    // A class's `prototype` may not be disguised; it also keeps `instanceof MessageBus` working.
    if (key === "prototype") return target.prototype;
    const v = (instance as unknown as Record<PropertyKey, unknown>)[key];
    return typeof v === "function" ? v.bind(instance) : v;
  },
  set(_target, key, value) {
    (instance as unknown as Record<PropertyKey, unknown>)[key] = value;
    return true;
  },
  has(_target, key) {
    return key in instance;
  },
}) as typeof Client & Client;

export default MessageBus;
