/**
 * The `breakglass.*` settings that may also come from the environment (config.ts), and their
 * variables. A module of its own so the fast path (bg-hook.cjs) can see them without loading
 * the full configuration reader.
 */
export const CONFIG_ENV_VARIABLES = {
  'breakglass.policy': 'BREAKGLASS_POLICY',
  'breakglass.identity': 'BREAKGLASS_IDENTITY',
  'breakglass.timeout': 'BREAKGLASS_TIMEOUT',
} as const;

/** True when any setting comes from the environment (the fast path then leaves it to the hook). */
export function configFromEnv(env: NodeJS.ProcessEnv): boolean {
  return Object.values(CONFIG_ENV_VARIABLES).some((name) => !!env[name]);
}
