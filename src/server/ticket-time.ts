/** Creation time encoded in a ticket id (`20261129T031200Z-7f3a9c`), epoch ms; NaN if none. */
export function ticketIdTime(id: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-/.exec(id);
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : NaN;
}
