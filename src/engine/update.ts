import type { Action } from '../ticket/payload.ts';

export const ZERO_SHA = /^0+$/;

/** What the server (or the Action) knows about one ref update. */
export interface RefUpdate {
  readonly ref: string;
  readonly oldSha: string;
  readonly newSha: string;
  /** True when old is an ancestor of new (ignored for create and delete). */
  readonly fastForward: boolean;
  /** True when the update changes anything under `.breakglass/`. */
  readonly touchesPolicy: boolean;
  /** True when a pull request with the required reviews did not bring this in (Action only). */
  readonly unreviewedMerge?: boolean;
}

export type UpdateKind = 'create' | 'delete' | 'fast-forward' | 'force';

/** Classifies an update by its old and new ids. */
export function updateKind(u: Pick<RefUpdate, 'oldSha' | 'newSha' | 'fastForward'>): UpdateKind {
  if (ZERO_SHA.test(u.oldSha)) return 'create';
  if (ZERO_SHA.test(u.newSha)) return 'delete';
  return u.fastForward ? 'fast-forward' : 'force';
}

/** The ticket actions an update performs (DESIGN §3): every one must be in a ticket's scope. */
export function actionsOf(u: RefUpdate): Action[] {
  const kind = updateKind(u);
  const actions: Action[] = [];
  if (kind === 'create') actions.push('create');
  else if (kind === 'delete') actions.push('delete');
  else if (kind === 'force') actions.push('force-push');
  else actions.push(u.unreviewedMerge ? 'merge-unreviewed' : 'push');
  if (u.touchesPolicy && kind !== 'delete') actions.push('change-policy');
  return actions;
}
