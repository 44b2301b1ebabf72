// Kept apart from the loader so the hook's fast path can share the bound without loading
// js-yaml or zod.
/** Largest policy file any reader accepts (docs/rules.md L1). */
export const MAX_POLICY_BYTES = 64 * 1024;
