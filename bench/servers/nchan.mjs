// nchan (Debian's libnginx-mod-nchan): one nginx worker, a publisher and a subscriber location for
// one channel. Returned as a command for the runner to spawn, like the Node servers.
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const NGINX = "/usr/sbin/nginx";
export const NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so";

export function nchanInstalled() {
  return existsSync(NGINX) && existsSync(NCHAN_MODULE);
}

export function nchanCommand(port) {
  const dir = mkdtempSync(join(tmpdir(), "bench-nchan-"));
  mkdirSync(join(dir, "tmp"));
  const conf = `load_module ${NCHAN_MODULE};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 19000; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path ${dir}/tmp;
  proxy_temp_path ${dir}/tmp;
  fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp;
  scgi_temp_path ${dir}/tmp;
  nchan_shared_memory_size 256M;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location = /publish {
      nchan_publisher;
      nchan_channel_id bench;
      nchan_message_buffer_length 20000;
      nchan_message_timeout 10m;
    }
    location = /sub {
      nchan_subscriber;
      nchan_channel_id bench;
      nchan_subscriber_first_message oldest;
      nchan_longpoll_multipart_response on;
    }
    location = /hello { return 200 "hello"; }
  }
}
`;
  writeFileSync(join(dir, "nginx.conf"), conf);
  return { cmd: NGINX, args: ["-p", dir, "-c", join(dir, "nginx.conf")], dir };
}
