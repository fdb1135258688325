/** What regsweep needs of a Node.js system error: its code, whether it means "not there", and a short text. */

export function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code;
}

/** The path, or a directory on the way to it, does not exist. */
export function isMissing(error: unknown): boolean {
  const code = errnoOf(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** A directory that could not be removed because something is (still) in it. */
export function isNotEmpty(error: unknown): boolean {
  const code = errnoOf(error);
  return code === 'ENOTEMPTY' || code === 'EEXIST';
}

/** The error code alone (`ENOENT`) where there is one, else the message: what a one-line refusal shows. */
export function errnoText(error: unknown): string {
  return errnoOf(error) ?? (error as Error).message;
}

/** No room for what was asked: the filesystem has no byte or no inode left (ENOSPC), or the user's quota is used up (EDQUOT). */
export function isNoSpace(error: unknown): boolean {
  const code = errnoOf(error);
  return code === 'ENOSPC' || code === 'EDQUOT';
}
