// `cometbus/postgres`: the PostgreSQL backend, its own entry point so that `import "cometbus"` never loads pg.
export { PostgresBackend, type PostgresBackendOptions, parsePostgresUrl } from "./backends/postgres.js";
