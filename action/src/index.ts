// The Action's entry point: all the work is in run() (main.ts), so tests can drive it.
import { run } from './main.ts';

await run();
