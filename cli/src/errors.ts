/**
 * Exit codes of the hearth command, for scripts:
 *   0 success, 1 a failure of the platform or the connection, 2 a bad command line or input,
 *   3 the function ran and returned an error (invoke), 4 no such function or entry.
 */
export const ExitCode = { ok: 0, failure: 1, usage: 2, functionError: 3, notFound: 4 } as const;

/** An error for a person: the message says what went wrong and what to do next. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.failure,
  ) {
    super(message);
  }
}
