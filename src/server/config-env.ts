// The settings that may come from the environment live with the rest of the settings' parsing
// (engine/triage.ts); re-exported here for the fast path and the tests.
export { CONFIG_ENV_VARIABLES, configFromEnv } from '../engine/triage.ts';
