// faye's Node adapter; publishes go through its in-process client, as in faye's docs.
import http from "node:http";
import faye from "faye";
import { readBody, ready } from "./common.mjs";

const bayeux = new faye.NodeAdapter({ mount: "/faye", timeout: 25 });
let subscribed = 0;
bayeux.on("subscribe", () => subscribed++);
bayeux.on("unsubscribe", () => subscribed--);
const client = bayeux.getClient();

const server = http.createServer(async (req, res) => {
  if (req.method === "POST" && req.url === "/publish") {
    const body = await readBody(req);
    await client.publish("/bench", JSON.parse(body));
    res.end("ok");
  } else if (req.url === "/count") res.end(String(subscribed));
  else res.writeHead(404).end();
});
bayeux.attach(server);
server.listen(0, "127.0.0.1", () => ready(server.address().port));
