// Every bg-sign command, one line each: `export { default as <name> } from './<file>.ts';`
// where the file's default export is a yargs CommandModule (see ../options.ts defineCommand).
// To add a command, add ONE such line; main.ts registers everything exported here.
export { default as keygen } from './keygen.ts';
export { default as request } from './request.ts';
export { default as approve } from './approve.ts';
export { default as verify } from './verify.ts';
export { default as show } from './show.ts';
export { default as list } from './list.ts';
export { default as revoke } from './revoke.ts';
export { default as push } from './push.ts';
export { default as fetch } from './fetch.ts';
export { default as installHooks } from './install-hooks.ts';
export { default as demo } from './demo.ts';
export { default as audit } from './audit.ts';
export { default as review } from './review.ts';
export { default as log } from './log.ts';
export { default as hook } from './hook.ts';
