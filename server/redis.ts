// `cometbus/redis`: the Redis backend, its own entry point so that `import "cometbus"` never loads ioredis.
export { RedisBackend, type RedisBackendOptions, parseRedisUrl } from "./backends/redis.js";
