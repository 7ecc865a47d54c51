import { MessageBus } from "./index.js";

// The bundle for a plain <script>: message-bus-client's global name.
(globalThis as unknown as { MessageBus: typeof MessageBus }).MessageBus = MessageBus;
