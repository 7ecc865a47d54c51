#!/usr/bin/env node
import { parseArgs } from "node:util";
import { MessageBus } from "./bus.js";
import { demoApp } from "./demo.js";

const USAGE = `usage: cometbus serve [options]

  --port N              port to listen on (default: $PORT or 3000)
  --host H              address to bind (default 127.0.0.1)
  --base PATH           where the bus is mounted (default /message-bus)
  --backend URL         memory (default), redis://…, redis+cluster://host:port,host:port or postgres://…
  --publish-token T     enables POST {base}/publish with "Authorization: Bearer T"
  --drain-window MS     on SIGTERM, spread telling connections to move over this long (default 10000)
  --drain-delay MS      on SIGTERM, fail the health check this long first, serving as usual (default 0)
  --reconnect-rate N    reconnections per second this process's clients spread to if it dies (default 500)
  --max-connections N   refuse new connections past N (503 / close 1013), serving those held
  --max-lag MS          refuse new connections while the event loop lags more than MS
  --demo                also serve the demo pages at /

  SIGTERM drains (fails {base}/health, waits the delay, stops accepting, tells every connection to
  move, spread over the window), then exits; SIGINT exits at once (connections are still told to move, each at a random moment).
`;

function count(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || v.trim() === "") throw new Error(`bad --${name}: ${v}`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      base: { type: "string", default: "/message-bus" },
      backend: { type: "string", default: "memory" },
      "publish-token": { type: "string" },
      "drain-window": { type: "string" },
      "drain-delay": { type: "string" },
      "reconnect-rate": { type: "string" },
      "max-connections": { type: "string" },
      "max-lag": { type: "string" },
      demo: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help || positionals[0] !== "serve") {
    process.stdout.write(USAGE);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  // An empty PORT (set but blank, as CI templates leave it) means the default, not port 0.
  const port = Number(values.port ?? (process.env.PORT || 3000));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad --port: ${values.port}`);
  const bus = new MessageBus({
    backend: values.backend,
    base: values.base,
    publishToken: values["publish-token"] ?? process.env.COMETBUS_PUBLISH_TOKEN,
    drainWindow: count("drain-window", values["drain-window"]),
    drainDelay: count("drain-delay", values["drain-delay"]),
    reconnectRate: count("reconnect-rate", values["reconnect-rate"]) || undefined,
    maxConnections: count("max-connections", values["max-connections"]),
    maxEventLoopLagMs: count("max-lag", values["max-lag"]),
  });
  await bus.ready();
  const app = values.demo ? demoApp(bus) : undefined;
  const server = await bus.listen(port, values.host, app);
  process.stdout.write(`cometbus listening on ${server.url}${values.demo ? "/" : bus.options.base}\n`);
  let stopping = false;
  const stop = (drain: boolean) => {
    if (stopping) return;
    stopping = true;
    (drain ? server.drain() : Promise.resolve())
      .then(() => server.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.once("SIGINT", () => stop(false));
  process.once("SIGTERM", () => stop(true));
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`cometbus: ${e instanceof Error ? e.message : e}\n`);
  process.exit(1);
});
