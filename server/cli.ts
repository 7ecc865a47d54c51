#!/usr/bin/env node
import { parseArgs } from "node:util";
import { MessageBus } from "./bus.js";
import { demoApp } from "./demo.js";

const USAGE = `usage: cometbus serve [options]

  --port N            port to listen on (default: $PORT or 3000)
  --host H            address to bind (default 127.0.0.1)
  --base PATH         where the bus is mounted (default /message-bus)
  --backend URL       memory (default), redis://… or postgres://…
  --publish-token T   enables POST {base}/publish with "Authorization: Bearer T"
  --demo              also serve the demo pages at /
`;

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
  });
  await bus.ready();
  const app = values.demo ? demoApp(bus) : undefined;
  const server = await bus.listen(port, values.host, app);
  process.stdout.write(`cometbus listening on ${server.url}${values.demo ? "/" : bus.options.base}\n`);
  const stop = () => {
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`cometbus: ${e instanceof Error ? e.message : e}\n`);
  process.exit(1);
});
