import type { CommandModule } from 'yargs';
import * as modules from './commands/index.ts';

/**
 * All command modules, in the order they are listed in commands/index.ts' exports (a module
 * namespace sorts its names, so the order shown in --help is alphabetical).
 */
export const commands: readonly CommandModule[] = Object.values(modules).filter(
  (m): m is CommandModule =>
    typeof m === 'object' && m !== null && 'command' in m && 'handler' in m,
);
